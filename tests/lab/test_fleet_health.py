"""The lab as a fleet of two SBs: waves that halt on a broken SB, health that hears silence, Prometheus, the report.

The shared lab is SB "lab"; a second small SB ("akm", inventories/lab-akm: a collector, a firewall,
an object host and its own lab SIEM) is brought up beside it. Health runs with its documented
settings file, thresholds shortened as configuration allows (docs/health.md): workstations 30 s,
appliances 150 s (their heartbeat is rsyslog's impstats, every 60 s by the roles' defaults).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_helpers import free_port
from msib.health.exporter import serve_in_thread
from msib.lab import Lab
from msib.lab.fleet import second_lab, write_lab_fleet
from msib.lab.sources import block_forwarding, start_object_logging, stop_object_logging, unblock_forwarding
from prometheus_helpers import prometheus

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
MSIB = str(REPO / ".venv" / "bin" / "msib")
WORKSTATION_S = 30.0
APPLIANCE_S = 150.0
HEARTBEAT_S = 5.0


def _msib(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MSIB, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def akm(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The second SB's lab, up beside the shared one for this module."""
    other = second_lab(tmp_path_factory.mktemp("akm") / "state")
    try:
        other.up()
        yield other
    finally:
        other.down()
        assert other.leftovers() == []


@pytest.fixture(scope="module")
def fleet(lab: Lab, akm: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fleet of both labs, built."""
    root = tmp_path_factory.mktemp("fleet") / "fleet"
    write_lab_fleet(root, [lab, akm])
    built = _msib("fleet", "build", "--fleet", str(root), "--json")
    assert built.returncode == 0, built.stderr
    return root


@pytest.fixture(scope="module")
def health_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("health") / "health.yml"
    path.write_text(f"thresholds: {{workstation: {WORKSTATION_S:.0f}s, appliance: {APPLIANCE_S:.0f}s}}\n"
                    "window: 2m\n")
    return path


def _health(fleet: Path, config: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    proc = _msib("health", "--fleet", str(fleet), "--config", str(config), "--json", timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(proc.stdout)
    return proc.returncode, {f"{sb['sb']}/{s['name']}": s for sb in data["sbs"] for s in sb["sources"]}


def _wait_health(fleet: Path, config: Path, want: Any, timeout: float) -> tuple[int, dict[str, dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    while True:
        rc, sources = _health(fleet, config)
        if want(rc, sources) or time.monotonic() > deadline:
            return rc, sources
        time.sleep(5)


def _states(sources: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {k: v["state"] for k, v in sources.items()}


def test_a_rollout_halts_after_the_wave_of_a_broken_sb_and_resumes_once_it_is_fixed(
        lab: Lab, akm: Lab, fleet: Path) -> None:
    vars_file = fleet / "sbs" / "akm" / "vars.yml"
    good = vars_file.read_text()
    # the broken SB: a role variable its collector refuses (rsyslogd -N1 on the host rejects the config)
    vars_file.write_text(good + 'collector_queue_max_disk_space: "lots"\n')
    try:
        halted = _msib("fleet", "deploy", "--fleet", str(fleet), "--waves", "1", "--json")
        assert halted.returncode == 1, halted.stderr
        data = json.loads(halted.stdout)
        assert data["state"] == "halted" and data["waves"] == [["akm"], ["lab"]]
        assert data["halted"]["name"] == "canary wave" and data["halted"]["untouched"] == ["lab"]
        (failure,) = data["halted"]["failures"]
        assert (failure["sb"], failure["circuit"], failure["host"]) == ("akm", "internal", "col-1"), failure
        assert "rsyslog" in failure["step"], failure
        assert data["sbs"]["lab"]["status"] == "pending"
        assert not (fleet / "build" / "lab" / "inventory.runs.jsonl").exists()  # the later wave was not touched
    finally:
        vars_file.write_text(good)
    resumed = _msib("fleet", "deploy", "--fleet", str(fleet), "--waves", "1", "--json")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    data = json.loads(resumed.stdout)
    assert data["state"] == "done" and {c: r["attempts"] for c, r in data["sbs"].items()} == {"akm": 2, "lab": 1}
    # the other engine, detect only, over the same fleet: nothing fails, every host is reported
    checked = _msib("fleet", "deploy", "--fleet", str(fleet), "--engine", "ansible", "--check", "--waves", "1",
                    "--json")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    hosts = {c: r["summary"]["hosts"] for c, r in json.loads(checked.stdout)["sbs"].items()}
    assert set(hosts["akm"]) == {"col-1", "fw-1"} and len(hosts["lab"]) == 6
    assert all(h["failed"] == 0 for sb in hosts.values() for h in sb.values())
    status = json.loads(_msib("fleet", "status", "--fleet", str(fleet), "--json").stdout)
    deploys = {r["code"]: r["last_deploy"] for r in status["sbs"]}
    assert deploys["lab"]["engine"] == "ansible" and deploys["lab"]["check"] and deploys["lab"]["ok"]


def test_health_hears_every_expected_source_flags_a_silent_object_and_prometheus_sees_it(
        lab: Lab, akm: Lab, fleet: Path, health_config: Path, tmp_path: Path) -> None:
    for the_lab, name in ((lab, "obj-int-1"), (lab, "obj-ext-1"), (akm, "obj-1")):
        start_object_logging(the_lab, name, every=HEARTBEAT_S)
    # every source heard, and an impstats report since the object began: a rate per sender (a report
    # from before its first heartbeat counts it 0, which is right for that window)
    rc, sources = _wait_health(fleet, health_config, lambda rc, s: rc == 0 and set(_states(s).values()) == {"ok"}
                               and (s["lab/obj-int-1"]["rate"] or 0) > 0, timeout=240)
    assert rc == 0 and set(_states(sources).values()) == {"ok"}, {k: (v["state"], v["reasons"])
                                                                  for k, v in sources.items() if v["state"] != "ok"}
    assert set(sources) == {"lab/col-int-1", "lab/col-ext-1", "lab/ids-int-1", "lab/ids-ext-1", "lab/fw-int-1",
                            "lab/fw-ext-1", "lab/obj-int-1", "lab/obj-ext-1", "akm/col-1", "akm/fw-1", "akm/obj-1"}
    assert sources["lab/obj-int-1"]["rate"] > 0, sources["lab/obj-int-1"]
    assert sources["lab/col-int-1"]["heard_at"] == "siem"
    assert sources["lab/col-int-1"]["metrics"]["queue_size"] is not None
    sensor = sources["lab/ids-int-1"]["metrics"]
    assert sensor["capture_packets"] is not None and sensor["rules_loaded"] > 0 and sensor["rules_age_s"] >= 0
    assert sources["akm/col-1"]["metrics"]["convergence_age_s"] is not None

    stop_object_logging(lab, "obj-int-1")
    stopped = time.time()
    time.sleep(WORKSTATION_S + HEARTBEAT_S + 5)
    rc, sources = _health(fleet, health_config)
    assert rc == 1 and sources["lab/obj-int-1"]["state"] == "silent", sources["lab/obj-int-1"]
    assert sources["lab/obj-int-1"]["last_heard"] <= stopped + 1
    assert {k for k, v in _states(sources).items() if v != "ok"} == {"lab/obj-int-1"}

    port = free_port()
    server, _thread = serve_in_thread("127.0.0.1", port, lambda: [fleet / "build" / c / "inventory"
                                                                   for c in ("lab", "akm")])
    try:
        with prometheus(tmp_path, free_port(), [f"127.0.0.1:{port}"]) as prom:
            found = prom.wait_for('msib_source_state{state="silent"} == 1')
            assert [(r["metric"]["sb"], r["metric"]["source"], r["metric"]["kind"]) for r in found] == \
                [("lab", "obj-int-1", "workstation")]
            heard = prom.query('msib_source_last_heard_seconds{source="obj-int-1"}')
            assert float(heard[0]["value"][1]) == pytest.approx(sources["lab/obj-int-1"]["last_heard"], abs=1)
    finally:
        server.shutdown()
        server.server_close()

    start_object_logging(lab, "obj-int-1", every=HEARTBEAT_S)
    rc, sources = _wait_health(fleet, health_config, lambda rc, s: rc == 0, timeout=60)
    assert rc == 0 and sources["lab/obj-int-1"]["state"] == "ok"


def test_a_collector_that_stops_forwarding_is_flagged_with_its_circuit(
        lab: Lab, fleet: Path, health_config: Path) -> None:
    block_forwarding(lab, "col-ext-1")
    try:
        time.sleep(APPLIANCE_S + 10)
        rc, sources = _wait_health(fleet, health_config,
                                   lambda rc, s: s["lab/col-ext-1"]["state"] == "silent", timeout=90)
        assert rc == 1 and sources["lab/col-ext-1"]["state"] == "silent", sources["lab/col-ext-1"]
        for name in ("obj-ext-1", "ids-ext-1", "fw-ext-1"):
            assert sources[f"lab/{name}"]["state"] == "silent"
            assert "not delivered: collector col-ext-1 is silent at the SIEM" in sources[f"lab/{name}"]["reasons"]
        assert all(v == "ok" for k, v in _states(sources).items() if "-ext-" not in k), _states(sources)
    finally:
        unblock_forwarding(lab, "col-ext-1")
    rc, sources = _wait_health(fleet, health_config, lambda rc, s: rc == 0, timeout=180)
    assert rc == 0, _states(sources)


def test_the_quarterly_report_has_the_lab_fleets_quarter(fleet: Path) -> None:
    checked = _msib("fleet", "check", "--fleet", str(fleet), "--waves", "1", "--max-failed-sbs", "1", "--json")
    assert checked.returncode in (0, 1), checked.stderr
    quarter = time.strftime("%Y", time.gmtime()) + f"Q{(time.gmtime().tm_mon - 1) // 3 + 1}"
    proc = _msib("report", "quarterly", "--fleet", str(fleet), "--quarter", quarter)
    assert proc.returncode == 0, proc.stderr
    md = (fleet / "reports" / f"quarterly-{quarter}.md").read_text()
    assert "## lab:" in md and "## akm:" in md
    assert "| obj-int-1 | workstation | internal |" in md  # its silent period, ended
    assert "| col-ext-1 | collector | external |" in md
    assert "check runs; last" in md
