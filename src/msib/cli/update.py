"""`msib update`: unattended package and IDS rule updates, the nightly timer, and their console lines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from msib.cli.console import console, out, print_json
from msib.escape import plain, rich_markup

if TYPE_CHECKING:
    from rich.console import Console

update_app = typer.Typer(help="Unattended updates: packages (security first) and the IDS rule set.",
                         invoke_without_command=True)


@update_app.callback()
def update_cmd(
    ctx: typer.Context,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")
    ] = None,
    packages: Annotated[
        bool, typer.Option("--packages", help="Upgrade packages, security first; restart what needs it.")
    ] = False,
    rules: Annotated[
        bool, typer.Option("--rules", help="Fetch, test, push, reload and verify the IDS rule set.")
    ] = False,
    vars_file: Annotated[
        list[Path] | None, typer.Option("--vars", help="Role variables as given to msib deploy --vars (repeatable).")
    ] = None,
    limit: Annotated[list[str] | None, typer.Option("--limit", help="Only this host (repeatable).")] = None,
    rules_source: Annotated[
        str | None, typer.Option("--rules-source", help="Directory or http(s) URL of the rule sets.")
    ] = None,
    lock_file: Annotated[Path | None, typer.Option("--lock-file", help="Lock file (one run at a time).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Update the appliances unattended (neither --packages nor --rules: both).

    Exit 0 done, 1 something failed, 2 unusable input, 75 another run holds the lock.
    """
    if ctx.invoked_subcommand is not None:
        return
    from msib import update as up

    if inventory is None:
        from msib.errors import InputError

        raise InputError("--inventory", "is required", fix="the inventory directory (hosts.yml)")
    names = [n for item in (limit or []) for n in item.split(",") if n]
    try:
        run = up.run_update(inventory, packages=packages, rules=rules, vars_files=vars_file or [], limit=names,
                            rules_source=rules_source, lock=lock_file or up.DEFAULT_LOCK,
                            on_step=lambda line: console.print(plain(line), markup=False, highlight=False))
    except up.UpdateLocked as exc:
        if as_json:
            print_json({"ok": False, "locked": True, "exit_code": up.EXIT_LOCKED, "message": str(exc)})
        console.print(f"[yellow]refused:[/] {rich_markup(exc)}", highlight=False, soft_wrap=True)
        sys.exit(up.EXIT_LOCKED)
    summary = run.as_json()
    from msib.cli.runs import record_run

    record_run(inventory, "update", {k: summary[k] for k in ("changed", "failures", "seconds")},
               ok=run.exit_code() == 0, started=run.started)
    if as_json:
        print_json(summary)
    else:
        print_summary(summary, out)
    sys.exit(run.exit_code())


def print_summary(summary: dict[str, Any], out: Console) -> None:
    """One line per host: packages upgraded and restarts, the rule set loaded (text from hosts as text)."""
    e = rich_markup
    for h, p in (summary["packages"] or {}).items():
        out.print(e(f"{h}: {len(p['upgraded'])} upgraded ({p['security']} security), restarted "
                    f"{', '.join(p['restarted']) or 'nothing'}") + (f" [red]{e(p['error'])}[/]" if p["error"] else ""))
    for h, s in ((summary["rules"] or {}).get("sensors") or {}).items():
        out.print(e(f"{h}: rules {s['status']} {s['version'] or ''} ({s['rules_loaded']} loaded)")
                  + (f" [red]{e(s['error'])}[/]" if s["error"] else ""))


@update_app.command("install-timer")
def update_install_timer(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory the nightly run updates.")],
    vars_file: Annotated[list[Path] | None, typer.Option("--vars", help="Role variables (repeatable).")] = None,
    unit_dir: Annotated[Path, typer.Option("--unit-dir", help="Where the units go.")] = Path("/etc/systemd/system"),
    env_file: Annotated[Path, typer.Option("--env-file", help="Environment file of the service.")] = Path(
        "/etc/msib/update.env"),
    enable: Annotated[
        bool, typer.Option("--enable/--no-enable", help="daemon-reload and enable --now the timer.")
    ] = True,
) -> None:
    """Install msib-update.service and msib-update.timer (nightly) on this control node."""
    from msib.update import install_timer

    paths = install_timer(inventory, vars_files=vars_file or [], unit_dir=unit_dir, env_file=env_file, enable=enable)
    for kind, path in paths.items():
        out.print(f"{kind}: {path}", highlight=False)
