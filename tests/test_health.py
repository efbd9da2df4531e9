"""Health: the collector's own script on a syslog and spool of its shape, judging sources, history, outputs."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fleet_helpers import free_port, refusing_site, write_lab_like_fleet, write_sb
from msib.contract import load
from msib.errors import InputError
from msib.fleet.build import build_fleet
from msib.fleet.model import load_fleet
from msib.health.assess import assess
from msib.health.config import HealthConfig, load_config, parse_config
from msib.health.exporter import serve_in_thread
from msib.health.history import History
from msib.health.model import SbHealth, SourceHealth
from msib.health.probe import COLLECTOR_SCRIPT, CollectorReading, Probed, Report, parse_collector, parse_sensor
from msib.health.prometheus import exposition
from msib.inventory.diff import load_snapshot

REPO = Path(__file__).resolve().parents[1]
NOW = 1_800_000_000.0


# --- configuration ---------------------------------------------------------------------------------


def test_the_documented_defaults_and_a_config_file(tmp_path: Path) -> None:
    cfg = HealthConfig()
    assert [cfg.threshold(k) for k in ("collector", "ids_sensor", "network_device", "server", "workstation")] \
        == [900, 900, 1800, 3600, 86400]
    assert (cfg.window, cfg.degraded_share, cfg.severe_share, cfg.baseline_days) == (900, 0.5, 0.1, 7)
    path = tmp_path / "health.yml"
    path.write_text("health:\n  thresholds: {workstation: 30s, appliance: 2m}\n  window: 1m\n  baseline_days: 12h\n")
    cfg = load_config(path)
    assert (cfg.threshold("workstation"), cfg.threshold("firewall"), cfg.window, cfg.baseline_days) == \
        (30, 120, 60, 0.5)
    assert cfg.classify({"os": "Windows Server 2019 Standard", "hostname": "x"}) == "server"
    assert cfg.classify({"os": "Astra Linux SE 1.7", "hostname": "srv-app-01"}) == "server"
    assert cfg.classify({"os": "Cisco IOS 15.2", "os_family": "network", "hostname": "rtr"}) == "network_device"
    assert cfg.classify({"os": "Windows 10 Pro", "hostname": "arm-0101"}) == "workstation"
    for bad, where in (({"thresholds": {"laptop": "1m"}}, "thresholds.laptop"), ({"window": "-1"}, "window"),
                       ({"degraded_share": 2}, "degraded_share"), ({"severe_share": 0.9}, "severe_share")):
        with pytest.raises(InputError) as exc:
            parse_config(bad, "h.yml")
        assert exc.value.where == where


# --- the collector's script, run here on files of the collector's shape ----------------------------------


def _line(t: float, body: str) -> str:
    stamp = dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="microseconds")
    return f"{stamp} col-int-1 rsyslogd-pstats: {body}"


def _collector_files(tmp_path: Path, now: float) -> tuple[Path, Path]:
    """A syslog with 20 impstats emissions a minute apart, and a spool of three senders."""
    lines = []
    for i in range(20, 0, -1):
        t = now - i * 60 + 0.5
        lines.append(f"{dt.datetime.fromtimestamp(t - 1, dt.UTC).isoformat()} col-int-1 sshd[12]: Accepted publickey")
        lines.append(_line(t, "global: origin=dynstats msib_senders.ops_overflow=0 msib_senders.new_metric_add=2 "))
        senders = "198.18.16.100=12 198.18.31.11=3" if i <= 10 else "198.18.16.100=6 198.18.31.11=3"
        lines.append(_line(t, f"msib_senders: origin=dynstats.bucket {senders} "))
        lines.append(_line(t, "msib_siem: origin=core.action processed=100 failed=0 suspended=0 "
                              "suspended.duration=0 resumed=0 "))
        lines.append(_line(t, f"msib_relay[DA]: origin=core.queue size=0 enqueued=0 full=0 discarded.full={20 - i} "
                              "discarded.nf=0 maxqsize=0 "))
        lines.append(_line(t, f"msib_relay: origin=core.queue size=7 enqueued=81 full=0 discarded.full={2 * (20 - i)} "
                              "discarded.nf=0 maxqsize=23 "))
    syslog = tmp_path / "syslog"
    syslog.write_text("\n".join(lines) + "\n")
    spool = tmp_path / "spool"
    for ip, age in (("198.18.16.100", 5.0), ("198.18.31.11", 30.0), ("198.18.17.12", 3 * 86400.0)):
        day = time.strftime("%Y-%m-%d", time.localtime(now - age))
        f = spool / ip / f"{day}.log"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x\n")
        os.utime(f, (now - age, now - age))
    return syslog, spool


def _run_script(spool: Path, window: float, *logs: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-", str(spool), str(window), str(1 << 20), *map(str, logs)],
                          input=COLLECTOR_SCRIPT, capture_output=True, text=True, timeout=60, check=True)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_the_collector_script_reads_rates_queue_and_last_heard(tmp_path: Path) -> None:
    now = time.time()
    syslog, spool = _collector_files(tmp_path, now)
    data = _run_script(spool, 600, syslog)
    reading = parse_collector("col-int-1", data, controller_now=data["now"] + 100)  # its clock 100 s behind
    # only what the window needs was kept: 10 reports inside, one before it for the counters' deltas
    assert len(reading.reports) == 11
    assert abs(reading.interval() - 60) < 0.01
    rates = reading.rates(data["now"] + 100, 600)
    assert rates is not None and rates["198.18.16.100"] == pytest.approx(12.0) and rates["198.18.31.11"] == 3.0
    heard = reading.spool["198.18.16.100"]
    assert heard is not None and heard == pytest.approx(now - 5 + 100, abs=1)
    assert reading.spool["198.18.17.12"] == pytest.approx(now - 3 * 86400 + 100, abs=1)  # an old day's file
    assert reading.queue() == {"size": 7, "maxqsize": 23, "full": 0, "discarded.full": 0 + 2 * 19 + 19,
                               "discarded.nf": 0, "enqueued": 81}
    assert reading.window_delta(data["now"] + 100, 600, "msib_relay", "discarded.full") == 20
    # a collector whose rsyslog does not count per sender: no rates, but the spool still says when
    plain = tmp_path / "plain"
    plain.write_text("\n".join(ln for ln in syslog.read_text().splitlines() if "dynstats" not in ln) + "\n")
    bare = parse_collector("c", _run_script(spool, 600, plain), now)
    assert bare.rates(now, 600) is None and bare.spool["198.18.16.100"] is not None


# --- judging -----------------------------------------------------------------------------------------


def _inventory(tmp_path: Path) -> Path:
    root = write_lab_like_fleet(tmp_path / "fleet")
    build_fleet(load_fleet(root), only=["lab"])
    return root / "build" / "lab" / "inventory"


def _reading(name: str, spool: dict[str, float | None], per_min: dict[str, float] | None, now: float,
             started: float | None = None) -> CollectorReading:
    reports = [Report(now - 60 * i, {"msib_relay": {"size": 1, "maxqsize": 9, "discarded.full": 0,
                                                    "discarded.nf": 0},
                                     **({"msib_senders": {k: int(v) for k, v in per_min.items()}} if per_min else {})})
               for i in range(15)]
    return CollectorReading(name, spool=spool, reports=reports, rsyslog_started=started or now - 86400)


def _assess(tmp_path: Path, probed: Probed, siem: dict[str, float | None] | None, cfg: HealthConfig | None = None,
            baselines: dict[str, float] | None = None,
            deployed: dict[str, float] | None = None) -> dict[str, SourceHealth]:
    inv_dir = _inventory(tmp_path)
    inv = load(inv_dir)
    result = assess(inv, load_snapshot(inv_dir).objects, probed, siem, "no event search", cfg or HealthConfig(),
                    now=NOW, baselines=baselines, converged={"col-int-1": NOW - 3600}, deployed=deployed)
    return {s.name: s for s in result.sources}


def _healthy(now: float) -> Probed:
    return Probed(collectors={
        "col-int-1": _reading("col-int-1", {"198.18.16.100": now - 10, "198.18.31.11": now - 30,
                                            "198.18.31.1": now - 40}, {"198.18.16.100": 6}, now),
        "col-ext-1": _reading("col-ext-1", {"198.18.32.100": now - 10, "198.18.47.11": now - 20,
                                            "198.18.47.1": now - 50}, {"198.18.32.100": 4}, now)})


def test_every_expected_source_is_judged_where_it_is_heard(tmp_path: Path) -> None:
    siem = {"col-int-1": NOW - 20, "col-ext-1": NOW - 30}
    src = _assess(tmp_path, _healthy(NOW), siem)
    assert set(src) == {"col-int-1", "col-ext-1", "ids-int-1", "ids-ext-1", "fw-int-1", "fw-ext-1", "obj-int-1",
                        "obj-ext-1"}
    assert {s.state for s in src.values()} == {"ok"}
    assert (src["obj-int-1"].heard_at, src["col-int-1"].heard_at) == ("collector", "siem")
    assert src["obj-int-1"].rate == pytest.approx(6.0) and src["obj-int-1"].kind == "workstation"
    assert src["col-int-1"].metrics["queue_size"] == 1 and src["col-int-1"].metrics["convergence_age_s"] == 3600
    assert src["col-ext-1"].metrics["convergence_age_s"] is None


def test_a_source_quiet_past_its_threshold_is_silent_and_within_it_ok(tmp_path: Path) -> None:
    cfg = parse_config({"thresholds": {"workstation": "60s"}}, "h")
    probed = _healthy(NOW)
    probed.collectors["col-int-1"].spool["198.18.16.100"] = NOW - 61
    probed.collectors["col-ext-1"].spool["198.18.32.100"] = NOW - 59
    src = _assess(tmp_path, probed, {"col-int-1": NOW, "col-ext-1": NOW}, cfg)
    assert src["obj-int-1"].state == "silent" and "nothing for 61 s (threshold 60 s)" in src["obj-int-1"].reasons
    assert src["obj-ext-1"].state == "ok"


def test_what_cannot_be_asked_is_unknown_never_ok(tmp_path: Path) -> None:
    probed = _healthy(NOW)
    del probed.collectors["col-ext-1"]
    probed.unreachable["col-ext-1"] = "ssh: connect to host 198.18.47.10 port 22: No route to host"
    src = _assess(tmp_path, probed, None)
    for name in ("obj-ext-1", "ids-ext-1", "fw-ext-1"):
        assert src[name].state == "unknown" and "No route to host" in src[name].reasons[0]
    # without the SIEM's word a collector is unknown, however fine it looks from inside
    assert src["col-int-1"].state == "unknown" and "no event search" in src["col-int-1"].reasons[0]
    assert src["obj-int-1"].state == "ok"


def test_a_source_never_heard_is_silent_once_its_collector_has_listened_for_its_threshold(tmp_path: Path) -> None:
    probed = _healthy(NOW)
    del probed.collectors["col-int-1"].spool["198.18.16.100"]
    src = _assess(tmp_path, probed, {"col-int-1": NOW, "col-ext-1": NOW})
    assert src["obj-int-1"].state == "silent" and src["obj-int-1"].reasons == ["never heard at its collector"]
    probed.collectors["col-int-1"].rsyslog_started = NOW - 600  # 10 min < 24 h of a workstation
    src = _assess(tmp_path, probed, {"col-int-1": NOW, "col-ext-1": NOW})
    assert src["obj-int-1"].state == "unknown" and "not heard yet" in src["obj-int-1"].reasons[0]
    # rsyslog restarted 10 min ago, but the collector was deployed two days ago: it has listened since
    src = _assess(tmp_path, probed, {"col-int-1": NOW, "col-ext-1": NOW}, deployed={"col-int-1": NOW - 2 * 86400})
    assert src["obj-int-1"].state == "silent"


def test_a_collector_silent_at_the_siem_silences_its_circuit(tmp_path: Path) -> None:
    src = _assess(tmp_path, _healthy(NOW), {"col-int-1": NOW - 10, "col-ext-1": NOW - 3600})
    assert src["col-ext-1"].state == "silent" and "nothing at the SIEM for 60 min" in src["col-ext-1"].reasons[0]
    for name in ("obj-ext-1", "ids-ext-1", "fw-ext-1"):
        assert src[name].state == "silent"
        assert "not delivered: collector col-ext-1 is silent at the SIEM" in src[name].reasons
    assert src["obj-int-1"].state == "ok" and src["col-int-1"].state == "ok"


def test_a_relay_suspended_for_the_whole_window_is_silent_even_when_the_siem_cannot_be_asked(tmp_path: Path) -> None:
    probed = _healthy(NOW)
    for i, r in enumerate(probed.collectors["col-int-1"].reports):
        r.lines["msib_siem"] = {"suspended.duration": 2000 - 60 * i}
    probed.collectors["col-int-1"].reports.append(Report(NOW - 1000, {"msib_siem": {"suspended.duration": 1000}}))
    src = _assess(tmp_path, probed, None)
    assert src["col-int-1"].state == "silent" and "suspended" in src["col-int-1"].reasons[0]
    assert src["obj-int-1"].state == "silent" and src["col-ext-1"].state == "unknown"


def test_a_rate_below_its_share_of_the_baseline_is_degraded(tmp_path: Path) -> None:
    src = _assess(tmp_path, _healthy(NOW), {"col-int-1": NOW, "col-ext-1": NOW},
                  baselines={"object:198.18.16.100": 20.0, "object:198.18.32.100": 50.0})
    assert src["obj-int-1"].state == "degraded" and not src["obj-int-1"].severe  # 6 of 20: 30 %
    assert src["obj-ext-1"].state == "degraded" and src["obj-ext-1"].severe  # 4 of 50: 8 %
    assert "is 8% of its baseline 50.00/min" in src["obj-ext-1"].reasons[0]


def test_sensor_readings_give_capture_loss_and_rules_age() -> None:
    data = {"now": NOW, "errors": [],
            "counters": {"capture": {"kernel_packets": 1000, "kernel_drops": 25}, "decoder": {"pkts": 1000}},
            "reload": [{"id": 0, "last_reload": "2027-01-15T08:00:00.506017+0000"}],
            "ruleset": [{"id": 0, "rules_loaded": 6, "rules_failed": 0, "rules_skipped": 0}],
            "rule_files": {"/etc/suricata/rules/msib-lab.rules": NOW - 7200, "/var/lib/x.rules": None}}
    s = parse_sensor("ids-int-1", data, NOW + 5)
    assert (s.kernel_packets, s.kernel_drops, s.rules_loaded, s.rules_failed) == (1000, 25, 6, 0)
    assert s.rules_mtime == NOW - 7195
    assert s.last_reload == dt.datetime(2027, 1, 15, 8, 0, 0, 506017, dt.UTC).timestamp() + 5
    stats_off = parse_sensor("x", {"now": NOW, "errors": ["dump-counters: stats are disabled in the config"]}, NOW)
    assert stats_off.kernel_packets is None and stats_off.errors


# --- history, outputs -------------------------------------------------------------------------------------


def _result(at: float, states: dict[str, str], rate: float = 5.0) -> SbHealth:
    return SbHealth("lab", "Lab", at, sources=[
        SourceHealth(f"object:10.0.0.{i}", name, "workstation", "internal", f"10.0.0.{i}", 60.0, "collector",
                     state=state, last_heard=at - 10, rate=rate)  # type: ignore[arg-type]
        for i, (name, state) in enumerate(states.items())])


def test_history_keeps_the_latest_baselines_and_silent_periods(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    h = History(inv)
    h.save(_result(NOW, {"a": "ok", "b": "silent"}), days=1)
    assert h.latest() == _result(NOW, {"a": "ok", "b": "silent"})
    assert oct((tmp_path / "inv.health").stat().st_mode & 0o777) == "0o700"
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "inv.health").iterdir()} == {"0o600"}
    h.save(_result(NOW + 3600, {"a": "unknown", "b": "silent"}), days=1)
    h.save(_result(NOW + 7200, {"a": "ok", "b": "ok"}), days=1)
    periods = h.silences(NOW - 10, NOW + 10_000, NOW + 10_000)
    assert [(p["name"], p["from"], p["to"]) for p in periods] == [("b", NOW - 10, NOW + 7200)]
    assert h.baselines(NOW + 7200, days=1) == {}  # not a day of history yet
    for i in range(1, 30):
        h.save(_result(NOW + 7200 + 3600 * i, {"a": "ok", "b": "ok"}, rate=float(i % 5)), days=1)
    base = h.baselines(NOW + 7200 + 3600 * 29, days=1)
    assert base["object:10.0.0.0"] == 2.0
    h.save(_result(NOW + 200_000, {"a": "silent", "b": "ok"}), days=1)
    open_now = h.silences(NOW + 199_000, NOW + 300_000, NOW + 200_001)
    assert [(p["name"], p["to"]) for p in open_now] == [("a", None)]


def test_prometheus_exposition_is_valid_and_names_the_silent_source(tmp_path: Path) -> None:
    r = _result(NOW, {'ws "quoted"\\': "silent", "b": "ok"})
    r.sources[1].metrics.update({"queue_size": 7, "convergence_age_s": 12.5, "capture_loss": None})
    r.unreachable["col-ext-1"] = "no route"
    text = exposition([r])
    assert 'msib_source_state{sb="lab",circuit="internal",source="ws \\"quoted\\"\\\\",kind="workstation",' \
           'address="10.0.0.0",state="silent"} 1' in text
    assert 'msib_collector_queue_size{sb="lab",circuit="internal",source="b",kind="workstation",' in text
    assert 'msib_health_unreachable{sb="lab",place="col-ext-1"} 1' in text
    promtool = shutil.which("promtool")
    assert promtool, "Debian's prometheus package (promtool) is needed: scripts/setup installs it"
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    broken = subprocess.run([promtool, "check", "metrics"], input=text.replace("# TYPE msib_source_state gauge\n", ""
                                                                               ).replace("} 1\n", "} one\n", 1),
                            capture_output=True, text=True)
    assert broken.returncode != 0  # promtool does notice a broken exposition


def test_the_exporter_serves_the_latest_saved_results(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    History(inv).save(_result(NOW, {"a": "silent"}), days=7)
    port = free_port()
    server, _thread = serve_in_thread("127.0.0.1", port, lambda: [inv, tmp_path / "none"])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'state="silent"} 1' in body and f"msib_health_run_timestamp_seconds{{sb=\"lab\"}} {int(NOW)}" in body
    finally:
        server.shutdown()
        server.server_close()


def test_health_of_an_inventory_whose_appliances_cannot_be_reached_is_unknown_and_exits_0(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    root.mkdir()
    (root / "fleet.yml").write_text("")
    write_sb(root, "aaa", refusing_site("aaa", free_port()))
    build_fleet(load_fleet(root))
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "health", "--inventory", str(root / "build/aaa/inventory"),
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sb = json.loads(proc.stdout)["sbs"][0]
    col = sb["sources"][0]
    assert col["name"] == "col-int-1" and col["state"] == "unknown"
    assert "Connection refused" in sb["unreachable"]["col-int-1"]
    assert "cannot be asked for events" in sb["unreachable"]["siem"]
    bad = subprocess.run([str(REPO / ".venv/bin/msib"), "health", "--inventory", str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "no hosts.yml" in (bad.stdout + bad.stderr) and "Traceback" not in bad.stderr


def test_a_real_prometheus_scrapes_the_exporter_and_finds_the_silent_source(tmp_path: Path) -> None:
    from prometheus_helpers import prometheus

    inv = tmp_path / "inv"
    inv.mkdir()
    History(inv).save(_result(time.time(), {"obj-int-1": "silent", "obj-ext-1": "ok"}), days=7)
    port = free_port()
    server, _thread = serve_in_thread("127.0.0.1", port, lambda: [inv])
    try:
        with prometheus(tmp_path, free_port(), [f"127.0.0.1:{port}"]) as prom:
            found = prom.wait_for('msib_source_state{state="silent"} == 1')
            assert [(r["metric"]["source"], r["metric"]["sb"], r["metric"]["kind"]) for r in found] == \
                [("obj-int-1", "lab", "workstation")]
            assert prom.query('up{job="msib_health"}')[0]["value"][1] == "1"
    finally:
        server.shutdown()
        server.server_close()


def test_the_timer_runs_health_every_few_minutes_and_systemd_accepts_the_units(tmp_path: Path) -> None:
    from msib.health.timer import install_timer

    inv = _inventory(tmp_path)
    env = tmp_path / "health.env"
    paths = install_timer(inventory=inv, fleet=None, unit_dir=tmp_path / "units", env_file=env, msib="/usr/bin/true",
                          enable=False)
    service = Path(paths["msib-health.service"]).read_text()
    assert "ExecStart=/usr/bin/true health $MSIB_HEALTH_ARGS --json" in service
    assert f"MSIB_HEALTH_ARGS=--inventory {inv.resolve()}" in env.read_text()
    assert "OnUnitActiveSec=5min" in Path(paths["msib-health.timer"]).read_text()
    units = [p for k, p in paths.items() if k != "env"]
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True,
                          cwd=tmp_path / "units")
    complaints = [ln for ln in proc.stderr.splitlines() if "msib-health" in ln]
    assert proc.returncode == 0 and not complaints, proc.stderr
    with pytest.raises(InputError):
        install_timer(inventory=inv, fleet=tmp_path, unit_dir=tmp_path / "u2", env_file=env, enable=False)
