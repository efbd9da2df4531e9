"""msib update on the lab: a new rule set reaches every sensor and is running there (verified),
without a restart; a second run changes nothing; two runs at once: the second refuses (exit 75);
a rule set Suricata refuses is never pushed; an update that does not take effect is a failure.

The lab's sensors run Suricata 7 (ids-int-1, Debian 12) and Suricata 8 (ids-ext-1, Debian 13). The
rule source is served over HTTP on the controller's lab address (as the project serves it in a
closed circuit); the controller fetches it once per Suricata series, and each sensor gets the set
built for its own series (the 8.0 set uses a keyword Suricata 7 refuses).
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from msib.checks.parsers import suricata_time
from msib.lab import Lab
from msib.update import publish_ruleset

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
MSIB = str(REPO / ".venv" / "bin" / "msib")
LAB_VARS = REPO / "playbooks" / "vars" / "lab.yml"
SENSORS = ("ids-int-1", "ids-ext-1")
#: each lab sensor's Suricata series (inventories/lab/site.yml: ids-ext-1 runs Suricata 8)
SERIES = {"ids-int-1": "7.0", "ids-ext-1": "8.0"}
RULE_FILE = "/var/lib/suricata/rules/msib-update.rules"


def base_rules(series: str) -> str:
    """The newest rule set the repository ships for `series`."""
    return sorted((REPO / "rulesets" / f"suricata-{series}").glob("*/msib-update.rules"))[-1].read_text()


class _Handler(http.server.SimpleHTTPRequestHandler):
    gate: threading.Event
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path.endswith("latest.json"):
            self.gate.wait(timeout=120)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RuleServer:
    """An HTTP rule source on the controller's lab address; `gate` holds index requests while cleared."""

    def __init__(self, root: Path, address: str) -> None:
        self.root, self.gate, self.requests = root, threading.Event(), []
        self.gate.set()
        handler = type("H", (_Handler,), {"gate": self.gate, "requests": self.requests})
        self.httpd = http.server.ThreadingHTTPServer((address, 0), functools.partial(handler, directory=str(root)))
        self.url = f"http://{address}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def ssh(lab: Lab, name: str, script: str) -> str:
    proc = subprocess.run(lab.ssh_argv(name, ["sudo", "sh", "-c", f"'{script}'"]), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{name}: {script}: {proc.stderr}"
    return proc.stdout


def sensor_state(lab: Lab, name: str) -> dict[str, Any]:
    """What the sensor itself says: the rule file's sha256 and mtime, the engine's rules and last reload,
    Suricata's version and PID."""
    words = ssh(lab, name, f"sha256sum {RULE_FILE}; stat -c %.9Y {RULE_FILE}").split()
    sha, mtime = words[0], words[-1]
    # no socket given: the one the sensor's own suricatasc (and Debian's unit) uses by default
    stats = json.loads(ssh(lab, name, "suricatasc -c ruleset-stats"))
    reload = json.loads(ssh(lab, name, "suricatasc -c ruleset-reload-time"))
    pid = ssh(lab, name, "systemctl show -p MainPID --value suricata").strip()
    version = ssh(lab, name, "suricata -V").split("version ", 1)[1].split()[0]
    return {"sha256": sha, "mtime": float(mtime), "loaded": stats["message"][0]["rules_loaded"], "pid": pid,
            "reload": reload["message"][0]["last_reload"], "series": ".".join(version.split(".")[:2])}


def update(source: str, cache: Path, lock: Path, *extra: str, wait: bool = True) -> Any:
    argv = [MSIB, "update", "--inventory", "/var/lib/msib-lab/inventory", "--vars", str(LAB_VARS), "--rules",
            "--rules-source", source, "--lock-file", str(lock), "--json", *extra]
    env = {"MSIB_RULES_CACHE": str(cache), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if not wait:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


@pytest.fixture(scope="module")
def source(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RuleServer, Path, Path]]:
    """A served rule source (a copy of the repository's rulesets/), a controller cache and a lock file."""
    root = tmp_path_factory.mktemp("rules-source")
    shutil.copytree(REPO / "rulesets", root, dirs_exist_ok=True)
    cache, lock = tmp_path_factory.mktemp("rules-cache"), tmp_path_factory.mktemp("lock") / "update.lock"
    server = RuleServer(root, lab.controller_address)
    ok = subprocess.run([MSIB, "deploy", "--inventory", "/var/lib/msib-lab/inventory", "--engine", "pyinfra",
                         "--vars", str(LAB_VARS), "--limit", ",".join(SENSORS)], capture_output=True, text=True,
                        timeout=1800)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    rc, _, err = update(server.url, cache, lock)
    assert rc == 0, err
    yield server, cache, lock
    # leave the sensors with the repository's rule set, as the lab's own update would
    subprocess.run([MSIB, "update", "--inventory", "/var/lib/msib-lab/inventory", "--vars", str(LAB_VARS),
                    "--rules", "--lock-file", str(lock)], capture_output=True, timeout=900,
                   env={"MSIB_RULES_CACHE": str(cache), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    server.close()


def publish(root: Path, version: str, extra_rules: list[str]) -> None:
    """A new version of the rule set of every series: the repository's set plus `extra_rules`."""
    for series in sorted(set(SERIES.values())):
        publish_ruleset(root, series, version,
                        {"msib-update.rules": base_rules(series) + "".join(r + "\n" for r in extra_rules)})


NEW_RULE = ('alert tcp $HOME_NET any -> $EXTERNAL_NET 6667 (msg:"MSIB IRC from the circuit {n}"; '
            'flow:to_server; flags:S,12; classtype:policy-violation; sid:{sid}; rev:1;)')


def test_a_new_rule_set_is_running_on_every_sensor_without_restart(
        lab: Lab, source: tuple[RuleServer, Path, Path]) -> None:
    server, cache, lock = source
    before = {s: sensor_state(lab, s) for s in SENSORS}
    version = f"t{int(time.time())}"
    publish(server.root, version, [NEW_RULE.format(n=1, sid=9901901), NEW_RULE.format(n=2, sid=9901902)])
    server.requests.clear()
    rc, summary, err = update(server.url, cache, lock)
    assert rc == 0, err
    assert summary["ok"] and summary["changed"]
    assert {s: st["series"] for s, st in before.items()} == SERIES, "the lab's sensors run Suricata 7 and 8"
    # fetched once centrally per Suricata series, whatever the number of sensors
    assert sorted(p for p in server.requests if p.endswith(".rules")) == [
        f"/suricata-{series}/{version}/msib-update.rules" for series in ("7.0", "8.0")]
    assert {k: v["sensors"] for k, v in summary["rules"]["series"].items()} == {"7.0": ["ids-int-1"],
                                                                                 "8.0": ["ids-ext-1"]}
    assert all(v["fetched"] == "source" for v in summary["rules"]["series"].values())
    assert summary["rules"]["series"]["7.0"]["sha256"] != summary["rules"]["series"]["8.0"]["sha256"]
    for s in SENSORS:
        got = summary["rules"]["sensors"][s]
        assert (got["status"], got["version"], got["series"]) == ("updated", version, SERIES[s]), got
        after = sensor_state(lab, s)
        # each sensor runs the set built for its own series
        assert after["sha256"] == got["sha256"] == summary["rules"]["series"][SERIES[s]]["sha256"]
        assert after["loaded"] == before[s]["loaded"] + 2 == got["rules_loaded"]
        assert after["pid"] == before[s]["pid"], "Suricata was restarted, not reloaded"
        # verified: the engine's last reload is at or after the pushed file's mtime
        assert after["reload"] == got["last_reload"] != before[s]["reload"]
        assert suricata_time(after["reload"]) >= after["mtime"]


def test_debians_unit_reloads_suricata_through_its_socket_on_both_majors(
        lab: Lab, source: tuple[RuleServer, Path, Path]) -> None:
    """The unit's ExecReload/ExecStop call suricatasc without a socket: the deployed socket must be
    where that major's suricatasc looks (8's moved to /var/run/suricata/; a reload there failed)."""
    for s in SENSORS:
        pid = ssh(lab, s, "systemctl show -p MainPID --value suricata").strip()
        since = ssh(lab, s, "date +%s.%N").strip()
        ssh(lab, s, "systemctl reload suricata")  # (asserts exit 0)
        log = ssh(lab, s, f"journalctl -u suricata --no-pager --since @{since}")
        assert "Unable to connect" not in log and "FAILURE" not in log, (s, log)
        assert ssh(lab, s, "systemctl show -p MainPID --value suricata").strip() == pid, s


def test_a_second_run_changes_nothing(lab: Lab, source: tuple[RuleServer, Path, Path]) -> None:
    server, cache, lock = source
    rc, _, err = update(server.url, cache, lock)
    assert rc == 0, err
    before = {s: sensor_state(lab, s) for s in SENSORS}
    server.requests.clear()
    rc, summary, err = update(server.url, cache, lock)
    assert rc == 0, err
    assert summary["changed"] is False
    assert {s: summary["rules"]["sensors"][s]["status"] for s in SENSORS} == dict.fromkeys(SENSORS, "unchanged")
    assert all(v["fetched"] == "cache" for v in summary["rules"]["series"].values())
    assert not [p for p in server.requests if p.endswith(".rules")], "the cached rule set was downloaded again"
    assert {s: sensor_state(lab, s) for s in SENSORS} == before  # not even reloaded


def test_two_runs_at_once_the_second_refuses_cleanly(lab: Lab, source: tuple[RuleServer, Path, Path]) -> None:
    server, cache, lock = source
    server.gate.clear()  # the first run waits for the rule index while holding the lock
    server.requests.clear()
    try:
        first = update(server.url, cache, lock, wait=False)
        deadline = time.monotonic() + 60
        while "/suricata-7.0/latest.json" not in server.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests == ["/suricata-7.0/latest.json"], "the first run never asked for the rule index"
        server.requests.clear()
        rc, summary, err = update(server.url, cache, lock)
        touched = list(server.requests)  # before the first run goes on (to the next series' index)
    finally:
        server.gate.set()
    out, first_err = first.communicate(timeout=600)
    assert rc == 75, (summary, err)
    assert summary == {"ok": False, "locked": True, "exit_code": 75, "message": summary["message"]}
    assert f"another msib update is running (pid {first.pid}" in summary["message"]
    assert "another msib update is running" in err
    assert touched == [], "the refused run touched the rule source"
    assert first.returncode == 0, first_err
    assert json.loads(out)["ok"] is True


def test_a_rule_set_suricata_refuses_is_never_pushed(lab: Lab, source: tuple[RuleServer, Path, Path]) -> None:
    server, cache, lock = source
    before = {s: sensor_state(lab, s) for s in SENSORS}
    publish(server.root, f"bad{int(time.time())}", ['alert tcp any any -> any any (msg:"broken"; nosuchkeyword; '
                                                     'sid:9901950; rev:1;)'])
    rc, summary, _ = update(server.url, cache, lock)
    assert rc == 1 and summary["ok"] is False
    for series in ("7.0", "8.0"):
        assert "suricata -T refused" in summary["rules"]["series"][series]["error"]
        assert "nosuchkeyword" in summary["rules"]["series"][series]["error"]
    assert {s: sensor_state(lab, s) for s in SENSORS} == before
    publish(server.root, f"good{int(time.time())}", [NEW_RULE.format(n=3, sid=9901903)])
    rc, _, err = update(server.url, cache, lock)
    assert rc == 0, err


def test_an_update_that_does_not_take_effect_is_a_failure(lab: Lab, source: tuple[RuleServer, Path, Path]) -> None:
    server, cache, lock = source
    publish(server.root, f"t{int(time.time())}b", [NEW_RULE.format(n=4, sid=9901904)])
    ssh(lab, "ids-ext-1", "systemctl stop suricata")  # the engine cannot reload what it does not run
    try:
        rc, summary, _ = update(server.url, cache, lock)
    finally:
        ssh(lab, "ids-ext-1", "systemctl start suricata")
    assert rc == 1 and summary["ok"] is False
    assert summary["rules"]["sensors"]["ids-int-1"]["status"] == "updated"
    bad = summary["rules"]["sensors"]["ids-ext-1"]
    assert bad["status"] == "failed" and bad["error"]
    assert any(f.startswith("ids-ext-1: rules:") for f in summary["failures"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # Suricata answers on its socket once its rules are loaded
        if subprocess.run(lab.ssh_argv("ids-ext-1", ["sudo", "suricatasc", "-c", "uptime"]),
                          capture_output=True, timeout=60).returncode == 0:
            break
        time.sleep(0.5)
    rc, summary, err = update(server.url, cache, lock)
    assert rc == 0, err
    assert summary["rules"]["sensors"]["ids-ext-1"]["status"] in ("unchanged", "updated")


def test_rules_written_after_the_engines_last_reload_are_reloaded(
        lab: Lab, source: tuple[RuleServer, Path, Path]) -> None:
    """The right file is not enough: an engine whose last reload is older than the file runs older rules."""
    server, cache, lock = source
    rc, _, err = update(server.url, cache, lock)
    assert rc == 0, err
    ssh(lab, "ids-ext-1", f"touch {RULE_FILE}")  # same bytes, written after the last reload
    before = sensor_state(lab, "ids-ext-1")
    assert suricata_time(before["reload"]) < before["mtime"]
    rc, summary, err = update(server.url, cache, lock)
    assert rc == 0, err
    assert summary["rules"]["sensors"]["ids-int-1"]["status"] == "unchanged"
    assert summary["rules"]["sensors"]["ids-ext-1"]["status"] == "updated"
    after = sensor_state(lab, "ids-ext-1")
    assert (after["sha256"], after["pid"]) == (before["sha256"], before["pid"])
    assert suricata_time(after["reload"]) >= after["mtime"]


def test_a_sensor_whose_suricata_is_not_the_inventorys_major_gets_no_rule_set(
        lab: Lab, source: tuple[RuleServer, Path, Path], tmp_path: Path) -> None:
    server, cache, lock = source
    vars_file = tmp_path / "major.yml"
    vars_file.write_text("ids_sensor_suricata_major: 7\n")  # ids-ext-1 runs Suricata 8
    before = sensor_state(lab, "ids-ext-1")
    rc, summary, _ = update(server.url, cache, lock, "--vars", str(vars_file), "--limit", "ids-ext-1")
    assert rc == 1 and summary["ok"] is False
    error = summary["rules"]["sensors"]["ids-ext-1"]["error"]
    assert "ids-ext-1: runs Suricata 8.0, the inventory says ids_sensor_suricata_major 7" in error
    assert summary["rules"]["series"] == {}
    assert sensor_state(lab, "ids-ext-1") == before
