"""End-to-end log delivery: a canary event from every source, seen (or not) at the SIEM.

`check_delivery` makes each source emit one uniquely tagged event over its real path and waits
until the SIEM has it:

- an **object host** (an SB workstation) sends with `logger --server <its collector's LAN address>
  --tcp --port 514`, over its console path (the lab reaches objects only through their network
  namespace; production gives their ssh_config entry);
- an **appliance** (collector, IDS sensor, firewall) logs locally with `logger`; its own rsyslog
  relays the event (sensors and firewalls to the circuit's collector, the collector to the SIEM).

Whether the SIEM has an event is asked through an `EventQuery`. A SIEM whose driver cannot
search events gets `NotVerifiable`, and every source that sent is reported "sent, not
verifiable". The lab SIEM can be asked: the lab wing provides its `EventQuery`
(`msib.lab.delivery.LabSiemFiles`), and the CLI hands it in on the lab's own inventory.

Latency is the SIEM's time when it was seen to have the event minus the source's clock just
before `logger` ran.
"""

from __future__ import annotations

import concurrent.futures
import shlex
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from msib import contract
from msib.errors import InputError

SourceKind = Literal["object", "collector", "ids_sensor", "firewall"]
Status = Literal["delivered", "missing", "sent", "not sent"]
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




def sources_from_inventory(inventory_dir: str | Path, objects: Sequence[tuple[str, str]] = ()) -> list[Source]:
    """Every appliance of the inventory, plus the object hosts given as (name, circuit).

    Objects are reached by their name in the inventory's ssh_config (their console path); they
    send to the first collector of their circuit, at its LAN (service) address.

    Raises:
        InputError: an unreadable inventory, or an object of an unknown circuit.
    """
    inv = contract.load(inventory_dir)
    circuits = inv.circuits
    base = inv.ssh.verified().argv()
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
        query: how to ask the SIEM (:class:`NotVerifiable`, or the lab's ``LabSiemFiles``).
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
