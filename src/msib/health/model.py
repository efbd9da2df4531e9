"""What health says: per source (appliance or object) its last event, rate, baseline and state; per SB the sum.

States: ``ok``; ``silent`` (nothing for longer than the class's threshold, or its events cannot
reach the SIEM because its circuit's collectors are silent there); ``degraded`` (rate below a share
of its own baseline; ``severe`` below the lower share); ``unknown`` (the place that would know could
not be asked). A source is never ``ok`` without an answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, Literal

State = Literal["ok", "silent", "degraded", "unknown"]
STATES: Final[tuple[State, ...]] = ("ok", "silent", "degraded", "unknown")
#: How bad each state is (the worst of an SB is what its row shows).
SEVERITY: Final[dict[State, int]] = {"ok": 0, "unknown": 1, "degraded": 2, "silent": 3}


@dataclass
class SourceHealth:
    """One source the inventory expects to send: an appliance of the site plan or an object of the appendix.

    `key` is unique within the SB: the appliance's name, or ``object:<ip>`` for an object.
    `kind` is the appliance role (collector, ids_sensor, firewall, netdev) or the object's class
    (workstation, server, network_device). `heard_at` says where `last_heard` was seen: ``siem``
    for collectors, ``collector`` for everything else. Times are epoch seconds of the controller.
    """

    key: str
    name: str
    kind: str
    circuit: str | None
    address: str | None
    threshold: float
    heard_at: str
    state: State = "unknown"
    last_heard: float | None = None
    rate: float | None = None
    baseline: float | None = None
    severe: bool = False
    reasons: list[str] = field(default_factory=list)
    #: appliance readings: queue, discards, capture, rules, convergence (only what applies)
    metrics: dict[str, float | int | str | None] = field(default_factory=dict)

    @property
    def is_appliance(self) -> bool:
        return self.kind in ("collector", "ids_sensor", "firewall", "netdev")

    def silence(self, now: float) -> float | None:
        """Seconds since it was last heard (None: never heard)."""
        return None if self.last_heard is None else max(0.0, now - self.last_heard)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "kind": self.kind, "circuit": self.circuit, "address": self.address,
                "state": self.state, "severe": self.severe, "last_heard": self.last_heard,
                "heard_at": self.heard_at, "rate": None if self.rate is None else round(self.rate, 3),
                "baseline": None if self.baseline is None else round(self.baseline, 3),
                "threshold": self.threshold, "reasons": list(self.reasons), "metrics": dict(self.metrics)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceHealth:
        return cls(key=str(data.get("key") or data["name"]), name=str(data["name"]), kind=str(data["kind"]),
                   circuit=data.get("circuit"),
                   address=data.get("address"), threshold=float(data.get("threshold") or 0),
                   heard_at=str(data.get("heard_at") or "collector"), state=data.get("state", "unknown"),
                   last_heard=data.get("last_heard"), rate=data.get("rate"), baseline=data.get("baseline"),
                   severe=bool(data.get("severe")), reasons=list(data.get("reasons") or []),
                   metrics=dict(data.get("metrics") or {}))


@dataclass
class SbHealth:
    """Health of one SB at one moment: every expected source, and what could not be asked."""

    sb: str
    state_body: str | None
    at: float
    seconds: float = 0.0
    sources: list[SourceHealth] = field(default_factory=list)
    #: places that could not be asked (a collector over SSH, the SIEM), with why
    unreachable: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def counts(self) -> dict[str, int]:
        c = Counter(s.state for s in self.sources)
        return {state: c.get(state, 0) for state in STATES}

    @property
    def worst(self) -> State:
        if self.error:
            return "unknown"
        return max((s.state for s in self.sources), key=SEVERITY.__getitem__, default="ok")

    @property
    def silent(self) -> list[SourceHealth]:
        return [s for s in self.sources if s.state == "silent"]

    def to_json(self) -> dict[str, Any]:
        return {"sb": self.sb, "state_body": self.state_body, "at": self.at, "seconds": round(self.seconds, 3),
                "worst": self.worst, "counts": self.counts(), "unreachable": dict(self.unreachable),
                "error": self.error, "sources": [s.to_json() for s in self.sources]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SbHealth:
        return cls(sb=str(data["sb"]), state_body=data.get("state_body"), at=float(data["at"]),
                   seconds=float(data.get("seconds") or 0), error=data.get("error"),
                   sources=[SourceHealth.from_json(s) for s in data.get("sources") or []],
                   unreachable=dict(data.get("unreachable") or {}))


def span(seconds: float) -> str:
    """A duration for people: 45 s, 12 min, 3.5 h, 2.0 d.

    >>> span(45), span(720), span(12600), span(172800)
    ('45 s', '12 min', '3.5 h', '2.0 d')
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def exit_code(results: list[SbHealth]) -> int:
    """1 when any source is silent (what ``msib health`` exits with), else 0."""
    return 1 if any(r.silent for r in results) else 0
