"""One health run over an inventory: ask the appliances and the SIEM, judge every source, remember it."""

from __future__ import annotations

import time
from pathlib import Path

from msib import contract, runlog
from msib.errors import MsibError
from msib.health.assess import assess
from msib.health.config import HealthConfig
from msib.health.history import History
from msib.health.model import SbHealth
from msib.health.probe import NoSiemEvents, SiemUnavailable, SiemView, probe
from msib.inventory.diff import load_snapshot


def check_inventory(inventory_dir: str | Path, config: HealthConfig, siem: SiemView | None = None, *,
                    save: bool = True, sb: str | None = None) -> SbHealth:
    """Health of every appliance and object one inventory expects.

    Args:
        inventory_dir: the directory `msib inventory build` wrote.
        config: thresholds, window, baseline.
        siem: how to ask the SIEM about the collectors (default: it cannot be asked).
        save: keep the result, the rates and the silent periods beside the inventory.
        sb: the SB's name when the inventory cannot be read (a fleet's SB code).

    Returns:
        The result; an inventory that cannot be read gives a result with `error` and no sources.
    """
    t0 = time.monotonic()
    at = time.time()
    try:
        inv = contract.load(inventory_dir)
        objects = load_snapshot(inv.directory).objects
    except MsibError as exc:
        return SbHealth(sb=sb or Path(inventory_dir).name, state_body=None, at=at, error=str(exc),
                        seconds=time.monotonic() - t0)
    probed = probe(inv, window=config.window, workers=config.ssh_workers)
    names = [a.name for a in inv.of("collector")]
    heard, why = None, None
    try:
        heard = dict((siem or NoSiemEvents()).last_heard(names))
    except SiemUnavailable as exc:
        why = str(exc)
    history = History(inv.directory)
    now = time.time()
    result = assess(inv, objects, probed, heard, why, config, now=now,
                    baselines=history.baselines(now, config.baseline_days),
                    converged=runlog.converged_at(inv.directory), deployed=runlog.first_deployed(inv.directory))
    if sb:
        result.sb = sb
    result.seconds = time.monotonic() - t0
    if save:
        history.save(result, config.baseline_days)
    return result
