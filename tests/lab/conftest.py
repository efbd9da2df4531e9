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

from msib.lab import Lab

REPO = Path(__file__).resolve().parents[2]

#: Managed files per role: what both engines must install byte for byte.
APT = "/etc/apt/apt.conf.d/01msib-proxy"  # roles/apt_proxy, a dependency of every role
MANAGED: dict[str, tuple[str, ...]] = {
    "collector": (APT, "/etc/rsyslog.conf", "/etc/msib/collector.nft", "/etc/systemd/system/msib-collector-nft.service",
                  "/etc/msib/tls/ca.pem", "/etc/msib/tls/collector.pem", "/etc/msib/tls/collector.key"),
    "ids_sensor": (APT, "/etc/suricata/suricata.yaml", "/etc/suricata/rules/msib-lab.rules", "/etc/rsyslog.conf"),
    "firewall": (APT, "/etc/msib/firewall/ruleset.nft", "/usr/local/sbin/msib-nft-commit", "/etc/nftables.conf"),
}
SERVICES: dict[str, tuple[str, ...]] = {
    "collector": ("rsyslog", "msib-collector-nft"),
    "ids_sensor": ("suricata", "rsyslog"),
    "firewall": ("nftables",),
}


@pytest.fixture(scope="session")
def deploy_lab(lab: Lab) -> Lab:
    """The running lab (must be up)."""
    assert lab.is_up(), "the lab must be up"
    return lab


@pytest.fixture(scope="session")
def inventory_dir(deploy_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's inventory directory (written by `msib lab up`), or one made per the contract."""
    override = os.environ.get("MSIB_TEST_INVENTORY")
    if override:
        return Path(override)
    if (deploy_lab.inventory_dir / "hosts.yml").is_file():
        return deploy_lab.inventory_dir
    from contract_inventory import write_contract_inventory

    return write_contract_inventory(deploy_lab, tmp_path_factory.mktemp("inventory"))


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
