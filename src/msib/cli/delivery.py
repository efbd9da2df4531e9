"""`msib delivery check`: a canary from every source, and a table of what the SIEM saw."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from msib.cli.console import out, print_json
from msib.cli.lab import DEFAULT_LAB_SITE, LabPlanOpt, lab_from_files

delivery_app = typer.Typer(help="End-to-end log delivery to the SIEM (canary events).", no_args_is_help=True)


@delivery_app.command("check")
def delivery_check(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print {\"sources\": {NAME: {...}}} as JSON.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the last canary.")] = 30.0,
    objects: Annotated[list[str] | None, typer.Option(
        "--object", help="Object host NAME:CIRCUIT reached by its ssh_config entry (default on the lab: its objects).")
    ] = None,
    site: LabPlanOpt = DEFAULT_LAB_SITE,
) -> None:
    """Every source emits a tagged event; report per source delivered (latency), missing, or sent, not verifiable.

    On the lab's own inventory the lab SIEM's event files are read (over SSH) and the lab's object
    hosts take part; elsewhere the canaries are sent and reported "sent, not verifiable".
    Exit 1 if any source is missing or could not send.
    """
    from msib.delivery import NotVerifiable, check_delivery, sources_from_inventory
    from msib.errors import InputError

    query: Any = NotVerifiable()
    pairs: list[tuple[str, str]] = []
    for item in objects or []:
        name, sep, circuit = item.partition(":")
        if not sep or not name or not circuit:
            raise InputError("--object", f"{item!r} is not NAME:CIRCUIT", fix="e.g. --object obj-int-1:internal")
        pairs.append((name, circuit))
    lab_dir = inventory.resolve().parent
    if (lab_dir / "ssh_config").is_file() and site.is_file():
        lab = lab_from_files(site, lab_dir)
        if lab.inventory_dir.resolve() == inventory.resolve() and lab.is_up():
            # the lab's own inventory: the lab SIEM's event files can be read (the lab wing's EventQuery)
            from msib.lab.delivery import LabSiemFiles

            query = LabSiemFiles(lab.ssh_argv(lab.spec.siem.name))
            if objects is None:
                pairs = [(o.name, o.circuit) for o in lab.spec.objects]
    sources = sources_from_inventory(inventory, pairs)
    report = check_delivery(sources, query, timeout=timeout)
    if as_json:
        print_json(report.to_json())
    else:
        from rich.table import Table

        table = Table("source", "kind", "circuit", "status", "latency s")
        for name, r in sorted(report.sources.items()):
            colour = {"delivered": "green", "sent": "yellow"}.get(r.status, "red")
            lat = "" if r.latency_s is None else f"{r.latency_s:.2f}"
            table.add_row(name, r.kind, r.circuit, f"[{colour}]{r.status}[/]" + (f" ({r.error})" if r.error else ""),
                          lat)
        out.print(table)
        if not report.verifiable:
            out.print("the SIEM's events cannot be queried here: sent, not verifiable")
    if not report.ok:
        raise typer.Exit(1)
