"""The console side of `msib check`: a progress display, the reports written, a short summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from msib.checks import CheckResult, CheckRun, checks_for, run_checks
from msib.contract import Appliance
from msib.report import findings, write_reports


def check_command(inventory: Path, report_dir: Path, *, vars_files: Sequence[Path], limit: Sequence[str],
                  workers: int, console: Console, out: Console, as_json: bool) -> tuple[CheckRun, dict[str, Path]]:
    """Run the checks with a progress bar per host, write the reports, print a summary table."""
    with Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as progress:
        tasks: dict[str, TaskID] = {}
        bad: dict[str, int] = {}

        def start(hosts: list[Appliance]) -> None:
            for h in hosts:
                tasks[h.name] = progress.add_task(h.name, total=len(checks_for(h.role)), status="")

        def result(r: CheckResult) -> None:
            if r.outcome != "passed":
                bad[r.host] = bad.get(r.host, 0) + 1
            status = f"[red]{bad[r.host]} not passed[/]" if r.host in bad else "[green]ok[/]"
            progress.update(tasks[r.host], advance=1, status=status)
            if not console.is_terminal and r.outcome != "passed":
                console.print(f"{r.host} {r.check_id}: {r.outcome}", highlight=False)

        run = run_checks(inventory, vars_files=vars_files, limit=limit, workers=workers,
                         on_result=result, on_start=start)
    paths = write_reports(run, report_dir)
    table = Table("host", "role", "passed", "failed", "errors",
                  title=f"msib check: {len(run.hosts)} hosts, {run.finished - run.started:.1f}s")
    for h in run.hosts:
        rs = run.by_host().get(h.name, [])
        n = {k: sum(r.outcome == k for r in rs) for k in ("passed", "failed", "error")}
        table.add_row(h.name, h.role, str(n["passed"]), f"[red]{n['failed']}[/]" if n["failed"] else "0",
                      f"[yellow]{n['error']}[/]" if n["error"] else "0")
    target = console if as_json else out
    target.print(table)
    for r in findings(run)[:20]:
        last = [ln for ln in r.evidence.splitlines() if ln.strip()][-1:] or [""]
        target.print(f"[red]{r.outcome.upper()}[/] {r.host} {r.check_id} ({r.severity}): {last[0]}",
                     highlight=False, soft_wrap=True)
    target.print(f"report: {paths['html']} (also {paths['junit'].name}, {paths['markdown'].name}, "
                 f"{paths['json'].name})", highlight=False, soft_wrap=True)
    return run, paths
