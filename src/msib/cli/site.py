"""`msib site schema` and `msib site validate`: the site plan's JSON Schema, and checking site plans."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from msib.cli.console import out

site_app = typer.Typer(help="The site plan: its published JSON Schema, and validation.", no_args_is_help=True)


@site_app.command("schema")
def site_schema(
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the schema here instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of the site plan (for editors and CI; committed as schemas/site.schema.json)."""
    from msib.site import json_schema_text

    text = json_schema_text()
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text, encoding="utf-8")


@site_app.command("validate")
def site_validate(
    sites: Annotated[list[Path], typer.Argument(help="Site plan files to check.")],
) -> None:
    """Check site plans; one line per file, exit 2 at the first invalid one."""
    from msib.site import load_site

    for path in sites:
        plan = load_site(path)
        apps = sum(1 for _ in plan.appliances())
        out.print(f"ok: {path}: {plan.code}, circuits {', '.join(plan.circuits)}, {apps} appliances",
                  highlight=False)
