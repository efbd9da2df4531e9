"""``msib fleet status`` and ``msib health --fleet``: per SB what was built, deployed, checked and heard.

Status reads only what runs left on disk (the inventory's report.json, its run log and its last
health result): it asks no host, so it answers at once for hundreds of SBs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msib import runlog
from msib.fleet.model import Fleet, survey
from msib.health.config import HealthConfig
from msib.health.history import History
from msib.health.model import SbHealth
from msib.health.probe import SiemView
from msib.health.run import check_inventory


@dataclass(frozen=True)
class SbStatus:
    """One SB's row of ``msib fleet status``."""

    code: str
    state_body: str | None
    built: bool
    error: str | None
    objects: int | None
    appliances: int | None
    last_deploy: dict[str, Any] | None
    last_check: dict[str, Any] | None
    health: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _report(inventory: Path) -> dict[str, Any]:
    try:
        data = json.loads((inventory / "report.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _count(report: dict[str, Any], key: str) -> int | None:
    counts = report.get("counts") if isinstance(report.get("counts"), dict) else report
    value = counts.get(key) if isinstance(counts, dict) else None
    return value if isinstance(value, int) else None


def sb_status(fleet: Fleet, code: str, state_body: str | None, error: str | None) -> SbStatus:
    inventory = fleet.inventory_dir(code)
    built = (inventory / "hosts.yml").is_file()
    report = _report(inventory) if built else {}
    deploy = runlog.last(inventory, "deploy") if built else None
    check = runlog.last(inventory, "check") if built else None
    latest = History(inventory).latest() if built else None
    health = None
    if latest is not None:
        health = {"at": runlog.iso(latest.at), "worst": latest.worst, "counts": latest.counts(),
                  "silent": [s.name for s in latest.silent]}
    return SbStatus(
        code=code, state_body=state_body, built=built, error=error,
        objects=_count(report, "objects"), appliances=_count(report, "appliances"),
        last_deploy=None if deploy is None else {
            "at": deploy.get("finished"), "ok": deploy.get("ok"), "engine": deploy.get("engine"),
            "check": deploy.get("check"),
            "changed": sum(int(h.get("changed") or 0) for h in (deploy.get("hosts") or {}).values())},
        last_check=None if check is None else {
            "at": check.get("finished"), "ok": check.get("ok"), "passed": check.get("passed"),
            "failed": check.get("failed"), "errors": check.get("errors")},
        health=health)


def fleet_status(fleet: Fleet) -> list[SbStatus]:
    """Every SB's status, from what is on disk."""
    return [sb_status(fleet, e.code, e.plan.state_body if e.plan else None, e.error) for e in survey(fleet)]


def fleet_health(fleet: Fleet, siem_for: Callable[[str, Path], SiemView | None], *, config: HealthConfig | None = None,
                 only: Sequence[str] = (), save: bool = True,
                 on_sb: Callable[[SbHealth], None] | None = None) -> list[SbHealth]:
    """Health of every built SB of the fleet (or those in `only`), one SB after the other.

    `siem_for(code, inventory)` gives the SIEM view of an SB (None: it cannot be asked). A broken
    SB gives a result with its error.
    """
    out = []
    for e in survey(fleet):
        if only and e.code not in only:
            continue
        inventory = fleet.inventory_dir(e.code)
        if not e.ok or not (inventory / "hosts.yml").is_file():
            r = SbHealth(sb=e.code, state_body=e.plan.state_body if e.plan else None, at=time.time(),
                         error=e.error or "not built: run `msib fleet build`")
        else:
            r = check_inventory(inventory, config or fleet.health, siem_for(e.code, inventory), save=save, sb=e.code)
        out.append(r)
        if on_sb:
            on_sb(r)
    return out
