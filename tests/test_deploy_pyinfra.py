"""The pyinfra deploys (deploy/*.py) without the lab: each role's operations as pyinfra plans them on this
machine in check mode (facts read locally, systemd's answered as "nothing runs"), from the role's manifest,
after its preflight. Nothing is changed: pyinfra only computes the commands (add_deploy, never run_ops)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from inventory_helpers import LAB_SITE, REPO
from msib import contract
from msib.inventory import SshSettings, build_inventory


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> contract.Inventory:
    base = tmp_path_factory.mktemp("deploys")
    (base / "known_hosts").write_text("")
    for name in ("ca", "col-int-1"):
        (base / f"{name}.pem").write_text(name)
        (base / f"{name}.key").write_text(name)
    build_inventory(LAB_SITE, [], base / "inventory", ssh=SshSettings(known_hosts=base / "known_hosts"))
    return contract.load(base / "inventory")


#: Plans one role's deploy with pyinfra's API in a process of its own (gevent-patched first, as the
#: engine's worker is): prints the operations' names, or the preflight's refusal.
_PLANNER = """
from gevent import monkey
monkey.patch_all()
import json, sys
sys.path.insert(0, sys.argv[1])
from pyinfra.api.config import Config
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.inventory import Inventory
from pyinfra.api.state import State
from pyinfra.facts.systemd import SystemdStatus
from deploy.collector import collector
from deploy.firewall import firewall
from deploy.ids_sensor import ids_sensor
from msib.preflight import PreflightError

SystemdStatus.command = lambda self, *a, **k: "true"  # no systemd as PID 1 here: no unit runs
role, data = sys.argv[2], json.loads(sys.argv[3])
state = State(Inventory(([("@local", data)], {})), Config(), check_for_changes=True)
connect_all(state)
try:
    add_deploy(state, {"collector": collector, "ids_sensor": ids_sensor, "firewall": firewall}[role],
               host=state.inventory.get_host("@local"))
    print(json.dumps([", ".join(sorted(state.get_op_meta(h).names)) for h in state.get_op_order()]))
except PreflightError as exc:
    print(json.dumps({"preflight": str(exc)}))
finally:
    disconnect_all(state)
"""


def _plan(lab: contract.Inventory, name: str, **extra: Any) -> Any:
    """The names of the operations pyinfra plans for appliance `name`'s role, in order (or the refusal)."""
    a = lab.appliance(name)
    pki = lab.directory.parent
    data = {k: v for k, v in a.vars.items() if not k.startswith("ansible_")}
    data.update({"collector_ca_file": str(pki / "ca.pem"), "collector_cert_dir": str(pki), **extra})
    proc = subprocess.run([sys.executable, "-c", _PLANNER, str(REPO), a.role, json.dumps(data)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_collector_deploy_installs_what_its_manifest_says(lab: contract.Inventory) -> None:
    assert _plan(lab, "col-int-1") == [f"msib collector | {step}" for step in (
        "msib apt_proxy | Configure apt's proxy and time-outs",
        "Install rsyslog (GnuTLS, RELP) and nftables",
        "Create the collector's directory /etc/msib",
        "Create the collector's directory /etc/msib/tls",
        "Create the collector's directory /var/log/msib",
        "Create the collector's directory /var/spool/rsyslog",
        "Install the CA certificate of the SIEM",
        "Install the collector's certificate",
        "Install the collector's private key",
        "Write the collector's own nftables table (syslog from the circuit only)",
        "Write the unit that loads the table at boot",
        "Write the rsyslog configuration",
        "Reload systemd units",
        "Keep msib-collector-nft.service running and enabled",
        "Keep rsyslog.service running and enabled",
        "Reload the collector's nftables table",
        "Restart rsyslog")]
    # no table of its own, no certificate of its own: the manifest's conditions, on pyinfra too
    off = _plan(lab, "col-int-1", collector_manage_firewall=False, collector_cert_dir=None)
    assert [op.split(" | ", 1)[1] for op in off[6:]] == [
        "Install the CA certificate of the SIEM", "Write the rsyslog configuration",
        "Keep rsyslog.service running and enabled", "Restart rsyslog"]


def test_the_ids_sensor_and_firewall_deploys_follow_their_manifests(lab: contract.Inventory) -> None:
    assert _plan(lab, "ids-int-1") == [f"msib ids_sensor | {step}" for step in (
        "msib apt_proxy | Configure apt's proxy and time-outs",
        "Install Suricata from the suite of the host's Debian release",
        "Check that the installed Suricata is the major asked for",
        "Install rsyslog (forwards the alerts)",
        "Install the rules msib ships: msib-lab.rules",
        "Create the rule file msib update writes (empty until the first update)",
        "Write suricata.yaml (checked by suricata -T)",
        "Write the rsyslog configuration (alerts to the collector)",
        "Reload Suricata's rules", "Restart Suricata", "Restart rsyslog",
        "Keep suricata.service running and enabled", "Keep rsyslog.service running and enabled")]
    steps = ["msib apt_proxy | Configure apt's proxy and time-outs", "Install nftables",
             "Create the firewall's directory /etc/msib/firewall",
             "Create the firewall's directory /var/lib/msib/firewall",
             "Install the commit helper (apply, confirm, rollback)",
             "Stage the ruleset (checked by msib, validated by nft -c)",
             "Install rsyslog (forwards the firewall's own syslog)",
             "Write the rsyslog configuration (own syslog to the collector)",
             "Load the confirmed ruleset at boot",
             "Apply with the rollback timer armed, confirm over a fresh SSH connection",
             "Restart rsyslog", "Keep rsyslog.service running and enabled (own syslog to the collector)"]
    assert _plan(lab, "fw-int-1") == [f"msib firewall | {step}" for step in steps]
    assert _plan(lab, "fw-int-1", firewall_syslog_forward=False) == [
        f"msib firewall | {step}" for step in steps if "rsyslog" not in step]


def test_the_hosts_own_release_decides_what_it_can_run(lab: contract.Inventory) -> None:
    # ids-ext-1's plan asks for Suricata 8; planned on this machine, a Debian 12, its facts say bookworm
    release = subprocess.run(["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert lab.appliance("ids-ext-1").vars["ids_sensor_suricata_major"] == 8
    if release != "bookworm":
        pytest.fail(f"this test expects a Debian 12 machine (the project's control node), not {release}")
    assert _plan(lab, "ids-ext-1") == {
        "preflight": "@local is not a usable IDS sensor: Suricata 8 is not packaged for Debian bookworm "
                     "(Suricata 8 needs Debian 13: trixie-backports)"}


def test_a_host_that_fails_the_preflight_gets_no_operation(lab: contract.Inventory) -> None:
    # (the host is pyinfra's @local here; msib names the inventory's host in its place)
    circuits = {**lab.vars["msib_circuits"], "internal": {**lab.vars["msib_circuits"]["internal"], "networks": []}}
    assert _plan(lab, "col-int-1", msib_circuits=circuits) == {
        "preflight": "@local is not a usable collector: the circuit has no networks"}
    assert _plan(lab, "fw-int-1", firewall_rollback_seconds=5) == {
        "preflight": "@local is not a usable nftables firewall: firewall_rollback_seconds must be 10 or more"}


def test_site_plan_text_in_msib_vars_is_data_never_a_template(lab: contract.Inventory, tmp_path: Any) -> None:
    """#14: `{{ lookup('pipe', ...) }}` in msib_* values runs nothing through the pyinfra deploys either:
    msib's renderer takes them as data (the same check for the Ansible plugins: tests/test_ansible_plugins.py)."""
    from msib import render

    pwned = [tmp_path / "pwned-state-body", tmp_path / "pwned-peer"]
    pipe = [f"{{{{ lookup('pipe', 'touch {p}') }}}}" for p in pwned]
    siem = lab.vars["msib_siem"]
    siem = {**siem, "syslog": {**siem["syslog"], "peer_name": pipe[1]}}
    ops = _plan(lab, "col-int-1", msib_state_body=pipe[0], msib_siem=siem)
    assert "msib collector | Write the rsyslog configuration" in ops  # rendered while pyinfra planned it
    assert [p for p in pwned if p.exists()] == []
    data = {**lab.appliance("col-int-1").vars, "msib_state_body": pipe[0], "msib_siem": siem,
            "collector_ca_file": "/tmp/ca.pem", "collector_cert_dir": "/tmp/pki"}
    text = render.render("collector", "rsyslog.conf.j2", render.context("collector", data))
    assert f'tls.permittedPeer=["{pipe[1]}"]' in text  # the text itself, as data (RELP/TLS by default)
    assert [p for p in pwned if p.exists()] == []
