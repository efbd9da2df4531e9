"""`msib report quarterly`: the quarterly report to the KNB (§13 of the Rules), Markdown and HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from msib.cli.console import out

report_app = typer.Typer(help="Reports for people: the quarterly report to the KNB.", no_args_is_help=True)


@report_app.command("quarterly")
def report_quarterly(
    fleet_dir: Annotated[Path, typer.Option("--fleet", "-f", help="The fleet directory.")],
    quarter: Annotated[str, typer.Option("--quarter", help="The quarter, e.g. 2026Q4.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where the report goes (default: the fleet's "
                                                               "reports/).")] = None,
    sb: Annotated[list[str] | None, typer.Option("--sb", help="Only this SB (repeatable).")] = None,
) -> None:
    """Per SB for the quarter: appendix changes, SIEM registration changes, check results, containment
    actions and silent periods, as quarterly-<Q>.md and quarterly-<Q>.html."""
    from msib.fleet.model import load_fleet
    from msib.fleet.quarterly import write_quarterly

    paths = write_quarterly(load_fleet(fleet_dir), quarter, out_dir, only=sb or [])
    out.print(f"report: {paths['html']} (also {paths['markdown'].name})", highlight=False, soft_wrap=True)
