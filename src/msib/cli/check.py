"""`msib check`: a progress bar per host while the checks run, the reports written, a short summary."""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from msib.cli.console import console, out, print_json
from msib.escape import plain, rich_markup, rich_text

if TYPE_CHECKING:
    from msib.checks import CheckResult, CheckRun
    from msib.contract import Appliance

class FailOn(enum.StrEnum):
    """``--fail-on``: the least severity whose failure makes the exit 1 (errors always exit 2)."""

    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


FailOnOpt = Annotated[FailOn, typer.Option(
    "--fail-on", help="Exit 1 only for a failed check of this severity or worse (low: any failure).")]


def check_command(inventory: Path, report_dir: Path, *, vars_files: Sequence[Path], limit: Sequence[str],
                  workers: int | None, console: Console, out: Console,
                  as_json: bool) -> tuple[CheckRun, dict[str, Path]]:
    """Run the checks with a progress bar per host, write the reports, print a summary table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from msib.checks import checks_for, run_checks
    from msib.report import findings, write_reports

    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as progress:
        tasks: dict[str, TaskID] = {}
        bad: dict[str, int] = {}

        def start(hosts: list[Appliance]) -> None:
            for h in hosts:
                tasks[h.name] = progress.add_task(rich_markup(h.name), total=len(checks_for(h.role)), status="")

        def result(r: CheckResult) -> None:
            if r.outcome != "passed":
                bad[r.host] = bad.get(r.host, 0) + 1
            status = f"[red]{bad[r.host]} not passed[/]" if r.host in bad else "[green]ok[/]"
            progress.update(tasks[r.host], advance=1, status=status)
            if not console.is_terminal and r.outcome != "passed":
                console.print(plain(f"{r.host} {r.check_id}: {r.outcome}"), markup=False, highlight=False)

        run = run_checks(inventory, vars_files=vars_files, limit=limit, workers=workers,
                         on_result=result, on_start=start)
    paths = write_reports(run, report_dir)
    table = Table("host", "role", "passed", "failed", "errors",
                  title=f"msib check: {len(run.hosts)} hosts, {run.finished - run.started:.1f}s")
    for h in run.hosts:
        rs = run.by_host().get(h.name, [])
        n = {k: sum(r.outcome == k for r in rs) for k in ("passed", "failed", "error")}
        table.add_row(rich_text(h.name), rich_text(h.role), str(n["passed"]),
                      f"[red]{n['failed']}[/]" if n["failed"] else "0",
                      f"[yellow]{n['error']}[/]" if n["error"] else "0")
    target = console if as_json else out
    target.print(table)
    for r in findings(run)[:20]:
        last = [ln for ln in r.evidence.splitlines() if ln.strip()][-1:] or [""]
        target.print(f"[red]{r.outcome.upper()}[/] " + rich_markup(f"{r.host} {r.check_id} ({r.severity}): {last[0]}"),
                     highlight=False, soft_wrap=True)
    target.print(plain(f"report: {paths['html']} (also {paths['junit'].name}, {paths['markdown'].name}, "
                       f"{paths['json'].name})"), markup=False, highlight=False, soft_wrap=True)
    return run, paths


def check_record(run: CheckRun) -> dict[str, object]:
    """What the run log keeps of a check run: the counts and which host failed which check."""
    return {**run.counts(), "hosts": len(run.hosts),
            "failures": [{"host": r.host, "check": r.check_id, "outcome": r.outcome}
                         for r in run.results if r.outcome != "passed"]}


def check_cmd(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")],
    report: Annotated[Path, typer.Option("--report", help="Directory for junit.xml, report.html, report.md.")],
    vars_file: Annotated[
        list[Path] | None, typer.Option("--vars", help="Role variables as given to msib deploy --vars (repeatable).")
    ] = None,
    limit: Annotated[list[str] | None, typer.Option("--limit", help="Check only this host (repeatable).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="pytest processes at once, the hosts dealt between them [default: 2 per CPU, at most 8].")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    fail_on: FailOnOpt = FailOn.low,
) -> None:
    """Run the compliance checks on every appliance; write JUnit XML, HTML and Markdown reports.

    Exit 0 all passed, 1 a check of severity --fail-on or worse failed, 2 an error prevented checking.
    Every failure is in the reports whatever --fail-on says.
    """
    from msib.cli.runs import record_run

    names = [n for item in (limit or []) for n in item.split(",") if n]
    run, _ = check_command(inventory, report, vars_files=vars_file or [], limit=names, workers=workers,
                           console=console, out=out, as_json=as_json)
    record_run(inventory, "check", check_record(run), ok=run.exit_code() == 0, started=run.started)
    if as_json:
        print_json(run.summary())
    sys.exit(run.exit_code(fail_on.value))  # (typer.Exit's code is swallowed by app(standalone_mode=False))
