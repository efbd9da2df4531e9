"""`msib delivery check`: a canary from every object and appliance, seen at the lab SIEM, or not.

Runs on the lab's own inventory: the lab SIEM's event files are read over SSH, and the lab's
object hosts send through their console path to their collector's LAN address.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, ssh
from msib.delivery import NotVerifiable, check_delivery, sources_from_inventory
from msib.engines.deploy import run_deploy
from msib.lab import Lab

pytestmark = pytest.mark.lab

ALL = {"col-int-1", "ids-int-1", "fw-int-1", "obj-int-1", "col-ext-1", "ids-ext-1", "fw-ext-1", "obj-ext-1"}
EXTERNAL = {"col-ext-1", "ids-ext-1", "fw-ext-1", "obj-ext-1"}


@pytest.fixture(scope="module")
def lab_inventory(deploy_lab: Lab, lab_vars: dict[str, Any]) -> Path:
    """The lab's own inventory, its appliances deployed (a no-op when converged)."""
    inv = Path(deploy_lab.inventory_dir)
    result = run_deploy(inv, "pyinfra", extra_vars=lab_vars)
    assert result.ok, result.to_json()
    return inv


def _check(inv: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "delivery", "check", "--inventory", str(inv), "--json",
                           *args], capture_output=True, text=True, timeout=180, cwd=REPO)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else {"stderr": proc.stderr})


def test_every_object_and_appliance_delivers_its_canary(lab_inventory: Path) -> None:
    code, report = _check(lab_inventory)
    assert set(report["sources"]) == ALL
    for name, r in report["sources"].items():
        assert r["delivered"] is True, (name, r)
        assert 0 <= r["latency_s"] < 30
    assert report["verifiable"] is True
    assert code == 0


def test_a_silent_collector_makes_its_circuit_missing_and_the_check_fail(
        deploy_lab: Lab, lab_inventory: Path) -> None:
    ssh(deploy_lab, "col-ext-1", "systemctl stop syslog.socket rsyslog.service")
    try:
        code, report = _check(lab_inventory, "--timeout", "10")
    finally:
        ssh(deploy_lab, "col-ext-1", "systemctl start rsyslog.service syslog.socket")
    assert code == 1
    delivered = {n for n, r in report["sources"].items() if r["delivered"]}
    missing = {n for n, r in report["sources"].items() if r["delivered"] is False}
    # the object's logger cannot even connect; the sensor and the firewall queue theirs for later
    assert missing | {n for n, r in report["sources"].items() if r["status"] == "not sent"} == EXTERNAL
    assert delivered == ALL - EXTERNAL


def test_a_siem_that_cannot_be_queried_gets_sent_not_verifiable(deploy_lab: Lab, lab_inventory: Path) -> None:
    sources = [s for s in sources_from_inventory(lab_inventory, [("obj-int-1", "internal")])
               if s.name in ("obj-int-1", "col-int-1")]
    report = check_delivery(sources, NotVerifiable(), timeout=5)
    assert {n: r.status for n, r in report.sources.items()} == {"obj-int-1": "sent", "col-int-1": "sent"}
    assert report.ok and not report.verifiable
    assert report.to_json()["sources"]["obj-int-1"]["delivered"] is None


def test_a_malformed_object_option_exits_2_naming_it(lab_inventory: Path) -> None:
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "delivery", "check", "--inventory", str(lab_inventory),
                           "--object", "obj-int-1"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "NAME:CIRCUIT" in proc.stderr
