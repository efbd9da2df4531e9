"""End-to-end log delivery: a canary event from every source, seen (or not) at the SIEM.

`check_delivery` makes each source emit one uniquely tagged event over its real path and waits
until the SIEM has it:

- an **object host** (an SB workstation) sends with `logger --server <its collector's LAN address>
  --tcp --port 514`, over its console path (the lab reaches objects only through their network
  namespace; production gives their ssh_config entry);
- an **appliance** (collector, IDS sensor, firewall) logs locally with `logger`; its own rsyslog
  relays the event (sensors and firewalls to the circuit's collector, the collector to the SIEM).

Whether the SIEM has an event is asked through an `EventQuery`. The lab SIEM can be asked
(`LabSiemFiles`: a small watcher over SSH reads only what is appended to its per-source files
`/var/lib/msib-siem/events/<HOSTNAME>.log` after the watch began); a SIEM whose driver cannot
search events gets `NotVerifiable`, and every source that sent is reported "sent, not verifiable".

Latency is the SIEM host's clock when the watcher first read the event minus the source's clock
just before `logger` ran (the lab's hosts share one kernel clock; the watcher polls every 0.1 s).

The lab helpers at the end (`send_load`, `count_at_siem`, `wait_for_count`) run the numbered load
generator (`msib.loadgen`) inside an object's network namespace and count at the lab SIEM; the
fault tests and the delivery benchmark use them.
"""

from __future__ import annotations

import concurrent.futures
import json
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from msib import contract
from msib.errors import InputError

if TYPE_CHECKING:
    from msib.lab import Lab

SourceKind = Literal["object", "collector", "ids_sensor", "firewall"]
Status = Literal["delivered", "missing", "sent", "not sent"]
EVENTS_DIR = "/var/lib/msib-siem/events"
CANARY_TAG = "msib-canary"


@dataclass(frozen=True)
class Source:
    """One source of events and how to make it emit one.

    `ssh` is the full ssh command line that reaches it (strict host keys); `collector` is the
    address an object sends to (None for appliances, which log locally).
    """

    name: str
    kind: SourceKind
    circuit: str
    ssh: tuple[str, ...]
    collector: str | None = None

    def emit_command(self, token: str) -> str:
        """The shell command that prints the source's clock, then emits the canary."""
        text = shlex.quote(f"{CANARY_TAG} token={token} source={self.name}")
        if self.collector is None:
            send = f"logger -t {CANARY_TAG} -p user.notice -- {text}"
        else:
            send = f"logger --server {shlex.quote(self.collector)} --tcp --port 514 -t {CANARY_TAG} -- {text}"
        return f"date +%s.%N && {send}"


@dataclass(frozen=True)
class SourceResult:
    """What became of one source's canary."""

    name: str
    kind: SourceKind
    circuit: str
    status: Status
    latency_s: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        delivered = {"delivered": True, "missing": False}.get(self.status)
        out: dict[str, Any] = {"delivered": delivered, "latency_s": self.latency_s, "status": self.status,
                               "kind": self.kind, "circuit": self.circuit}
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class DeliveryReport:
    """Per-source results of one canary run."""

    verifiable: bool
    sources: dict[str, SourceResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no source is missing and every source could send."""
        return all(r.status in ("delivered", "sent") for r in self.sources.values())

    def to_json(self) -> dict[str, Any]:
        return {"sources": {n: r.to_json() for n, r in sorted(self.sources.items())},
                "verifiable": self.verifiable}


class Watch(Protocol):
    """A running search for tokens at the SIEM, begun before anything is sent."""

    def results(self, timeout: float) -> dict[str, float]:
        """Token -> time (epoch seconds) the SIEM was seen to have it; waits until all or timeout."""
        ...


class EventQuery(Protocol):
    """How the canary asks the SIEM whether events arrived."""

    verifiable: bool

    def watch(self, tokens: Sequence[str], timeout: float) -> Watch:
        """Start watching for `tokens` (returns once the watch is in place)."""
        ...


class _Nothing:
    def results(self, timeout: float) -> dict[str, float]:
        return {}


class NotVerifiable:
    """For a SIEM whose driver cannot search events: canaries are sent, nothing is verified."""

    verifiable = False

    def watch(self, tokens: Sequence[str], timeout: float) -> Watch:
        return _Nothing()


# Runs on the lab SIEM host with its own python3 (stdin is this script; argv: dir timeout tokens...).
# Remembers where every file ended, then reads only what is appended; prints "ready", then
# "found TOKEN EPOCH" per token, and exits when all were found or at the timeout.
WATCHER = r'''
import os, sys, time
d, timeout, tokens = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
left = {t.encode(): t for t in tokens}
keep = max(len(t) for t in left) if left else 0
def sizes():
    out = {}
    for f in os.listdir(d):
        try:
            out[f] = os.path.getsize(os.path.join(d, f))
        except OSError:
            pass
    return out
pos = sizes(); tail = {}
print("ready", flush=True)
end = time.time() + timeout
while left and time.time() < end:
    for f, size in sizes().items():
        start = pos.get(f, 0)
        if size < start:
            start = 0
        if size == start:
            continue
        with open(os.path.join(d, f), "rb") as fh:
            fh.seek(start)
            chunk = tail.get(f, b"") + fh.read(size - start)
        pos[f] = size
        tail[f] = chunk[-keep:]
        now = time.time()
        for b in [b for b in left if b in chunk]:
            print("found %s %.6f" % (left.pop(b), now), flush=True)
    time.sleep(0.1)
'''


class _SshWatch:
    def __init__(self, argv: list[str], tokens: Sequence[str], timeout: float) -> None:
        self.proc = subprocess.Popen([*argv, "sudo", "python3", "-", EVENTS_DIR, str(timeout), *tokens],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(WATCHER)
        self.proc.stdin.close()
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.proc.kill()
            raise InputError("siem", f"cannot watch the lab SIEM's events: {(err.strip() or first)[-200:]}",
                             fix="is the lab up (msib lab status)?")

    def results(self, timeout: float) -> dict[str, float]:
        import threading

        found: dict[str, float] = {}
        killer = threading.Timer(timeout + 30, self.proc.kill)  # the watcher ends by itself at its timeout
        killer.start()
        try:
            assert self.proc.stdout is not None
            out = self.proc.stdout.read()
            self.proc.wait()
        finally:
            killer.cancel()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "found":
                found[parts[1]] = float(parts[2])
        return found


class LabSiemFiles:
    """The lab SIEM's per-source event files, read over SSH (lab only: a real SIEM has its own search)."""

    verifiable = True

    def __init__(self, ssh: Sequence[str]) -> None:
        self.ssh = list(ssh)

    def watch(self, tokens: Sequence[str], timeout: float) -> Watch:
        return _SshWatch(self.ssh, tokens, timeout)


def sources_from_inventory(inventory_dir: str | Path, objects: Sequence[tuple[str, str]] = ()) -> list[Source]:
    """Every appliance of the inventory, plus the object hosts given as (name, circuit).

    Objects are reached by their name in the inventory's ssh_config (their console path); they
    send to the first collector of their circuit, at its LAN (service) address.

    Raises:
        InputError: an unreadable inventory, or an object of an unknown circuit.
    """
    inv = contract.load(inventory_dir)
    circuits = inv.circuits
    base = inv.ssh.argv()
    out: list[Source] = []
    for h in inv.of(*contract.LINUX_ROLES):
        out.append(Source(h.name, h.role, str(h.circuit), (*base, h.address)))  # type: ignore[arg-type]
    for name, circuit in objects:
        if circuit not in circuits or not circuits[circuit].collectors:
            raise InputError(str(inv.hosts_file), f"object {name}: no circuit {circuit!r} with a collector",
                             fix=f"one of: {', '.join(sorted(circuits))}")
        out.append(Source(name, "object", circuit, (*base, name), circuits[circuit].collectors[0].service_address))
    return out


def check_delivery(sources: Sequence[Source], query: EventQuery, *, timeout: float = 30.0) -> DeliveryReport:
    """Make every source emit a canary and wait (up to `timeout` s) until the SIEM has each one.

    Args:
        sources: what must emit (see :func:`sources_from_inventory`).
        query: how to ask the SIEM (:class:`LabSiemFiles`, or :class:`NotVerifiable`).
        timeout: seconds to wait for the last canary.

    Returns:
        One result per source: delivered (with latency), missing, sent (not verifiable) or not sent.

    Example:
        >>> report = check_delivery(sources_from_inventory(inv), LabSiemFiles(ssh_to_siem))  # doctest: +SKIP
    """
    run = uuid.uuid4().hex[:10]
    tokens = {s.name: f"c{run}-{s.name}" for s in sources}
    watch = query.watch(list(tokens.values()), timeout)

    def emit(src: Source) -> tuple[float | None, str | None]:
        try:
            proc = subprocess.run([*src.ssh, src.emit_command(tokens[src.name])], capture_output=True, text=True,
                                  timeout=60)
        except subprocess.TimeoutExpired:
            return None, "ssh timed out"
        if proc.returncode != 0:
            return None, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        try:
            return float(proc.stdout.split()[0]), None
        except (IndexError, ValueError):
            return time.time(), None

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(sources)))) as pool:
        sent = dict(zip([s.name for s in sources], pool.map(emit, sources), strict=True))
    found = watch.results(timeout)
    report = DeliveryReport(verifiable=query.verifiable)
    for s in sources:
        at, err = sent[s.name]
        if at is None:
            report.sources[s.name] = SourceResult(s.name, s.kind, s.circuit, "not sent", error=err)
        elif not query.verifiable:
            report.sources[s.name] = SourceResult(s.name, s.kind, s.circuit, "sent")
        elif tokens[s.name] in found:
            latency = max(0.0, found[tokens[s.name]] - at)
            report.sources[s.name] = SourceResult(s.name, s.kind, s.circuit, "delivered", round(latency, 3))
        else:
            report.sources[s.name] = SourceResult(s.name, s.kind, s.circuit, "missing")
    return report


# --- lab: numbered load and its count at the lab SIEM ----------------------------------------------


def send_load(lab: Lab, host: str, *, target: str, port: int, count: int, rate: float, tag: str,
              transport: str = "tcp", extra: Sequence[str] = ()) -> subprocess.Popen[str]:
    """Start msib.loadgen inside lab host `host`'s network namespace (read `.communicate()` for its JSON).

    The events carry the hostname `load-<tag>`, so the lab SIEM writes them to `load-<tag>.log`.
    """
    netns = lab.host(host).netns(lab.spec.name)
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "msib.loadgen", "send", "--transport", transport,
            "--host", target, "--port", str(port), "--count", str(count), "--rate", str(rate), "--tag", tag,
            "--hostname", f"load-{tag}", *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load_result(proc: subprocess.Popen[str], timeout: float = 900) -> dict[str, Any]:
    """The loadgen's JSON result once it has finished (raises with its stderr if it failed)."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {err.strip()[-300:]}")
    data: dict[str, Any] = json.loads(out)
    return data


def count_at_siem(lab: Lab, tag: str, expected: int) -> dict[str, Any]:
    """Count run `tag` at the lab SIEM (received, missing, duplicates), from `load-<tag>.log`."""
    from msib.loadgen import REMOTE_COUNTER

    path = f"{EVENTS_DIR}/load-{tag}.log"
    proc = subprocess.run(lab.ssh_argv(lab.spec.siem.name, ["sudo", "sh", "-c",
                                                            shlex.quote(f"test -e {path} || touch {path}; "
                                                                        f"python3 - {path} {tag} {expected}")]),
                          input=REMOTE_COUNTER, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"counting at the lab SIEM failed: {proc.stderr.strip()[-300:]}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def wait_for_count(lab: Lab, tag: str, expected: int, *, timeout: float = 300, settle: float = 10,
                   require_all: bool = True) -> dict[str, Any]:
    """Poll the lab SIEM until all `expected` arrived and nothing more came for `settle` s (or timeout).

    With `require_all=False` it stops as soon as nothing more came for `settle` s (a run that is
    known to lose events).

    Returns the last count with `drain_s`: seconds from the call until the last event arrived.
    """
    t0 = time.monotonic()
    last: dict[str, Any] = {}
    last_change = t0
    seen = (-1, -1)
    while time.monotonic() - t0 < timeout:
        last = count_at_siem(lab, tag, expected)
        now = (int(last["received"]), int(last["duplicates"]))
        if now != seen:
            seen, last_change = now, time.monotonic()
        if (last["received"] == expected or not require_all) and time.monotonic() - last_change >= settle:
            break
        time.sleep(2)
    last["drain_s"] = round(last_change - t0, 1)
    return last
