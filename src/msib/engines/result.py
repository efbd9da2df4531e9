"""What a deploy run reports: per-host counts, the run's summary, progress calls, a failed step's line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

Engine = Literal["pyinfra", "ansible"]
ENGINES: tuple[Engine, ...] = ("pyinfra", "ansible")
Outcome = Literal["changed", "unchanged", "failed", "skipped"]
#: The repository root: playbooks/ (Ansible) and deploy/ (pyinfra) live there.
REPO = Path(__file__).resolve().parents[3]

#: Seconds one step (a pyinfra operation's command, an Ansible task) may run on a host before the
#: host fails with a message naming the step and the command; the other hosts go on. A cold
#: install of Suricata through the lab's proxy takes ~20 s; a real circuit's mirror may be slower.
DEFAULT_STEP_TIMEOUT_S = 600


class Progress(Protocol):
    """Receives a call when a step starts on a host and when it ends (for a live display)."""

    def start(self, host: str, what: str) -> None: ...

    def event(self, host: str, outcome: Outcome, what: str) -> None: ...


def step_error(step: str, *, command: str | None, detail: str, timed_out_after: float | None = None) -> str:
    """One line saying which step failed on a host, with what command, and why (both engines).

    >>> step_error("Install nftables", command="apt-get install -y nftables", detail="", timed_out_after=40)
    "step 'Install nftables' timed out after 40 s (limit: --step-timeout): apt-get install -y nftables"
    """
    what = f"step {step!r} " + (f"timed out after {timed_out_after:.0f} s (limit: --step-timeout)"
                                 if timed_out_after is not None else "failed")
    parts = [what, command or "", " ".join(detail.split())[:300]]
    return ": ".join(p for p in parts if p)


@dataclass
class HostResult:
    """What one engine did on one host."""

    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    error: str | None = None

    def count(self, outcome: Outcome) -> None:
        """Add one finished operation/task."""
        if outcome == "changed":
            self.changed += 1
        elif outcome == "unchanged":
            self.unchanged += 1
        elif outcome == "failed":
            self.failed += 1


@dataclass
class DeployResult:
    """The summary of one run: per host, and the wall time."""

    engine: Engine
    check: bool
    hosts: dict[str, HostResult] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no host failed."""
        return all(h.failed == 0 and h.error is None for h in self.hosts.values())

    @property
    def changed(self) -> int:
        """Changes over all hosts."""
        return sum(h.changed for h in self.hosts.values())

    def to_json(self) -> dict[str, Any]:
        """``{"hosts": {NAME: {"changed": N, "unchanged": N, "failed": N}}}`` (plus engine, seconds)."""
        return {
            "engine": self.engine,
            "check": self.check,
            "seconds": round(self.seconds, 2),
            "hosts": {name: {"changed": h.changed, "unchanged": h.unchanged, "failed": h.failed}
                      | ({"error": h.error} if h.error else {})
                      for name, h in sorted(self.hosts.items())},
        }
