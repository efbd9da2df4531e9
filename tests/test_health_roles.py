"""What health reads: the collector counts per sender, sensors and firewalls send a heartbeat, runs are recorded."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from inventory_helpers import host_vars
from msib import render, runlog

REPO = Path(__file__).resolve().parents[1]


def _ctx(role: str, name: str, **extra: object) -> dict[str, object]:
    return render.context(role, {**host_vars(name, role, collector_ca_file="/tmp/ca.pem",
                                             collector_cert_dir="/tmp/pki"), **extra})


def _validate(conf: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """rsyslogd -N1 on the whole config (RELP included), its TLS files replaced by empty ones of this test."""
    for name in ("ca.pem", "collector.pem", "collector.key"):
        (tmp_path / name).write_text("")
        conf = conf.replace(f"/etc/msib/tls/{name}", str(tmp_path / name))
    path = tmp_path / "rsyslog.conf"
    path.write_text(conf)
    return subprocess.run(["rsyslogd", "-N1", "-f", str(path)], capture_output=True, text=True, timeout=60)


def test_the_collector_counts_events_per_sender_while_its_counters_are_on(tmp_path: Path) -> None:
    conf = render.render("collector", "rsyslog.conf.j2", _ctx("collector", "col-int-1"))
    assert 'dyn_stats(name="msib_senders" resettable="on" maxCardinality="50000"' in conf
    remote = conf[conf.index('ruleset(name="msib_remote"'):]
    assert remote.index('dyn_inc("msib_senders", $fromhost-ip)') < remote.index("call msib_relay")
    proc = _validate(conf, tmp_path)
    assert proc.returncode == 0, proc.stderr
    off = render.render("collector", "rsyslog.conf.j2", _ctx("collector", "col-int-1", collector_stats_interval=0))
    assert "dyn_stats" not in off and "dyn_inc" not in off


def test_sensors_and_firewalls_send_a_heartbeat_and_suricata_keeps_its_counters(tmp_path: Path) -> None:
    for role, name in (("ids_sensor", "ids-int-1"), ("firewall", "fw-int-1")):
        conf = render.render(role, "rsyslog.conf.j2", _ctx(role, name))
        assert 'module(load="impstats" interval="60" severity="6" log.syslog="on")' in conf
        proc = _validate(conf, tmp_path)
        assert proc.returncode == 0, proc.stderr
        off = _ctx(role, name, **{f"{role}_stats_interval": 0})
        assert "impstats" not in render.render(role, "rsyslog.conf.j2", off)
    suricata = render.render("ids_sensor", "suricata.yaml.j2", _ctx("ids_sensor", "ids-int-1"))
    assert "stats:\n  enabled: yes\n  interval: 30\n" in suricata


def test_a_deploy_records_its_outcome_beside_the_inventory_and_convergence_follows(tmp_path: Path) -> None:
    """`msib deploy` on an unreachable host: the run is recorded (failed); convergence is a run with no change."""
    from fleet_helpers import free_port, refusing_site, write_sb
    from msib.fleet.build import build_fleet
    from msib.fleet.model import load_fleet

    root = tmp_path / "fleet"
    root.mkdir()
    (root / "fleet.yml").write_text("")
    write_sb(root, "aaa", refusing_site("aaa", free_port()))
    build_fleet(load_fleet(root))
    inv = root / "build" / "aaa" / "inventory"
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "deploy", "--inventory", str(inv), "--engine", "pyinfra"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    (rec,) = runlog.records(inv)
    assert rec["kind"] == "deploy" and rec["ok"] is False and rec["engine"] == "pyinfra"
    assert rec["hosts"]["col-int-1"]["error"]
    assert runlog.converged_at(inv) == {}
    t = time.time()
    runlog.record(inv, "deploy", {"hosts": {"col-int-1": {"changed": 0, "unchanged": 17, "failed": 0}}}, ok=True,
                  finished=t)
    runlog.record(inv, "deploy", {"hosts": {"col-int-1": {"changed": 2, "unchanged": 15, "failed": 0}}}, ok=True,
                  finished=t + 60)
    assert runlog.converged_at(inv) == {"col-int-1": float(round(t))}
    assert json.loads(runlog.runlog_path(inv).read_text().splitlines()[0])["kind"] == "deploy"
    # a run log that cannot be written is a warning, never the run's failure
    assert runlog.record(tmp_path / "no" / "such" / "inv", "check", {}, ok=True) is not None
