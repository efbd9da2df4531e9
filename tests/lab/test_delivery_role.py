"""What the collector role adds for delivery, on the lab: objects over RELP, queue counters logged.

The tests run on col-ext-1 and fw-ext-1 (the external circuit), deployed with the lab's
variables; what the templates render for it is tested without a lab in tests/test_render.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import ssh
from msib.engines.deploy import run_deploy
from msib.lab import Lab


@pytest.mark.lab
def test_object_over_relp_reaches_the_siem_and_queue_counters_are_logged(
        deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any]) -> None:
    fast = {**lab_vars, "collector_stats_interval": 2}
    try:
        result = run_deploy(inventory_dir, "pyinfra", limit="col-ext-1", extra_vars=fast)
        assert result.ok, result.to_json()
        tag = f"relprole{uuid.uuid4().hex[:10]}"
        netns = deploy_lab.host("obj-ext-1").netns(deploy_lab.spec.name)
        sent = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-m", "msib.lab.loadgen", "send",
                               "--transport", "relp", "--host", "198.18.32.10", "--port", "2514", "--count", "2000",
                               "--rate", "5000", "--tag", tag, "--hostname", f"load-{tag}"],
                              capture_output=True, text=True, timeout=120, check=True)
        assert json.loads(sent.stdout)["sent"] == 2000
        from msib.lab.loadgen import REMOTE_COUNTER

        deadline = time.monotonic() + 30
        counted: dict[str, Any] = {}
        while time.monotonic() < deadline:
            proc = subprocess.run(deploy_lab.ssh_argv("siem", ["sudo", "python3", "-",
                                                               f"/var/lib/msib-siem/events/load-{tag}.log", tag,
                                                               "2000"]),
                                  input=REMOTE_COUNTER, capture_output=True, text=True, timeout=60)
            if proc.returncode == 0:
                counted = json.loads(proc.stdout)
                if counted["received"] == 2000:
                    break
            time.sleep(1)
        assert counted.get("received") == 2000 and counted.get("missing") == 0
        time.sleep(3)
        stats = ssh(deploy_lab, "col-ext-1", "grep -h 'msib_relay: origin=core.queue' /var/log/syslog | tail -1")
        assert "discarded.full=" in stats and "size=" in stats
    finally:
        assert run_deploy(inventory_dir, "pyinfra", limit="col-ext-1", extra_vars=lab_vars).ok


@pytest.mark.lab
def test_firewall_syslog_reaches_the_siem_through_its_collector(
        deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any]) -> None:
    from msib.delivery import check_delivery, sources_from_inventory
    from msib.lab.delivery import LabSiemFiles

    result = run_deploy(inventory_dir, "pyinfra", limit="fw-ext-1", extra_vars=lab_vars)
    assert result.ok, result.to_json()
    sources = [s for s in sources_from_inventory(inventory_dir) if s.name == "fw-ext-1"]
    report = check_delivery(sources, LabSiemFiles(deploy_lab.ssh_argv("siem")), timeout=30)
    assert report.sources["fw-ext-1"].status == "delivered", report.to_json()
    again = run_deploy(inventory_dir, "pyinfra", limit="fw-ext-1", extra_vars=lab_vars)
    assert again.ok and again.hosts["fw-ext-1"].changed == 0, again.to_json()
