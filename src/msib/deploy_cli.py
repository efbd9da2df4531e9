"""The console side of `msib deploy`: arguments checked, a live line per host, a summary table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from msib.deploy import ENGINES, DeployResult, Outcome, run_deploy
from msib.errors import InputError


def read_vars(files: Sequence[Path]) -> dict[str, Any]:
    """Merge YAML mappings of role variables (later files win).

    Raises:
        InputError: a file that is unreadable, not YAML or not a mapping.
    """
    merged: dict[str, Any] = {}
    for f in files:
        try:
            data = yaml.safe_load(Path(f).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(str(f), f"cannot read: {exc.strerror}", fix="check the path") from None
        except yaml.YAMLError:
            raise InputError(str(f), "not valid YAML", fix="fix the YAML syntax") from None
        if data is None:
            continue
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise InputError(str(f), "role variables must be a YAML mapping of names to values")
        merged.update(data)
    return merged


class LiveProgress:
    """One line per host: operations done, changed, failed, and the last one."""

    def __init__(self, live: Live | None) -> None:
        self.live = live
        self.rows: dict[str, dict[str, Any]] = {}

    def event(self, host: str, outcome: Outcome, what: str) -> None:
        row = self.rows.setdefault(host, {"done": 0, "changed": 0, "failed": 0, "last": ""})
        row["done"] += 1
        if outcome in ("changed", "failed"):
            row[outcome] += 1
        row["last"] = what[:70]
        if self.live is not None:
            self.live.update(self.table())

    def table(self) -> Table:
        table = Table("host", "done", "changed", "failed", "last operation", box=None)
        for host, row in sorted(self.rows.items()):
            table.add_row(host, str(row["done"]), str(row["changed"]),
                          f"[red]{row['failed']}[/]" if row["failed"] else "0", row["last"])
        return table


def summary_table(result: DeployResult) -> Table:
    """The changed / unchanged / failed table printed after a run."""
    mode = "check" if result.check else "run"
    table = Table("host", "changed", "unchanged", "failed",
                  title=f"msib deploy ({result.engine}, {mode}, {result.seconds:.1f}s)")
    for name, h in sorted(result.hosts.items()):
        failed = f"[red]{h.failed}[/]" + (f" ({h.error})" if h.error else "") if h.failed or h.error else "0"
        table.add_row(name, str(h.changed), str(h.unchanged), failed)
    return table


def deploy_command(inventory: Path, engine: str, *, check: bool, limit: str | None,
                   vars_files: Sequence[Path], console: Console, out: Console, as_json: bool) -> DeployResult:
    """Validate the arguments, run the deploy with a live display, print the summary."""
    if engine not in ENGINES:  # narrows str to Engine below
        raise InputError("--engine", f"unknown engine {engine!r}", fix="pyinfra or ansible")
    extra = read_vars(vars_files)
    with Live(console=console, transient=True, refresh_per_second=8,
              auto_refresh=console.is_terminal) as live:
        progress = LiveProgress(live if console.is_terminal else None)
        result = run_deploy(inventory, engine, check=check, limit=limit, extra_vars=extra,
                            progress=progress)
    (console if as_json else out).print(summary_table(result))
    return result
