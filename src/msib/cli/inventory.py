"""`msib inventory build` and `msib inventory diff`: appendix + site plan -> inventory; what changed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from msib.cli.console import console, print_json

inventory_app = typer.Typer(help="Appendix + site plan -> the inventory directory; what changed between two.",
                            no_args_is_help=True)


def _as_of(value: str | None) -> Any:
    import datetime as dt
    import re

    from msib.errors import InputError

    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError("--as-of", f"{value!r} is not a date", fix="give it as YYYY-MM-DD") from None


@inventory_app.command("build")
def inventory_build(
    appendices: Annotated[list[Path], typer.Argument(help="Appendix files (.xlsx or .csv, any mix), in order.")],
    site: Annotated[Path, typer.Option("--site", help="The SB's site plan (site.yml).")],
    out_dir: Annotated[Path, typer.Option("--out", help="The inventory directory (replaced as a whole).")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="YYYY-MM-DD that decides what is past end of life (default today).")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Write nothing (exit 1) if any row is rejected.")] = False,
    ssh_config: Annotated[Path | None, typer.Option("--ssh-config", help="ssh_config every connection uses.")] = None,
    known_hosts: Annotated[
        Path | None, typer.Option("--known-hosts", help="known_hosts of the site (host keys are always checked).")
    ] = None,
    ssh_key: Annotated[Path | None, typer.Option("--ssh-key", help="Private key to log in with.")] = None,
    ssh_user: Annotated[str | None, typer.Option("--ssh-user", help="Login user (default: the site plan's).")] = None,
    max_file_mb: Annotated[int, typer.Option("--max-file-mb", help="Largest appendix file, in MB.")] = 64,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Most rows of one sheet or CSV file.")] = 250_000,
    max_columns: Annotated[int, typer.Option("--max-columns", help="Most columns of one sheet or CSV row.")] = 256,
    max_cell_chars: Annotated[int, typer.Option("--max-cell-chars", help="Most characters in one cell.")] = 32_767,
) -> None:
    """Read the appendix and the site plan; write hosts.yml, pyinfra_inventory.py, objects.json, reports."""
    from msib.appendix.bounds import ReadLimits
    from msib.inventory import RowsRejected, SshSettings, build_inventory

    try:
        ssh = SshSettings(ssh_config=ssh_config, known_hosts=known_hosts, identity_file=ssh_key, user=ssh_user)
        limits = ReadLimits(max_file_bytes=max_file_mb << 20, max_rows=max_rows, max_columns=max_columns,
                            max_cell_chars=max_cell_chars)
        result = build_inventory(site, appendices, out_dir, as_of=_as_of(as_of), strict=strict, ssh=ssh,
                                 limits=limits)
    except RowsRejected as exc:
        from msib.escape import plain

        for r in exc.rejected:
            place = r.file if r.sheet is None else f"{r.file} [{r.sheet}]"
            col = f" {r.column}" if r.column else ""
            console.print(plain(f"  {place} row {r.row}{col}: {r.reason}: {r.message}"), markup=False,
                          highlight=False, soft_wrap=True)
        raise  # the error line and the exit code: msib.cli.main
    from msib.escape import rich_markup

    summary = rich_markup(f"{result.summary()}; see {out_dir / 'report.md'}")
    console.print(f"[green]wrote {rich_markup(out_dir)}[/]: {summary}", highlight=False, soft_wrap=True)


@inventory_app.command("diff")
def inventory_diff(
    old: Annotated[Path, typer.Argument(help="The earlier inventory directory.")],
    new: Annotated[Path, typer.Argument(help="The later inventory directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the differences as JSON.")] = False,
) -> None:
    """What changed between two inventories: objects added, removed, moved, re-addressed, newly end of life."""
    from msib.inventory.diff import diff_inventories, render_diff_markdown

    result = diff_inventories(old, new)
    if as_json:
        print_json(result.to_json())
    else:
        sys.stdout.write(render_diff_markdown(result))
