"""Where health's numbers come from: the collectors (per-sender counters, spool, queue), the sensors, the SIEM.

- **Collectors** count events per sender: rsyslog ``dynstats`` keyed by the sender's address
  (``msib_senders``, reset every impstats interval), reported with the queue and action counters
  by ``impstats`` into the collector's own syslog (roles/collector). The local spool
  (``<spool>/<sender address>/<day>.log``) is written as events arrive: its newest file's
  modification time is when the sender was last heard. A small read-only script, run over SSH
  (strict host keys, the inventory's settings), reads both: the syslog backwards, only as far as
  the rate window, and one ``stat`` per sender.
- **IDS sensors**: Suricata's counters (``suricatasc -c dump-counters``: capture.kernel_packets,
  capture.kernel_drops), its rule set (``ruleset-stats``, ``ruleset-reload-time``) and the loaded
  rule files' modification times.
- **The SIEM** answers for the collectors (their own events reach it directly): a
  :class:`SiemView`. A SIEM whose API cannot be asked for events (Wazuh's server API cannot)
  gives :class:`NoSiemEvents`, and a collector's state is then ``unknown`` unless the collector
  itself shows that its relay is suspended.

Times a host reports are turned into the controller's clock by the host's own ``now`` (the
difference of the two clocks is taken out).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from msib.contract import Appliance, Inventory

#: The most of a collector's syslog read backwards per run (bounds the cost when impstats is off).
SYSLOG_BUDGET_BYTES = 64 * 1024 * 1024
#: Where a collector's own syslog (with the impstats lines) is, newest first (roles/collector).
COLLECTOR_SYSLOG = ("/var/log/syslog", "/var/log/syslog.1")
HOST_TIMEOUT_S = 120.0

# Runs on a collector with its own python3 (stdlib only; stdin is this script).
# argv: spool dir, window seconds, byte budget, the syslog files newest first. Prints one JSON document.
COLLECTOR_SCRIPT = r'''
import json, os, sys, time, datetime
spool, window, budget, logs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
now = time.time()
out = {"now": now, "spool": {}, "groups": [], "rsyslog_started": None, "errors": []}
days = [time.strftime("%Y-%m-%d", time.localtime(now - 86400 * i)) for i in range(3)]
try:
    senders = [d.name for d in os.scandir(spool) if d.is_dir(follow_symlinks=False)]
except OSError as e:
    senders = []
    out["errors"].append("spool %s: %s" % (spool, e.strerror))
for s in senders:
    best = None
    for day in days:
        try:
            best = os.stat(os.path.join(spool, s, day + ".log")).st_mtime
            break
        except OSError:
            pass
    if best is None:
        try:
            names = sorted(n for n in os.listdir(os.path.join(spool, s)) if n.endswith(".log"))
            if names:
                best = os.stat(os.path.join(spool, s, names[-1])).st_mtime
        except OSError:
            pass
    out["spool"][s] = best
try:
    pid = int(open("/run/rsyslogd.pid").read().split()[0])
    ticks = int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[19])
    btime = [int(l.split()[1]) for l in open("/proc/stat") if l.startswith("btime ")][0]
    out["rsyslog_started"] = btime + ticks / os.sysconf("SC_CLK_TCK")
except (OSError, ValueError, IndexError):
    out["errors"].append("rsyslogd is not running")
def stamp(text):
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
def backwards(paths, budget):
    for p in paths:
        try:
            f = open(p, "rb")
        except OSError:
            continue
        with f:
            f.seek(0, 2)
            pos, rest = f.tell(), b""
            while pos > 0 and budget > 0:
                n = min(65536, pos)
                pos -= n
                budget -= n
                f.seek(pos)
                lines = (f.read(n) + rest).split(b"\n")
                rest = lines[0]
                for line in reversed(lines[1:]):
                    yield line
            if pos == 0 and rest:
                yield rest
        if budget <= 0:
            return
groups, group, older = [], None, 0
for raw in backwards(logs, budget):
    if b"rsyslogd-pstats:" not in raw:
        continue
    line = raw.decode("utf-8", "replace")
    t = stamp(line.split(" ", 1)[0])
    if t is None:
        continue
    if group is None or abs(group["t"] - t) > 1.0:
        if t < now - window:
            older += 1
            if older > 1:
                break
        group = {"t": t, "lines": {}}
        groups.append(group)
    body = line.split("rsyslogd-pstats:", 1)[1].strip()
    name, sep, rest = body.partition(": origin=")
    if not sep:
        continue
    origin, _, values = rest.partition(" ")
    kv = {}
    for item in values.split():
        k, eq, v = item.rpartition("=")
        if eq:
            try:
                kv[k] = int(v)
            except ValueError:
                pass
    key = name if origin != "dynstats" else "dynstats"
    group["lines"].setdefault(key, kv)
out["groups"] = groups
print(json.dumps(out))
'''

# Runs on an IDS sensor with its own python3. Prints one JSON document.
SENSOR_SCRIPT = r'''
import json, os, subprocess, time
def run(*args):
    try:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
def answer(text):
    try:
        data = json.loads(text)
    except ValueError:
        return None, (text.strip() or "no answer")[:200]
    if data.get("return") != "OK":
        return None, str(data.get("message"))[:200]
    return data.get("message"), None
out = {"now": time.time(), "errors": []}
conf = {}
for line in run("suricata", "--dump-config", "-c", "/etc/suricata/suricata.yaml").splitlines():
    k, sep, v = line.partition(" = ")
    if sep:
        conf[k.strip()] = v.strip()
sock = conf.get("unix-command.filename", "/var/run/suricata-command.socket")
base = conf.get("default-rule-path", "/etc/suricata/rules")
out["counters"], err = answer(run("suricatasc", "-c", "dump-counters", sock))
if err:
    out["errors"].append("dump-counters: " + err)
out["reload"], err = answer(run("suricatasc", "-c", "ruleset-reload-time", sock))
if err:
    out["errors"].append("ruleset-reload-time: " + err)
out["ruleset"], err = answer(run("suricatasc", "-c", "ruleset-stats", sock))
if err:
    out["errors"].append("ruleset-stats: " + err)
mtimes = {}
for k, v in conf.items():
    if k.startswith("rule-files.") and v:
        path = v if v.startswith("/") else os.path.join(base, v)
        try:
            mtimes[path] = os.stat(path).st_mtime
        except OSError:
            mtimes[path] = None
out["rule_files"] = mtimes
print(json.dumps(out))
'''


class SiemUnavailable(Exception):
    """The SIEM could not be asked (no event search in its API, or it did not answer)."""


class SiemView(Protocol):
    """How health asks the SIEM when it last had an event from a collector (by host name)."""

    def last_heard(self, names: Sequence[str]) -> Mapping[str, float | None]:
        """Name -> epoch seconds (controller clock) of the newest event; raises SiemUnavailable."""
        ...


class NoSiemEvents:
    """For a SIEM whose API cannot be asked for events (Wazuh's server API): every answer is unknown."""

    def __init__(self, why: str = "the SIEM's API (wazuh driver) cannot be asked for events") -> None:
        self.why = why

    def last_heard(self, names: Sequence[str]) -> Mapping[str, float | None]:
        raise SiemUnavailable(self.why)


# --- readings -------------------------------------------------------------------------------------


@dataclass
class Report:
    """One impstats emission of a collector: its time (controller clock) and its counter lines."""

    t: float
    lines: dict[str, dict[str, int]]

    @property
    def senders(self) -> dict[str, int] | None:
        """Events per sender address in this interval; None when the collector does not count them."""
        if "msib_senders" in self.lines:
            return self.lines["msib_senders"]
        dyn = self.lines.get("dynstats", {})
        return {} if any(k.startswith("msib_senders.") for k in dyn) else None


@dataclass
class CollectorReading:
    """What a collector said: spool times per sender, its impstats reports (newest first), rsyslog's start."""

    name: str
    spool: dict[str, float | None] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list)
    rsyslog_started: float | None = None
    errors: list[str] = field(default_factory=list)

    def in_window(self, now: float, window: float) -> list[Report]:
        return [r for r in self.reports if r.t > now - window]

    def interval(self) -> float | None:
        """Seconds between two reports (their median spacing); None with fewer than two."""
        times = sorted(r.t for r in self.reports)
        gaps = [b - a for a, b in itertools.pairwise(times) if b - a > 1.0]
        return statistics.median(gaps) if gaps else None

    def rates(self, now: float, window: float) -> dict[str, float] | None:
        """Events per minute per sender address over the window; None when nothing was counted in it."""
        counted = [r for r in self.in_window(now, window) if r.senders is not None]
        interval = self.interval()
        if not counted or not interval:
            return None
        totals: dict[str, int] = {}
        for r in counted:
            for ip, n in (r.senders or {}).items():
                totals[ip] = totals.get(ip, 0) + n
        minutes = len(counted) * interval / 60.0
        return {ip: n / minutes for ip, n in totals.items()}

    def queue(self) -> dict[str, int] | None:
        """The relay queue's newest counters (memory and disk parts summed), or None."""
        for r in self.reports:
            if "msib_relay" in r.lines:
                mem, disk = r.lines["msib_relay"], r.lines.get("msib_relay[DA]", {})
                return {k: mem.get(k, 0) + disk.get(k, 0)
                        for k in ("size", "maxqsize", "full", "discarded.full", "discarded.nf", "enqueued")}
        return None

    def window_delta(self, now: float, window: float, line: str, key: str) -> int | None:
        """How much a cumulative counter grew over the window (from the newest report before it)."""
        values = [(r.t, r.lines[line][key]) for r in self.reports if key in r.lines.get(line, {})]
        if len(values) < 2:
            return None
        newest = values[0][1]
        base = next((v for t, v in values if t <= now - window), values[-1][1])
        return newest - base if newest >= base else newest  # a restart reset the counter


@dataclass
class SensorReading:
    """What an IDS sensor said (controller clock)."""

    name: str
    kernel_packets: int | None = None
    kernel_drops: int | None = None
    rules_loaded: int | None = None
    rules_failed: int | None = None
    last_reload: float | None = None
    rules_mtime: float | None = None
    errors: list[str] = field(default_factory=list)


def parse_collector(name: str, data: Mapping[str, Any], controller_now: float) -> CollectorReading:
    """The collector script's JSON as a reading, its times moved to the controller's clock."""
    shift = controller_now - float(data.get("now") or controller_now)
    reading = CollectorReading(name=name, errors=[str(e) for e in data.get("errors") or []])
    for ip, t in (data.get("spool") or {}).items():
        reading.spool[str(ip)] = None if t is None else float(t) + shift
    for g in data.get("groups") or []:
        lines = {str(k): {str(a): int(b) for a, b in v.items()} for k, v in (g.get("lines") or {}).items()}
        reading.reports.append(Report(float(g["t"]) + shift, lines))
    reading.reports.sort(key=lambda r: r.t, reverse=True)
    started = data.get("rsyslog_started")
    reading.rsyslog_started = None if started is None else float(started) + shift
    return reading


def parse_sensor(name: str, data: Mapping[str, Any], controller_now: float) -> SensorReading:
    """The sensor script's JSON as a reading (controller clock)."""
    shift = controller_now - float(data.get("now") or controller_now)
    out = SensorReading(name=name, errors=[str(e) for e in data.get("errors") or []])
    counters = data.get("counters")
    if isinstance(counters, dict):
        capture = counters["capture"] if isinstance(counters.get("capture"), dict) else {}
        out.kernel_packets = _int(capture.get("kernel_packets"))
        out.kernel_drops = _int(capture.get("kernel_drops"))
    ruleset = data.get("ruleset")
    if isinstance(ruleset, list) and ruleset:
        out.rules_loaded = sum(_int(e.get("rules_loaded")) or 0 for e in ruleset if isinstance(e, dict))
        out.rules_failed = sum(_int(e.get("rules_failed")) or 0 for e in ruleset if isinstance(e, dict))
    reload = data.get("reload")
    if isinstance(reload, list) and reload and isinstance(reload[0], dict):
        out.last_reload = _suricata_time(str(reload[0].get("last_reload") or ""))
    files = [float(t) for t in (data.get("rule_files") or {}).values() if t is not None]
    out.rules_mtime = max(files) + shift if files else None
    if out.last_reload is not None:
        out.last_reload += shift
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _suricata_time(text: str) -> float | None:
    """Suricata's ``2026-12-05T06:31:52.506017+0000`` as epoch seconds."""
    import datetime as dt

    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


# --- asking over SSH --------------------------------------------------------------------------------


@dataclass
class Probed:
    """Every reading of one SB's appliances, and the hosts that could not be asked (with why)."""

    collectors: dict[str, CollectorReading] = field(default_factory=dict)
    sensors: dict[str, SensorReading] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)


def probe(inv: Inventory, *, window: float, workers: int = 8) -> Probed:
    """Ask every collector and IDS sensor of the inventory, `workers` at a time, over SSH (strict host keys)."""
    from msib import render
    from msib.update import Remote, UpdateError

    hosts = [h for h in inv.of("collector", "ids_sensor")]
    result = Probed()
    if not hosts:
        return result
    remote = Remote(inv, hosts)

    def ask(h: Appliance) -> None:
        try:
            if h.role == "collector":
                spool = str(render.context("collector", h.vars).get("collector_spool_dir") or "/var/log/msib")
                argv = " ".join(["python3 -", _q(spool), str(int(window) + 1), str(SYSLOG_BUDGET_BYTES),
                                 *COLLECTOR_SYSLOG])
                proc = remote.run(h.name, argv, stdin=COLLECTOR_SCRIPT.encode(), timeout=HOST_TIMEOUT_S)
            else:
                proc = remote.run(h.name, "python3 -", stdin=SENSOR_SCRIPT.encode(), timeout=HOST_TIMEOUT_S)
            now = time.time()
            if proc.returncode != 0:
                err = proc.stderr.decode(errors="replace").strip().splitlines()
                result.unreachable[h.name] = (err[-1] if err else f"exit {proc.returncode}")[:300]
                return
            data = json.loads(proc.stdout.decode(errors="replace"))
            if h.role == "collector":
                result.collectors[h.name] = parse_collector(h.name, data, now)
            else:
                result.sensors[h.name] = parse_sensor(h.name, data, now)
        except UpdateError as exc:
            result.unreachable[h.name] = str(exc)
        except (ValueError, KeyError, TypeError) as exc:
            result.unreachable[h.name] = f"unreadable answer: {exc}"

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
            list(pool.map(ask, hosts))
    finally:
        remote.close()
    return result


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)
