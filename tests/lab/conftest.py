"""Fixtures of the deploy suites: the running lab's inventory, its PKI, and SSH helpers.

The `lab` fixture (tests/conftest.py) brings the lab up if it is not (and down at the end);
these fixtures only add what deploying needs on top of it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from msib import manifest, render
from msib.contract import LINUX_ROLES
from msib.lab import Lab

REPO = Path(__file__).resolve().parents[2]



def _managed(role: str) -> tuple[str, ...]:
    """Every file `role` (and the roles it depends on, apt_proxy) may install: its manifest's dests."""
    m = manifest.load(role)
    paths = [p for dep in m.depends for p in manifest.load(dep).dests(render.defaults(dep))]
    return tuple(paths + m.dests(render.defaults(role)))


#: Managed files per role (roles/<role>/meta/manifest.yml): what both engines must install byte for byte.
MANAGED: dict[str, tuple[str, ...]] = {role: _managed(role) for role in LINUX_ROLES}
#: The units each role keeps enabled (and running, but for the firewall's nftables.service).
SERVICES: dict[str, tuple[str, ...]] = {role: tuple(s.unit for s in manifest.load(role).services)
                                        for role in LINUX_ROLES}


@pytest.fixture(scope="session")
def deploy_lab(lab: Lab) -> Lab:
    """The running lab (must be up)."""
    assert lab.is_up(), "the lab must be up"
    return lab


@pytest.fixture(scope="session")
def inventory_dir(deploy_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's inventory directory (written by `msib lab up`), or one the product's builder writes."""
    override = os.environ.get("MSIB_TEST_INVENTORY")
    if override:
        return Path(override)
    if (deploy_lab.inventory_dir / "hosts.yml").is_file():
        return deploy_lab.inventory_dir
    from msib.inventory import SshSettings, inventory_model, render_hosts_yml

    ssh = SshSettings(ssh_config=deploy_lab.ssh_config, known_hosts=deploy_lab.known_hosts,
                      identity_file=deploy_lab.identity, user=deploy_lab.plan.management.ssh_user)
    directory = tmp_path_factory.mktemp("inventory")
    (directory / "hosts.yml").write_bytes(render_hosts_yml(inventory_model(deploy_lab.plan, None, ssh=ssh)))
    return directory


@pytest.fixture(scope="session")
def lab_vars(deploy_lab: Lab) -> dict[str, Any]:
    """Role variables of the lab: the lab CA and one certificate per collector (msib.lab.pki)."""
    from msib.lab.siem.host import lab_role_vars

    return dict(lab_role_vars(deploy_lab))


def ssh(lab: Lab, name: str, command: str, *, check: bool = True, timeout: float = 60) -> str:
    """Run `command` on lab host `name` as root (sudo), strict host keys; its stdout."""
    argv = lab.ssh_argv(name, ["sudo", "sh", "-c", shlex.quote(command)])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name}: {command!r} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def host_state(lab: Lab, name: str, role: str) -> dict[str, str]:
    """sha256, mode and owner of every managed file, service states and the live ruleset's hash."""
    files = " ".join(MANAGED[role])
    out = ssh(lab, name, f"for f in {files}; do if [ -e $f ]; then "
                         "echo \"$f $(sha256sum < $f | cut -c1-64) $(stat -c '%a %U %G' $f)\"; "
                         "else echo \"$f missing\"; fi; done")
    state = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines() if line}
    for unit in SERVICES[role]:
        state[f"unit:{unit}"] = ssh(lab, name, f"systemctl is-active {unit}; systemctl is-enabled {unit}",
                                    check=False).replace("\n", " ").strip()
    state["nft"] = ssh(lab, name, "nft -s list ruleset 2>/dev/null | sha256sum",
                       check=False).strip()
    return state
