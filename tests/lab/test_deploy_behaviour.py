"""What the deployed appliances do on real lab traffic, and what a deploy must never do.

Runs on the already converged lab (each test deploys first, which is a no-op when converged).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, host_state, ssh
from msib import contract
from msib.engines.deploy import run_deploy
from msib.lab import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def converged(deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any]) -> Path:
    result = run_deploy(inventory_dir, "pyinfra", extra_vars=lab_vars)
    assert result.ok, result.to_json()
    return inventory_dir


def _wait_for(lab: Lab, host: str, command: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = ssh(lab, host, command, check=False)
        if out.strip():
            return out
        time.sleep(0.5)
    return out


def test_object_syslog_reaches_its_collector_over_udp_and_tcp(deploy_lab: Lab, converged: Path) -> None:
    tag = uuid.uuid4().hex
    ssh(deploy_lab, "obj-int-1", f"logger -n 198.18.16.10 -P 514 -d 'msib-udp-{tag}'; "
                                 f"logger -n 198.18.16.10 -P 514 -T 'msib-tcp-{tag}'")
    out = _wait_for(deploy_lab, "col-int-1", f"cat /var/log/msib/198.18.16.100/*.log | grep {tag} | wc -l "
                                              "| grep -v '^[01]$'")
    assert out.strip() == "2"


def test_sender_outside_the_circuit_is_dropped_by_the_collector(deploy_lab: Lab, converged: Path) -> None:
    # 198.19.0.99 (the uplink range) lies outside circuit internal's 198.18.16.0/20, and the
    # collector has a route back to it, so only the collector's own rules can refuse it.
    tag = uuid.uuid4().hex
    counter = "nft list table inet msib_collector | grep -o 'packets [0-9]*' | awk '{s+=$2} END {print s+0}'"
    before = int(ssh(deploy_lab, "col-int-1", counter))
    ssh(deploy_lab, "obj-int-1", "ip addr add 198.19.0.99/32 dev eth0")
    try:
        ssh(deploy_lab, "obj-int-1", f"echo '<13>msib-outsider-{tag}' | nc -u -w1 -s 198.19.0.99 198.18.16.10 514;"
                                     f"echo '<13>msib-insider-{tag}' | nc -u -w1 198.18.16.10 514")
    finally:
        ssh(deploy_lab, "obj-int-1", "ip addr del 198.19.0.99/32 dev eth0")
    assert _wait_for(deploy_lab, "col-int-1", f"grep -rl msib-insider-{tag} /var/log/msib/")
    assert int(ssh(deploy_lab, "col-int-1", counter)) > before
    assert ssh(deploy_lab, "col-int-1", f"grep -rl msib-outsider-{tag} /var/log/msib/ || true").strip() == ""


def test_suricata_rule_fires_on_lab_traffic_and_the_alert_lands_at_the_collector(
        deploy_lab: Lab, converged: Path) -> None:
    port = 20000 + uuid.uuid4().int % 20000
    ssh(deploy_lab, "obj-int-1", f"echo 'GET /x MSIB-LAB-TEST' | nc -u -w1 -p {port} 198.19.0.10 9999")
    line = _wait_for(deploy_lab, "col-int-1",
                     f"grep -h '\"src_port\":{port},' /var/log/msib/198.18.31.11/*.log | head -1", timeout=45)
    assert "suricata" in line
    alert = json.loads(line[line.index("{"):])
    assert alert["alert"]["signature_id"] == 9900001
    assert alert["src_ip"] == "198.18.16.100"


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_check_on_a_converged_lab_reports_no_change(converged: Path, lab_vars: dict[str, Any], engine: str) -> None:
    # a conditional restart or reload is a change only when what it depends on would change
    result = run_deploy(converged, engine, check=True, extra_vars=lab_vars)  # type: ignore[arg-type]
    assert result.ok, result.to_json()
    assert {name: h.changed for name, h in result.hosts.items() if h.changed} == {}, result.to_json()


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_check_mode_changes_nothing(deploy_lab: Lab, converged: Path, lab_vars: dict[str, Any],
                                    engine: str) -> None:
    hosts = contract.load(converged).of(*contract.LINUX_ROLES)
    # make one file drift so that there is something check mode would change
    ssh(deploy_lab, "col-int-1", "echo '# drift' >> /etc/rsyslog.conf")
    before = {h.name: host_state(deploy_lab, h.name, h.role) for h in hosts}
    result = run_deploy(converged, engine, check=True, extra_vars=lab_vars)  # type: ignore[arg-type]
    after = {h.name: host_state(deploy_lab, h.name, h.role) for h in hosts}
    assert result.hosts["col-int-1"].changed > 0, result.to_json()
    assert after == before
    fixed = run_deploy(converged, engine, limit="col-int-1", extra_vars=lab_vars)  # type: ignore[arg-type]
    assert fixed.ok and fixed.hosts["col-int-1"].changed > 0


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_ruleset_cutting_the_management_path_is_refused_before_apply(
        deploy_lab: Lab, converged: Path, lab_vars: dict[str, Any], engine: str) -> None:
    before = host_state(deploy_lab, "fw-int-1", "firewall")
    bad = {**lab_vars, "firewall_ssh_port": 2222}  # the controller connects to 22
    result = run_deploy(converged, engine, limit="fw-int-1", extra_vars=bad)  # type: ignore[arg-type]
    assert not result.ok
    assert result.hosts["fw-int-1"].failed > 0
    assert host_state(deploy_lab, "fw-int-1", "firewall") == before
    assert ssh(deploy_lab, "fw-int-1", "/usr/local/sbin/msib-nft-commit status").strip() == "applied"


def _answers_ssh(lab: Lab, name: str) -> bool:
    argv = [*lab.ssh_argv(name)[:-1], "-o", "ControlMaster=no", "-o", "ControlPath=none", name, "true"]
    proc = subprocess.run(argv, capture_output=True, timeout=30)
    return proc.returncode == 0


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_forced_bad_apply_rolls_back_by_itself(deploy_lab: Lab, converged: Path, lab_vars: dict[str, Any],
                                               engine: str) -> None:
    live_before = ssh(deploy_lab, "fw-ext-1", "nft -s list ruleset")
    bad = {**lab_vars, "firewall_ssh_port": 2222, "firewall_guard": False, "firewall_rollback_seconds": 15}
    result = run_deploy(converged, engine, limit="fw-ext-1", extra_vars=bad,  # type: ignore[arg-type]
                        allow_lockout=True)
    assert not result.ok, "the fresh SSH connection must fail on a ruleset without the management path"
    deadline = time.monotonic() + 90
    while not _answers_ssh(deploy_lab, "fw-ext-1"):
        assert time.monotonic() < deadline, "fw-ext-1 did not roll back and answer SSH again"
        time.sleep(2)
    assert ssh(deploy_lab, "fw-ext-1", "nft -s list ruleset") == live_before
    assert re.search(r"tcp dport 22 accept", live_before)
    assert "rolled back" in ssh(deploy_lab, "fw-ext-1", "journalctl -t msib-nft-commit --no-pager | tail -3")
    again = run_deploy(converged, engine, limit="fw-ext-1", extra_vars=lab_vars)  # type: ignore[arg-type]
    assert again.ok and again.hosts["fw-ext-1"].changed > 0


def test_msib_deploy_json_prints_the_per_host_summary(deploy_lab: Lab, converged: Path) -> None:
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "deploy", "--inventory", str(converged),
                           "--engine", "pyinfra", "--limit", "collector", "--json",
                           "--vars", str(REPO / "playbooks/vars/lab.yml")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data["hosts"]) == {"col-int-1", "col-ext-1"}
    for counts in data["hosts"].values():
        assert set(counts) == {"changed", "unchanged", "failed"}
        assert counts["changed"] == 0 and counts["failed"] == 0 and counts["unchanged"] > 0


def test_msib_deploy_rejects_an_unknown_limit_with_status_2(converged: Path) -> None:
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "deploy", "--inventory", str(converged),
                           "--limit", "no-such-host"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no-such-host" in proc.stderr
