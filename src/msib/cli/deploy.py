"""`msib deploy`: arguments checked, a live line per host while it runs, a summary table after."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from msib.cli.console import console, out, print_json
from msib.engines.result import DEFAULT_STEP_TIMEOUT_S, ENGINES, DeployResult, Outcome
from msib.errors import InputError
from msib.escape import plain

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table


def read_vars(files: Sequence[Path]) -> dict[str, Any]:
    """Merge YAML mappings of role variables (later files win).

    Raises:
        InputError: a file that is unreadable, not YAML or not a mapping.
    """
    import yaml

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
    """One line per host: steps done, changed, failed, and the step running now with its time.

    On a terminal the table is redrawn live. Elsewhere (CI logs, cron) a line is printed when a
    step has run for `quiet_s` seconds, and again every `quiet_s` seconds while it runs: nothing
    waits in silence.
    """

    def __init__(self, live: Live | None, console: Console | None = None, quiet_s: float = 30.0) -> None:
        self.live = live
        self.console = console
        self.quiet_s = quiet_s
        self.rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="msib-deploy-progress", daemon=True)

    def __enter__(self) -> LiveProgress:
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join(timeout=5)

    def _row(self, host: str) -> dict[str, Any]:
        return self.rows.setdefault(host, {"done": 0, "changed": 0, "failed": 0, "now": "", "since": 0.0,
                                           "told": 0.0})

    def start(self, host: str, what: str) -> None:
        with self._lock:
            row = self._row(host)
            row["now"], row["since"], row["told"] = what[:70], time.monotonic(), 0.0
        self._redraw()

    def event(self, host: str, outcome: Outcome, what: str) -> None:
        with self._lock:
            row = self._row(host)
            row["done"] += 1
            if outcome in ("changed", "failed"):
                row[outcome] += 1
            row["now"], row["since"] = "", 0.0
        self._redraw()

    def waiting(self, now: float | None = None) -> list[tuple[str, str, float]]:
        """(host, step, seconds) of every step running for `quiet_s` or more and not told for as long."""
        now = time.monotonic() if now is None else now
        out = []
        with self._lock:
            for host, row in sorted(self.rows.items()):
                if row["now"] and now - row["since"] >= self.quiet_s and now - row["told"] >= self.quiet_s:
                    row["told"] = now
                    out.append((host, row["now"], now - row["since"]))
        return out

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if self.live is not None:
                self._redraw()
            elif self.console is not None:
                for host, step, secs in self.waiting():
                    self.console.print(plain(f"{host}: still on {step!r} after {secs:.0f} s"), markup=False,
                                       highlight=False)

    def _redraw(self) -> None:
        if self.live is not None:
            self.live.update(self.table())

    def table(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        table = Table("host", "done", "changed", "failed", "now", box=None)
        now = time.monotonic()
        with self._lock:
            for host, row in sorted(self.rows.items()):
                step = f"{row['now']} ({now - row['since']:.0f} s)" if row["now"] else ""
                table.add_row(Text(plain(host)), str(row["done"]), str(row["changed"]),
                              Text(str(row["failed"]), style="red" if row["failed"] else ""), Text(plain(step)))
        return table


def summary_table(result: DeployResult) -> Table:
    """The changed / unchanged / failed table printed after a run."""
    from rich.table import Table
    from rich.text import Text

    mode = "check" if result.check else "run"
    table = Table("host", "changed", "unchanged", "failed",
                  title=f"msib deploy ({result.engine}, {mode}, {result.seconds:.1f}s)")
    for name, h in sorted(result.hosts.items()):
        failed = Text("0")
        if h.failed or h.error:
            failed = Text(str(h.failed), style="red")
            if h.error:
                failed.append(plain(f" ({h.error})"))
        table.add_row(Text(plain(name)), str(h.changed), str(h.unchanged), failed)
    return table


def deploy_command(inventory: Path, engine: str, *, check: bool, limit: str | None,
                   vars_files: Sequence[Path], console: Console, out: Console, as_json: bool,
                   step_timeout: float = DEFAULT_STEP_TIMEOUT_S, allow_unverified_hosts: bool = False,
                   allow_lockout: bool = False) -> DeployResult:
    """Validate the arguments, run the deploy with a live display, print the summary."""
    if engine not in ENGINES:  # narrows str to Engine below
        raise InputError("--engine", f"unknown engine {engine!r}", fix="pyinfra or ansible")
    from rich.live import Live

    from msib.engines.deploy import run_deploy

    extra = read_vars(vars_files)
    live = Live(console=console, transient=True, refresh_per_second=8, auto_refresh=console.is_terminal)
    with live, LiveProgress(live if console.is_terminal else None, console) as progress:
        result = run_deploy(inventory, engine, check=check, limit=limit, extra_vars=extra,
                            progress=progress, step_timeout=step_timeout,
                            allow_unverified_hosts=allow_unverified_hosts, allow_lockout=allow_lockout)
    (console if as_json else out).print(summary_table(result))
    return result


def deploy_cmd(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")],
    engine: Annotated[str, typer.Option("--engine", help="pyinfra or ansible.")] = "pyinfra",
    check: Annotated[bool, typer.Option("--check", help="Detect changes only; change nothing.")] = False,
    limit: Annotated[str | None, typer.Option("--limit", help="Host names or roles, comma-separated.")] = None,
    vars_file: Annotated[
        list[Path] | None, typer.Option("--vars", help="YAML file of role variables for every host (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-host summary as JSON.")] = False,
    step_timeout: Annotated[float, typer.Option(
        "--step-timeout", help="Seconds one step may run on a host before that host fails (the others go on).",
    )] = DEFAULT_STEP_TIMEOUT_S,
    allow_unverified_hosts: Annotated[bool, typer.Option(
        "--allow-unverified-hosts",
        help="Accept --vars that change how hosts are connected to or their keys checked (ssh_*, ansible_*).",
    )] = False,
    allow_lockout: Annotated[bool, typer.Option(
        "--allow-lockout", help="Accept firewall_guard: false in --vars (a ruleset may cut the management path).",
    )] = False,
) -> None:
    """Deploy the collector, ids_sensor and firewall roles of an inventory with pyinfra or Ansible.

    One deploy of an inventory at a time: a second one exits 75 at once. Exit 0 done, 1 a host
    failed, 2 bad input, 75 another deploy of the inventory is running.
    """
    from msib.cli.runs import record_run

    started = time.time()
    summary = deploy_command(inventory, engine, check=check, limit=limit, vars_files=vars_file or [],
                             console=console, out=out, as_json=as_json, step_timeout=step_timeout,
                             allow_unverified_hosts=allow_unverified_hosts, allow_lockout=allow_lockout)
    record_run(inventory, "deploy", summary.to_json(), ok=summary.ok, started=started)
    if as_json:
        print_json(summary.to_json())
    if not summary.ok:
        raise typer.Exit(1)
