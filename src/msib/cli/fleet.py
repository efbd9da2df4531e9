"""`msib fleet ...`: build every SB's inventory, show their status, deploy, update and check them in waves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from msib.cli.check import FailOn, FailOnOpt
from msib.cli.console import console, out, print_json
from msib.escape import plain, rich_text

if TYPE_CHECKING:
    from msib.fleet.model import Fleet, WavePlan
    from msib.fleet.waves import Rollout

fleet_app = typer.Typer(help="Many state bodies: build, status, and deploy/update/check in waves.",
                        no_args_is_help=True)

FleetOpt = Annotated[Path, typer.Option("--fleet", "-f", help="The fleet directory (fleet.yml, sbs/).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WavesOpt = Annotated[int | None, typer.Option("--waves", help="Waves of N SBs after the canary (default: fleet.yml).")]
CanaryOpt = Annotated[list[str] | None, typer.Option("--canary", help="SB of the canary wave (repeatable; default: "
                                                                      "fleet.yml).")]
MaxSbsOpt = Annotated[int | None, typer.Option("--max-failed-sbs", help="Failed SBs a wave may have (canary: 0).")]
MaxShareOpt = Annotated[float | None, typer.Option("--max-failed-share",
                                                   help="Share of a circuit's appliances that may fail (0..1).")]
RolloutOpt = Annotated[str | None, typer.Option("--rollout", help="The rollout's name: the same name resumes it "
                                                                  "(default: the action, its options and the date).")]
RestartOpt = Annotated[bool, typer.Option("--restart", help="Forget the rollout's saved state and begin anew.")]


def _plan(fleet: Fleet, waves: int | None, canary: list[str] | None, max_sbs: int | None,
          max_share: float | None) -> WavePlan:
    from pydantic import ValidationError

    from msib.errors import InputError
    from msib.fleet.model import WavePlan

    base = fleet.settings.waves.model_dump()
    for key, value in (("size", waves), ("canary", canary), ("max_failed_sbs", max_sbs),
                       ("max_failed_share", max_share)):
        if value is not None:
            base[key] = value
    try:
        return WavePlan.model_validate(base)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"--{'-'.join(str(p) for p in err['loc'])}".replace("_", "-"), str(err["msg"])) from None


@fleet_app.command("build")
def fleet_build(
    fleet_dir: FleetOpt,
    sb: Annotated[list[str] | None, typer.Option("--sb", help="Only this SB (repeatable).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD that decides end of life.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="An SB with a rejected row is not written.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build every SB's inventory (build/<code>/inventory); one table; a broken SB is reported and skipped.

    Exit 0 every SB built, 1 some SB was skipped, 2 the fleet itself is unusable.
    """
    from rich.table import Table
    from rich.text import Text

    from msib.cli.inventory import _as_of
    from msib.fleet.build import build_fleet
    from msib.fleet.model import load_fleet

    fleet = load_fleet(fleet_dir)
    results = build_fleet(fleet, only=sb or [], as_of=_as_of(as_of), strict=strict)
    if as_json:
        print_json({"fleet": str(fleet.root), "sbs": [r.to_json() for r in results]})
    else:
        table = Table("SB", "quarter", "objects", "appliances", "rejected", "s", "result",
                      title=f"msib fleet build: {sum(r.ok for r in results)} of {len(results)} SBs built")
        for r in results:
            d = r.to_json()
            table.add_row(r.code, r.quarter or "-", str(d["objects"] if r.ok else "-"),
                          str(d["appliances"] if r.ok else "-"), str(d["rejected"] if r.ok else "-"),
                          f"{r.seconds:.2f}", Text("built", style="green") if r.ok else rich_text(r.error, "red"))
        out.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@fleet_app.command("status")
def fleet_status_cmd(fleet_dir: FleetOpt, as_json: JsonOpt = False) -> None:
    """Per SB: objects, appliances, last deploy, last check, health (from what runs left on disk)."""
    from rich.table import Table
    from rich.text import Text

    from msib.fleet.model import load_fleet
    from msib.fleet.status import fleet_status

    fleet = load_fleet(fleet_dir)
    rows = fleet_status(fleet)
    if as_json:
        print_json({"fleet": str(fleet.root), "sbs": [r.to_json() for r in rows]})
        return
    table = Table("SB", "objects", "appliances", "last deploy", "last check", "health", title=f"fleet {fleet.root}")
    for r in rows:
        if r.error or not r.built:
            table.add_row(r.code, "-", "-", "-", "-", rich_text(r.error or "not built", "red"))
            continue
        d, c, h = r.last_deploy, r.last_check, r.health
        dep = "never" if d is None else (f"{d['at']} {'ok' if d['ok'] else 'FAILED'}, {d['changed']} changed"
                                         + (" (check)" if d.get("check") else ""))
        chk = "never" if c is None else f"{c['at']} {c['passed']} passed, {c['failed']} failed, {c['errors']} errors"
        hl = Text("never") if h is None else Text(
            f"{h['worst']} at {h['at']} ({h['counts']['silent']} silent, {h['counts']['ok']} ok)",
            style={"ok": "green", "silent": "red", "degraded": "yellow"}.get(h["worst"], ""))
        table.add_row(r.code, str(r.objects), str(r.appliances), dep, chk, hl)
    out.print(table)


def _rollout_result(rollout: Rollout, as_json: bool) -> None:
    if as_json:
        print_json(rollout.to_json())
    else:
        from rich.table import Table

        table = Table("wave", "SB", "result", "tries",
                      title=f"rollout {rollout.id} ({rollout.action}): {rollout.state}")
        for i, wave in enumerate(rollout.waves):
            for code in wave:
                run = rollout.sbs[code]
                colour = {"done": "green", "failed": "red"}.get(run.status, "")
                table.add_row(str(i + 1), code, f"[{colour}]{run.status}[/]" if colour else run.status,
                              str(run.attempts))
        out.print(table)
        if rollout.halted:
            h = rollout.halted
            out.print(f"[red]halted after {h['name']}[/]: {len(h['failed_sbs'])} failed SB(s), {h['allowed']} "
                      f"allowed; untouched: {', '.join(h['untouched']) or 'none'}", highlight=False)
            for f in h["failures"][:20]:
                where = ", ".join(x for x in (f"SB {f['sb']}", f"circuit {f['circuit']}" if f.get("circuit") else "",
                                              f"host {f['host']}" if f.get("host") else "") if x)
                out.print(plain(f"  {where}: {f['step']}"), markup=False, highlight=False, soft_wrap=True)
    if rollout.state != "done":
        sys.exit(1)


def _rollout(fleet: Fleet, action: Any, runner: Any, options: dict[str, Any], waves: int | None,
             canary: list[str] | None, max_sbs: int | None, max_share: float | None, rollout_id: str | None,
             restart: bool, as_json: bool) -> None:
    from msib.fleet.waves import default_name, run_rollout

    plan = _plan(fleet, waves, canary, max_sbs, max_share)
    rollout = run_rollout(fleet, action, runner, rollout_id=rollout_id or default_name(action, options), plan=plan,
                          options=options, restart=restart,
                          on_event=lambda line: console.print(plain(line), highlight=False, markup=False))
    _rollout_result(rollout, as_json)


@fleet_app.command("deploy")
def fleet_deploy(
    fleet_dir: FleetOpt,
    engine: Annotated[str | None, typer.Option("--engine", help="pyinfra or ansible (default: fleet.yml).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Detect changes only; change nothing.")] = False,
    waves: WavesOpt = None, canary: CanaryOpt = None, max_failed_sbs: MaxSbsOpt = None,
    max_failed_share: MaxShareOpt = None, rollout: RolloutOpt = None, restart: RestartOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy every SB in waves (canary first); stop at the first wave over its failure budget.

    Exit 0 every wave done, 1 the rollout stopped (a rerun resumes it), 2 bad input, 75 another
    rollout of the fleet is running.
    """
    from msib.engines.result import ENGINES
    from msib.errors import InputError
    from msib.fleet.actions import deploy_runner
    from msib.fleet.model import load_fleet

    fleet = load_fleet(fleet_dir)
    chosen = engine or fleet.settings.engine
    if chosen not in ENGINES:
        raise InputError("--engine", f"unknown engine {chosen!r}", fix="pyinfra or ansible")
    _rollout(fleet, "deploy", deploy_runner(fleet, engine=chosen, check=check), {"engine": chosen, "check": check},
             waves, canary, max_failed_sbs, max_failed_share, rollout, restart, as_json)


@fleet_app.command("update")
def fleet_update(
    fleet_dir: FleetOpt,
    packages: Annotated[bool, typer.Option("--packages", help="Upgrade packages, security first.")] = False,
    rules: Annotated[bool, typer.Option("--rules", help="Push and reload the IDS rule set.")] = False,
    waves: WavesOpt = None, canary: CanaryOpt = None, max_failed_sbs: MaxSbsOpt = None,
    max_failed_share: MaxShareOpt = None, rollout: RolloutOpt = None, restart: RestartOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Update every SB's appliances in waves (neither --packages nor --rules: both)."""
    from msib.fleet.actions import update_runner
    from msib.fleet.model import load_fleet

    fleet = load_fleet(fleet_dir)
    both = not packages and not rules
    options = {"packages": packages or both, "rules": rules or both}
    runner = update_runner(fleet, packages=options["packages"], rules=options["rules"])
    _rollout(fleet, "update", runner, options, waves, canary, max_failed_sbs, max_failed_share, rollout, restart,
             as_json)


@fleet_app.command("check")
def fleet_check(
    fleet_dir: FleetOpt,
    waves: WavesOpt = None, canary: CanaryOpt = None, max_failed_sbs: MaxSbsOpt = None,
    max_failed_share: MaxShareOpt = None, rollout: RolloutOpt = None, restart: RestartOpt = False,
    as_json: JsonOpt = False, fail_on: FailOnOpt = FailOn.low,
) -> None:
    """Run the compliance checks of every SB in waves; reports in build/<code>/check-report.

    A failed check counts against its wave when of severity --fail-on or worse (every failure is in
    the reports whatever --fail-on says)."""
    from msib.fleet.actions import check_runner
    from msib.fleet.model import load_fleet

    fleet = load_fleet(fleet_dir)
    options = {} if fail_on is FailOn.low else {"fail_on": fail_on.value}  # (the default keeps the default name)
    _rollout(fleet, "check", check_runner(fleet, fail_on=fail_on.value), options, waves, canary, max_failed_sbs,
             max_failed_share, rollout, restart, as_json)
