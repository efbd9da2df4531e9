"""What `msib contain` says about a run, as lines of text (the CLI prints them)."""

from __future__ import annotations

from msib.contain.audit import iso
from msib.contain.request import CHANGED, FAILED
from msib.contain.run import BlockList, ContainRun

_VERB = {"added": "blocked", "extended": "blocked, expiry extended", "present": "unchanged",
         "removed": "released", "absent": "unchanged", "would-add": "would block",
         "would-extend": "would extend the expiry", "would-remove": "would release",
         "conflict": "CONFLICT", "error": "FAILED", "pending": "pending"}


def describe(run: ContainRun) -> list[str]:
    """Human-readable lines for a contain/release run."""
    lines: list[str] = []
    for s in run.swept:
        lines.append(f"swept {s.name} ({s.platform}): {_VERB[s.result]}: {s.detail}")
    head = "check: " if run.check else ""
    if run.action == "block":
        lines.append(f"{head}contain {run.address} for {run.ttl_s}s (until {iso(run.expires)}) in circuit(s) "
                     f"{', '.join(run.circuits)}" + (f": {run.reason}" if run.reason else ""))
    else:
        lines.append(f"{head}release {run.address} in circuit(s) {', '.join(run.circuits)}")
    for f in run.firewalls:
        until = f" until {iso(f.expires)}" if f.expires and f.result not in ("error", "conflict") else ""
        detail = f": {f.detail}" if f.detail else ""
        lines.append(f"  {f.name} ({f.platform}): {_VERB[f.result]}{until}{detail}")
    if run.check:
        lines.append("check mode: nothing was changed, no audit record written")
    elif not run.ok:
        lines.append(f"{sum(f.result in FAILED for f in run.firewalls)} firewall(s) failed; audit: {run.audit}")
    elif run.changed:
        lines.append(f"changed on {sum(f.result in CHANGED for f in run.firewalls)} firewall(s); audit: {run.audit}")
    else:
        lines.append(f"nothing changed: already {'contained' if run.action == 'block' else 'released'} "
                     f"everywhere; audit: {run.audit}")
    return lines


def describe_list(bl: BlockList) -> list[str]:
    """Human-readable lines for ``--list``."""
    lines = [f"swept {s.name} ({s.platform}): {_VERB[s.result]}: {s.detail}" for s in bl.swept]
    if not bl.blocks:
        lines.append("no active blocks")
    for b in bl.blocks:
        until = f"until {iso(b.expires)}" if b.expires else "no expiry known"
        lines.append(f"{b.address}: {', '.join(b.firewalls)}; {until}" + (f"; {b.reason}" if b.reason else ""))
    for e in bl.errors:
        lines.append(f"{e.name} ({e.platform}): could not be read: {e.detail}")
    return lines
