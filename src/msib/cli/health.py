"""`msib health`: every source an inventory (or a fleet) expects, heard or silent; the exporter and the timer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from msib.cli.console import console, out, print_json
from msib.errors import InputError
from msib.escape import rich_text

if TYPE_CHECKING:
    from msib.health.model import SbHealth
    from msib.health.probe import SiemView

health_app = typer.Typer(help="Health of the sources: last heard, rate, silent, degraded or unknown.",
                         invoke_without_command=True)


def siem_for(inventory: Path) -> SiemView | None:
    """How to ask the SIEM about an inventory's collectors: the lab SIEM on a running lab, else it cannot be asked."""
    from msib.lab.sources import lab_siem_view

    return lab_siem_view(inventory)


def _write(path: Path, text: str) -> None:
    from msib.fsutil import atomic_write

    atomic_write(path, text, mode=0o600)


def _table(results: list[SbHealth], *, all_sources: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    from msib.health.page import ago

    colour = {"ok": "green", "silent": "red", "degraded": "yellow", "unknown": "bright_black"}
    for r in results:
        c = r.counts()
        title = (f"{r.sb}: {c['silent']} silent, {c['degraded']} degraded, {c['unknown']} unknown, {c['ok']} ok "
                 f"({r.seconds:.1f} s)")
        if r.error:
            out.print(rich_text(f"{r.sb}: cannot tell: {r.error}", "red"))
            continue
        if not all_sources and c["ok"] == len(r.sources):
            out.print(Text(f"{title}: every source ok", style="green"))
            continue
        table = Table("source", "kind", "circuit", "state", "last heard", "events/min", "why", title=title)
        for s in sorted(r.sources, key=lambda s: (s.state == "ok", s.circuit or "", s.name)):
            if s.state == "ok" and not all_sources:
                continue
            table.add_row(rich_text(s.name), s.kind, s.circuit or "", Text(s.state + (" (severe)" if s.severe else ""),
                                                                      style=colour[s.state]),
                          ago(s.last_heard, r.at), "" if s.rate is None else f"{s.rate:.2f}",
                          rich_text("; ".join(s.reasons)))
        out.print(table)
        for place, why in sorted(r.unreachable.items()):
            out.print(rich_text(f"  could not ask {place}: {why}", "yellow"))


@health_app.callback()
def health_cmd(
    ctx: typer.Context,
    inventory: Annotated[Path | None, typer.Option("--inventory", "-i", help="One inventory directory.")] = None,
    fleet_dir: Annotated[Path | None, typer.Option("--fleet", "-f", help="A fleet directory (every SB).")] = None,
    sb: Annotated[list[str] | None, typer.Option("--sb", help="With --fleet: only this SB (repeatable).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Health settings (YAML; default: the "
                                                                 "documented defaults, or fleet.yml's).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the HTML page here.")] = None,
    prometheus: Annotated[Path | None, typer.Option("--prometheus", help="Also write the Prometheus "
                                                                         "exposition here.")] = None,
    all_sources: Annotated[bool, typer.Option("--all", help="List the ok sources too.")] = False,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Remember the result beside the inventory "
                                                                "(baselines, silent periods, the exporter).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Ask the collectors, sensors and SIEM; judge every appliance and object the inventory expects.

    Exit 0 nothing silent, 1 something is silent, 2 unusable input.
    """
    if ctx.invoked_subcommand is not None:
        return
    from msib.health.config import load_config
    from msib.health.model import exit_code
    from msib.health.page import render_page
    from msib.health.prometheus import exposition
    from msib.health.run import check_inventory

    if (inventory is None) == (fleet_dir is None):
        raise InputError("--inventory/--fleet", "give one of them", fix="msib health --inventory DIR or --fleet DIR")
    title = "msib health"
    if fleet_dir is not None:
        from msib.fleet.model import load_fleet
        from msib.fleet.status import fleet_health

        fleet = load_fleet(fleet_dir)
        cfg = load_config(config) if config else fleet.health
        title = f"{fleet.settings.name}: health"
        results = fleet_health(fleet, lambda _code, inv: siem_for(inv), config=cfg, only=sb or [], save=save,
                               on_sb=lambda r: console.print(f"{r.sb}: {r.worst} ({r.seconds:.1f} s)",
                                                             highlight=False, markup=False))
    else:
        from msib import contract
        from msib.inventory.diff import load_snapshot

        assert inventory is not None
        contract.load(inventory)  # an unusable inventory is one line and exit 2, before anything is asked
        load_snapshot(inventory)
        results = [check_inventory(inventory, load_config(config), siem_for(inventory), save=save)]
    if html:
        _write(html, render_page(results, title=title))
    if prometheus:
        _write(prometheus, exposition(results))
    if as_json:
        print_json({"sbs": [r.to_json() for r in results], "exit_code": exit_code(results)})
    else:
        _table(results, all_sources=all_sources)
    sys.exit(exit_code(results))


def _inventories(inventory: Path | None, fleet_dir: Path | None) -> list[Path]:
    if (inventory is None) == (fleet_dir is None):
        raise InputError("--inventory/--fleet", "give one of them")
    if inventory is not None:
        return [inventory]
    from msib.fleet.model import load_fleet, survey

    fleet = load_fleet(fleet_dir)  # type: ignore[arg-type]
    return [fleet.inventory_dir(e.code) for e in survey(fleet) if e.ok]


@health_app.command("serve")
def health_serve(
    inventory: Annotated[Path | None, typer.Option("--inventory", "-i", help="One inventory directory.")] = None,
    fleet_dir: Annotated[Path | None, typer.Option("--fleet", "-f", help="A fleet directory.")] = None,
    listen: Annotated[str, typer.Option("--listen", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 9309,
) -> None:
    """Serve /metrics (Prometheus) from the latest saved health results; runs until stopped."""
    from msib.health.exporter import make_server

    _inventories(inventory, fleet_dir)  # refuse bad input before listening
    try:
        server = make_server(listen, port, lambda: _inventories(inventory, fleet_dir))
    except OSError as exc:
        raise InputError("--listen", f"cannot listen on {listen}:{port}: {exc.strerror}") from None
    console.print(f"serving http://{listen}:{port}/metrics", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@health_app.command("install-timer")
def health_install_timer(
    inventory: Annotated[Path | None, typer.Option("--inventory", "-i", help="One inventory directory.")] = None,
    fleet_dir: Annotated[Path | None, typer.Option("--fleet", "-f", help="A fleet directory.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="Health settings (YAML).")] = None,
    unit_dir: Annotated[Path, typer.Option("--unit-dir", help="Where the units go.")] = Path("/etc/systemd/system"),
    env_file: Annotated[Path, typer.Option("--env-file", help="Environment file of the services.")] = Path(
        "/etc/msib/health.env"),
    enable: Annotated[bool, typer.Option("--enable/--no-enable", help="daemon-reload and enable --now the timer "
                                                                      "and the exporter.")] = True,
) -> None:
    """Install msib-health.timer (every 5 minutes), its service and the Prometheus exporter's service."""
    from msib.health.timer import install_timer

    _inventories(inventory, fleet_dir)
    paths = install_timer(inventory=inventory, fleet=fleet_dir, config=config, unit_dir=unit_dir, env_file=env_file,
                          enable=enable)
    for kind, path in paths.items():
        out.print(f"{kind}: {path}", highlight=False)
