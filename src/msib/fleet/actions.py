"""What a rollout does on one SB: deploy (either engine), update or check, and what failed where.

Each runner works on the SB's built inventory exactly as the per-inventory command does (the same
functions: msib.engines.deploy.run_deploy, msib.update.run_update, msib.checks.run_checks), with
the SB's role variables (fleet.yml ``vars``, then ``sbs/<code>/vars.yml``), and records the run in
the inventory's run log as that command would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msib import contract, runlog
from msib.fleet.model import Fleet
from msib.fleet.waves import Failure, Runner, SbOutcome

if TYPE_CHECKING:
    from msib.checks import CheckRun


def _circuits(inventory: Path) -> dict[str, str | None]:
    return {a.name: a.circuit for a in contract.load(inventory).of(*contract.LINUX_ROLES)}


def deploy_runner(fleet: Fleet, *, engine: Any, check: bool, step_timeout: float | None = None) -> Runner:
    """Deploy the SB's appliances with `engine` (``--check``: detect only)."""
    from msib.engines.deploy import run_deploy
    from msib.engines.result import DEFAULT_STEP_TIMEOUT_S

    def run(code: str, inventory: Path) -> SbOutcome:
        circuits = _circuits(inventory)
        extra = contract.read_vars(fleet.vars_files(code))
        started = time.time()
        result = run_deploy(inventory, engine, check=check, extra_vars=extra,
                            step_timeout=step_timeout or DEFAULT_STEP_TIMEOUT_S)
        summary = result.to_json()
        runlog.record(inventory, "deploy", summary, ok=result.ok, started=started)
        out = SbOutcome(hosts={h: circuits.get(h) for h in result.hosts}, summary=summary)
        for host, h in sorted(result.hosts.items()):
            if h.failed or h.error:
                out.failures.append(Failure(code, circuits.get(host), host,
                                            h.error or f"{h.failed} step(s) failed"))
        return out

    return run


def check_runner(fleet: Fleet, *, workers: int = 8, fail_on: str = "low") -> Runner:
    """Run the compliance checks of the SB; the reports go to ``build/<code>/check-report``.

    A failed check of severity `fail_on` or worse counts against the wave (and an error always
    does); a failure below it is in the reports and the summary, not in the wave's failures."""
    from msib.checks import run_checks
    from msib.report import write_reports

    def run(code: str, inventory: Path) -> SbOutcome:
        circuits = _circuits(inventory)
        checked = run_checks(inventory, vars_files=fleet.vars_files(code), workers=workers)
        for path in write_reports(checked, fleet.private_dir(fleet.build_dir(code) / "check-report")).values():
            path.chmod(0o600)  # below the fleet everything msib writes is private
        bad = [r for r in checked.results if r.outcome != "passed"]
        summary = {**checked.counts(), "hosts": len(checked.hosts),
                   "failures": [{"host": r.host, "check": r.check_id, "outcome": r.outcome} for r in bad]}
        runlog.record(inventory, "check", summary, ok=checked.exit_code() == 0, started=checked.started)
        out = SbOutcome(hosts={h.name: circuits.get(h.name) for h in checked.hosts}, summary=summary)
        out.failures.extend(check_failures(code, circuits, checked, fail_on))
        return out

    return run


def check_failures(code: str, circuits: Mapping[str, str | None], checked: CheckRun, fail_on: str) -> list[Failure]:
    """What counts against the wave: every error, and every failure of severity `fail_on` or worse."""
    counted = checked.failing(fail_on) + [r for r in checked.results if r.outcome == "error"]
    return [Failure(code, circuits.get(r.host), r.host, f"check {r.check_id} {r.outcome}")
            for r in sorted(counted, key=lambda r: (r.host, r.check_id))]


_HOST_PREFIX = re.compile(r"^([a-z0-9][a-z0-9-]{0,31}): (.*)$", re.S)


def update_runner(fleet: Fleet, *, packages: bool, rules: bool, options: Mapping[str, Any] | None = None) -> Runner:
    """Update the SB's appliances (packages, rules) under the update lock; `options` go to run_update."""
    from msib.update import run_update

    def run(code: str, inventory: Path) -> SbOutcome:
        circuits = _circuits(inventory)
        updated = run_update(inventory, packages=packages, rules=rules, vars_files=fleet.vars_files(code),
                             **dict(options or {}))
        summary = updated.as_json()
        runlog.record(inventory, "update", {k: summary[k] for k in ("changed", "failures", "seconds")},
                      ok=updated.exit_code() == 0, started=updated.started)
        out = SbOutcome(hosts=dict(circuits), summary={k: summary[k] for k in ("changed", "failures", "seconds")})
        for line in updated.failures():
            m = _HOST_PREFIX.match(line)
            host = m.group(1) if m and m.group(1) in circuits else None
            out.failures.append(Failure(code, circuits.get(host) if host else None, host,
                                        m.group(2) if m and host else line))
        return out

    return run
