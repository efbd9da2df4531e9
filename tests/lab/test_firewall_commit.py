"""The firewall's commit on the lab: drift of the LOADED ruleset is repaired, one apply at a time,
containment survives applies and rollbacks (fw-ext-1, real nft, real systemd timers, real SSH).

Each test leaves fw-ext-1 converged with the lab's variables (a deploy at the end, or in `finally`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, ssh
from msib.engines.deploy import run_deploy
from msib.lab import Lab

pytestmark = pytest.mark.lab

FW = "fw-ext-1"
HELPER = "/usr/local/sbin/msib-nft-commit"
OBJ = "198.18.32.100"  # obj-ext-1: an object of the external circuit
MSIB = [sys.executable, "-c", "from msib.cli import main; main()"]


@pytest.fixture
def converged_fw(deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any]) -> Iterator[Path]:
    """fw-ext-1 as the role deploys it, before and after the test (no armed timer left behind)."""
    assert run_deploy(inventory_dir, "pyinfra", limit=FW, extra_vars=lab_vars).ok
    yield inventory_dir
    ssh(deploy_lab, FW, f"systemctl is-active --quiet msib-nft-rollback.timer && {HELPER} confirm; true")
    result = run_deploy(inventory_dir, "pyinfra", limit=FW, extra_vars=lab_vars)
    assert result.ok, result.to_json()


def _status(lab: Lab) -> str:
    return ssh(lab, FW, f"{HELPER} status").strip()


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
@pytest.mark.parametrize("drift", ["nft flush ruleset",
                                   "nft delete table inet msib; nft add table ip foreign",
                                   "nft flush chain inet msib forward"])
def test_a_flushed_or_edited_live_ruleset_is_restored_and_counted_as_a_change(
        deploy_lab: Lab, converged_fw: Path, lab_vars: dict[str, Any], engine: str, drift: str) -> None:
    staged = ssh(deploy_lab, FW, "nft -s list ruleset")
    assert _status(deploy_lab) == "applied"
    ssh(deploy_lab, FW, drift)
    # the helper reports what is LOADED, not the files' hashes (which did not change)
    assert _status(deploy_lab) == "pending"
    checked = run_deploy(converged_fw, engine, limit=FW, check=True, extra_vars=lab_vars)  # type: ignore[arg-type]
    assert checked.ok and checked.hosts[FW].changed == 1, checked.to_json()
    assert _status(deploy_lab) == "pending", "--check changed the firewall"
    result = run_deploy(converged_fw, engine, limit=FW, extra_vars=lab_vars)  # type: ignore[arg-type]
    assert result.ok, result.to_json()
    assert result.hosts[FW].changed >= 1
    assert ssh(deploy_lab, FW, "nft -s list ruleset") == staged
    assert _status(deploy_lab) == "applied"
    again = run_deploy(converged_fw, engine, limit=FW, extra_vars=lab_vars)  # type: ignore[arg-type]
    assert again.ok and again.hosts[FW].changed == 0, again.to_json()


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_a_second_apply_while_one_is_unconfirmed_is_refused_and_the_first_timer_stays(
        deploy_lab: Lab, converged_fw: Path, lab_vars: dict[str, Any], engine: str) -> None:
    # an apply that nobody confirms (a controller that died, a second engineer): its timer is armed
    assert ssh(deploy_lab, FW, f"{HELPER} apply 300").strip() == "armed"
    saved = ssh(deploy_lab, FW, "sha256sum /var/lib/msib/firewall/rollback.nft")
    due = ssh(deploy_lab, FW, "systemctl show -p NextElapseUSecMonotonic --value msib-nft-rollback.timer")
    # a second apply straight on the host is refused (exit 75) ...
    proc = subprocess.run(deploy_lab.ssh_argv(FW, ["sudo", HELPER, "apply", "60"]), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 75 and "not confirmed yet" in proc.stderr, proc.stderr
    # ... and so is a deploy's: the host fails, naming the step and the helper's reason
    result = run_deploy(converged_fw, engine, limit=FW, extra_vars=lab_vars)  # type: ignore[arg-type]
    assert not result.ok
    error = result.hosts[FW].error or ""
    assert "Apply" in error and "not confirmed yet" in error, error
    # the first apply's rollback is untouched: same saved ruleset, same timer, still armed
    assert ssh(deploy_lab, FW, "sha256sum /var/lib/msib/firewall/rollback.nft") == saved
    assert ssh(deploy_lab, FW, "systemctl show -p NextElapseUSecMonotonic --value msib-nft-rollback.timer") == due
    assert ssh(deploy_lab, FW, "systemctl is-active msib-nft-rollback.timer").strip() == "active"
    assert ssh(deploy_lab, FW, f"{HELPER} confirm").strip() == "confirmed"


def _expiry(lab: Lab) -> float | None:
    """When the block of OBJ on fw-ext-1 expires (epoch seconds), None if it is not there."""
    data = json.loads(ssh(lab, FW, "nft -j list set inet msib_contain msib_blocked"))
    now = time.time()
    for obj in data["nftables"]:
        for elem in (obj.get("set") or {}).get("elem") or []:
            e = elem.get("elem", elem) if isinstance(elem, dict) else elem
            if isinstance(e, dict) and e.get("val") == OBJ:
                return now + float(e["expires"])
    return None


def test_a_block_keeps_its_expiry_across_a_changed_ruleset_and_a_rollback(
        deploy_lab: Lab, converged_fw: Path, lab_vars: dict[str, Any], tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    block = subprocess.run([*MSIB, "contain", "-i", str(converged_fw), "--ip", OBJ, "--ttl", "20m",
                            "--circuit", "external", "--audit-log", str(audit)],
                           capture_output=True, text=True, timeout=120, cwd=REPO)
    try:
        assert block.returncode == 0, block.stderr
        expires = _expiry(deploy_lab)
        assert expires is not None
        # a deploy that changes the ruleset (no ping answered any more): applied and confirmed
        changed = run_deploy(converged_fw, "pyinfra", limit=FW, extra_vars={**lab_vars, "firewall_accept_ping": False})
        assert changed.ok and changed.hosts[FW].changed >= 1, changed.to_json()
        assert "icmp type echo-request" not in ssh(deploy_lab, FW, "nft list table inet msib")
        after_apply = _expiry(deploy_lab)
        assert after_apply is not None and abs(after_apply - expires) < 5, (expires, after_apply)
        # an apply nobody confirms: the host rolls back by itself after 10 s
        before_rollback = ssh(deploy_lab, FW, "nft -s list table inet msib")
        ssh(deploy_lab, FW, "sed -i 's/default drop inbound/default drop inbound (unconfirmed)/' "
                            f"/etc/msib/firewall/ruleset.nft && {HELPER} apply 10")
        assert "(unconfirmed)" in ssh(deploy_lab, FW, "nft list table inet msib")
        deadline = time.monotonic() + 60
        while ssh(deploy_lab, FW, "test -e /var/lib/msib/firewall/armed && echo armed; true").strip():
            assert time.monotonic() < deadline, "the rollback timer never fired"
            time.sleep(1)
        assert ssh(deploy_lab, FW, "nft -s list table inet msib") == before_rollback
        after_rollback = _expiry(deploy_lab)
        assert after_rollback is not None and abs(after_rollback - expires) < 5, (expires, after_rollback)
    finally:
        subprocess.run([*MSIB, "contain", "-i", str(converged_fw), "--release", OBJ, "--audit-log", str(audit)],
                       capture_output=True, text=True, timeout=120, cwd=REPO)
