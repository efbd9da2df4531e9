"""`msib lab ...`: the local lab (up, down, reset, status, check, ssh) and its console output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from msib.cli.console import console, out, print_json

if TYPE_CHECKING:
    from msib.lab import Lab

lab_app = typer.Typer(help="The local lab: real Debian 12 hosts in network namespaces (systemd-nspawn).",
                      no_args_is_help=True)

LabDirOpt = Annotated[
    Path | None,
    typer.Option("--lab-dir", envvar="MSIB_LAB_DIR", help="Lab state directory (default /var/lib/msib-lab)."),
]
LabPlanOpt = Annotated[
    Path,
    typer.Option("--site", help="Site plan of the lab; lab.yml beside it adds what only a lab has."),
]
DEFAULT_LAB_SITE = Path(os.environ.get("MSIB_LAB_SITE", "inventories/lab/site.yml"))


def lab_from_files(site: Path, lab_dir: Path | None) -> Lab:
    """The lab of site plan `site` (lab.yml beside it), state in `lab_dir` (default /var/lib/msib-lab)."""
    from msib.lab import Lab

    return Lab.from_files(site, state_dir=lab_dir)


@lab_app.command("up")
def lab_up(site: LabPlanOpt = DEFAULT_LAB_SITE, lab_dir: LabDirOpt = None) -> None:
    """Build (or reuse) the base image and boot every lab host; write ssh_config, known_hosts, inventory."""
    lab = lab_from_files(site, lab_dir)
    lab.up(progress=console)
    console.print(f"[green]lab up[/]: {len(lab.hosts)} hosts; ssh -F {lab.ssh_config} NAME")


@lab_app.command("down")
def lab_down(site: LabPlanOpt = DEFAULT_LAB_SITE, lab_dir: LabDirOpt = None) -> None:
    """Power off every lab host and remove every trace of the lab (idempotent)."""
    lab = lab_from_files(site, lab_dir)
    lab.down(progress=console)
    console.print("[green]lab down[/]: nothing of the lab remains")


@lab_app.command("reset")
def lab_reset(
    names: Annotated[list[str] | None, typer.Argument(help="Hosts to reset (default: all).")] = None,
    site: LabPlanOpt = DEFAULT_LAB_SITE,
    lab_dir: LabDirOpt = None,
) -> None:
    """Give lab hosts a fresh root filesystem (as newly installed) and boot them again."""
    lab = lab_from_files(site, lab_dir)
    lab.reset(names or [], progress=console)


@lab_app.command("status")
def lab_status(
    site: LabPlanOpt = DEFAULT_LAB_SITE,
    lab_dir: LabDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show the lab's hosts, their roles, addresses and whether each is up."""
    lab = lab_from_files(site, lab_dir)
    status = lab.status()
    if as_json:
        print_json(status)
        return
    from rich.table import Table

    table = Table("name", "role", "circuit", "address", "up")
    for h in status["hosts"]:
        table.add_row(h["name"], h["role"], h["circuit"] or "-", h["address"], "yes" if h["up"] else "no")
    out.print(table)


@lab_app.command("check")
def lab_check(site: LabPlanOpt = DEFAULT_LAB_SITE, lab_dir: LabDirOpt = None) -> None:
    """Connect to every lab host over SSH (strict host keys) and ask systemd how it is."""
    lab = lab_from_files(site, lab_dir)
    states = lab.check()
    from rich.table import Table

    table = Table("host", "systemd")
    for name, state in states.items():
        table.add_row(name, state if state == "running" else f"[red]{state}[/]")
    out.print(table)
    bad = [n for n, s in states.items() if s != "running"]
    if bad:
        console.print(f"[red]not running:[/] {', '.join(bad)}")
        raise typer.Exit(1)


@lab_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab_ssh(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Lab host name.")],
    site: LabPlanOpt = DEFAULT_LAB_SITE,
    lab_dir: LabDirOpt = None,
) -> None:
    """Open an SSH session to a lab host (strict host keys); extra words are run as a command."""
    lab = lab_from_files(site, lab_dir)
    argv = lab.ssh_argv(name, list(ctx.args))
    os.execvp(argv[0], argv)


@lab_app.command("fleet")
def lab_fleet(
    out_dir: Annotated[Path, typer.Option("--out", help="The fleet directory to write (or refresh).")],
    site: LabPlanOpt = DEFAULT_LAB_SITE,
    lab_dir: LabDirOpt = None,
    second: Annotated[Path, typer.Option("--second-site", help="Site plan of the lab's second SB.")] = Path(
        "inventories/lab-akm/site.yml"),
    second_dir: Annotated[Path, typer.Option("--second-dir", help="State directory of the second SB's lab.")] = Path(
        "/var/lib/msib-lab-akm"),
) -> None:
    """Write a fleet directory of the running labs: the shared lab and the second SB (inventories/lab-fleet)."""
    from msib.lab.fleet import write_lab_fleet

    labs = [lab_from_files(site, lab_dir), lab_from_files(second, second_dir)]
    path = write_lab_fleet(out_dir, labs)
    console.print(f"[green]wrote[/] {path} and sbs/{{{','.join(lab.plan.code for lab in labs)}}}", highlight=False)


@lab_app.command("object-logging")
def lab_object_logging(
    names: Annotated[list[str], typer.Argument(help="Object hosts of the lab.")],
    stop: Annotated[bool, typer.Option("--stop", help="Stop their logging (they fall silent).")] = False,
    every: Annotated[float, typer.Option("--every", help="Seconds between two heartbeats.")] = 5.0,
    site: LabPlanOpt = DEFAULT_LAB_SITE,
    lab_dir: LabDirOpt = None,
) -> None:
    """Object hosts send a syslog heartbeat to their collector every few seconds (--stop: they fall silent)."""
    from msib.lab.sources import start_object_logging, stop_object_logging

    lab = lab_from_files(site, lab_dir)
    for name in names:
        if stop:
            stop_object_logging(lab, name)
        else:
            start_object_logging(lab, name, every=every)
        console.print(f"{name}: logging {'stopped' if stop else f'every {every:g} s'}", highlight=False)
