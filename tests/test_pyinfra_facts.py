"""msib.engines.pyinfra_facts on this machine (pyinfra's @local connector, real commands): a batch of
facts read in one command gives what pyinfra reads one by one, a change on the host drops what was
remembered, and each role's deploy reads all its facts in that one command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from inventory_helpers import REPO

#: Runs in a process of its own, gevent-patched first as the pyinfra worker is.
_PROBE = """
from gevent import monkey
monkey.patch_all()
import json, sys
sys.path.insert(0, sys.argv[1])
from pyinfra.api import facts as pyfacts
from pyinfra.api.config import Config
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.facts import FactBase
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State
from pyinfra.facts.files import Directory, File, Sha256File
from pyinfra.facts.server import Date
from msib.engines.pyinfra_facts import FactMemo

class Fails(FactBase):
    def command(self):
        return "echo partial; exit 3"

tmp = sys.argv[2]
state = State(Inventory((["@local"], {})), Config(), check_for_changes=True)
connect_all(state)
host = state.inventory.get_host("@local")
wanted = [(File, {"path": f"{tmp}/a"}), (Sha256File, {"path": f"{tmp}/a"}), (File, {"path": f"{tmp}/none"}),
          (Directory, {"path": tmp}), (Fails, {}), (Sha256File, {"path": f"{tmp}/a"})]
plain = [pyfacts.get_fact(state, host, c, kwargs=k) for c, k in wanted[:4]]
memo = FactMemo(state)
memo.attach(host)
memo.prefetch(host, wanted)
out = {"after_prefetch": memo.reads(host)}
got = [host.get_fact(c, **k) for c, k in wanted[:4]]
def norm(v):  # reading a file for its hash may move its atime (relatime)
    return json.dumps({k: x for k, x in v.items() if k != "atime"} if isinstance(v, dict) else v, default=str)
out["same"] = [norm(a) == norm(b) for a, b in zip(plain, got)]
out["after_gets"] = memo.reads(host)
host.get_fact(Fails, _ignore_errors=True)  # pyinfra would fail the host otherwise
out["after_failing_fact"] = memo.reads(host)
before = host.get_fact(Sha256File, path=f"{tmp}/a")
host.run_shell_command(f"echo changed > {tmp}/a")
out["changed"] = host.get_fact(Sha256File, path=f"{tmp}/a") != before
out["after_change"] = memo.reads(host)
disconnect_all(state)
print(json.dumps(out))
"""


def test_a_batch_reads_as_pyinfra_does_and_a_change_drops_it(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one\n")
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(REPO), str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["after_prefetch"] == 1  # six facts (one a duplicate), one command
    assert out["same"] == [True, True, True, True]
    assert out["after_gets"] == 1  # every one remembered
    assert out["after_failing_fact"] == 2  # its part of the batch failed: read on its own, as pyinfra does
    assert out["changed"] is True and out["after_change"] == 3  # a command ran: the file is read again


#: Plans one role's deploy on this machine (as tests/test_deploy_pyinfra.py does) with the memo on:
#: prints how many fact commands the planning ran.
_PLAN_READS = """
from gevent import monkey
monkey.patch_all()
import json, sys
sys.path.insert(0, sys.argv[1])
from pyinfra.api.config import Config
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from msib.engines.pyinfra_facts import FactMemo
from msib.engines.pyinfra_session import _deploys

def nothing_runs(self, user_mode=False, machine=None, user_name=None, services=None):
    return "true"  # no systemd as PID 1 here (the stock signature: the facts' arguments normalise alike)
for fact in (SystemdStatus, SystemdEnabled):
    fact.command = nothing_runs
    fact.requires_command = lambda self, *a, **k: None
role, data = sys.argv[2], json.loads(sys.argv[3])
state = State(Inventory(([("@local", data)], {})), Config(), check_for_changes=True)
memo = FactMemo(state)
host = state.inventory.get_host("@local")
memo.attach(host)
connect_all(state)
add_deploy(state, _deploys()[role], host=host)
disconnect_all(state)
print(json.dumps({"reads": memo.reads(host), "ops": len(state.get_op_order())}))
"""


def test_each_roles_deploy_reads_its_facts_in_one_command(tmp_path: Path) -> None:
    from inventory_helpers import LAB_SITE
    from msib import contract
    from msib.inventory import SshSettings, build_inventory

    (tmp_path / "known_hosts").write_text("")
    for name in ("ca", "col-int-1"):
        (tmp_path / f"{name}.pem").write_text(name)
        (tmp_path / f"{name}.key").write_text(name)
    build_inventory(LAB_SITE, [], tmp_path / "inventory", ssh=SshSettings(known_hosts=tmp_path / "known_hosts"))
    inv = contract.load(tmp_path / "inventory")
    for name in ("col-int-1", "ids-int-1", "fw-int-1"):
        a = inv.appliance(name)
        data = {k: v for k, v in a.vars.items() if not k.startswith("ansible_")}
        data.update({"collector_ca_file": str(tmp_path / "ca.pem"), "collector_cert_dir": str(tmp_path)})
        proc = subprocess.run([sys.executable, "-c", _PLAN_READS, str(REPO), a.role, json.dumps(data)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["ops"] > 5
        assert out["reads"] == 1, f"{a.role}: a fact the deploy reads is missing from deploy/_msib.wanted_facts"
