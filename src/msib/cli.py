"""The `msib` command line: parses arguments and maps errors to exit codes, nothing more.

Exit codes: 0 done; 1 a run/check failed; 2 unusable input or an error that prevented the work.
Errors are one line on stderr; `--debug` shows the traceback too.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from msib import __version__
from msib.errors import MsibError

app = typer.Typer(
    name="msib",
    help="Roll out, keep alive and check the IS event sources of state bodies, and register them with the SIEM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()

_DEBUG = False


def _version(value: bool) -> None:
    if value:
        print(f"msib {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    global _DEBUG
    _DEBUG = debug


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (for schedulers and scripts)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


# --- lab ----------------------------------------------------------------------------------------

lab_app = typer.Typer(help="The local lab: real Debian 12 hosts in network namespaces (systemd-nspawn).",
                      no_args_is_help=True)
app.add_typer(lab_app, name="lab")

LabDirOpt = Annotated[
    Path | None,
    typer.Option("--lab-dir", envvar="MSIB_LAB_DIR", help="Lab state directory (default /var/lib/msib-lab)."),
]
LabPlanOpt = Annotated[
    Path,
    typer.Option("--site", help="Site plan of the lab; lab.yml beside it adds what only a lab has."),
]
DEFAULT_LAB_SITE = Path(os.environ.get("MSIB_LAB_SITE", "inventories/lab/site.yml"))


def _lab(site: Path, lab_dir: Path | None) -> Any:
    from msib.lab import Lab

    return Lab.from_files(site, state_dir=lab_dir)


@lab_app.command("up")
def lab_up(site: LabPlanOpt = DEFAULT_LAB_SITE, lab_dir: LabDirOpt = None) -> None:
    """Build (or reuse) the base image and boot every lab host; write ssh_config, known_hosts, inventory."""
    lab = _lab(site, lab_dir)
    lab.up(progress=console)
    console.print(f"[green]lab up[/]: {len(lab.hosts)} hosts; ssh -F {lab.ssh_config} NAME")


@lab_app.command("down")
def lab_down(site: LabPlanOpt = DEFAULT_LAB_SITE, lab_dir: LabDirOpt = None) -> None:
    """Power off every lab host and remove every trace of the lab (idempotent)."""
    lab = _lab(site, lab_dir)
    lab.down(progress=console)
    console.print("[green]lab down[/]: nothing of the lab remains")


@lab_app.command("reset")
def lab_reset(
    names: Annotated[list[str] | None, typer.Argument(help="Hosts to reset (default: all).")] = None,
    site: LabPlanOpt = DEFAULT_LAB_SITE,
    lab_dir: LabDirOpt = None,
) -> None:
    """Give lab hosts a fresh root filesystem (as newly installed) and boot them again."""
    lab = _lab(site, lab_dir)
    lab.reset(names or [], progress=console)


@lab_app.command("status")
def lab_status(
    site: LabPlanOpt = DEFAULT_LAB_SITE,
    lab_dir: LabDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show the lab's hosts, their roles, addresses and whether each is up."""
    lab = _lab(site, lab_dir)
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
    lab = _lab(site, lab_dir)
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
    lab = _lab(site, lab_dir)
    argv = lab.ssh_argv(name, list(ctx.args))
    os.execvp(argv[0], argv)


# --- siem -----------------------------------------------------------------------------------------

siem_app = typer.Typer(help="The central SIEM: register this SB's appliances and objects.", no_args_is_help=True)
app.add_typer(siem_app, name="siem")


@siem_app.command("sync")
def siem_sync(
    inventory: Annotated[Path, typer.Option("--inventory", help="Inventory directory (msib inventory build).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan, change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print plan and outcome as JSON.")] = False,
    url: Annotated[str | None, typer.Option("--url", help="SIEM API URL (default: msib_siem.api.url).")] = None,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="CA of the SIEM's certificate (default: msib_siem.api.ca_file).")
    ] = None,
    vault_file: Annotated[
        Path | None, typer.Option("--vault-file", help="ansible-vault file with msib_siem_user/msib_siem_password.")
    ] = None,
    vault_password_file: Annotated[
        Path | None, typer.Option("--vault-password-file", envvar="ANSIBLE_VAULT_PASSWORD_FILE",
                                  help="Vault password file.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per connect/read/write.")] = 30.0,
) -> None:
    """Reconcile the SIEM with the inventory: register what is missing, deregister what left, nothing else.

    Credentials: MSIB_SIEM_USER / MSIB_SIEM_PASSWORD, or --vault-file. Exit 0 done, 1 the SIEM
    refused or failed, 2 bad input.
    """
    from msib.siem.sync import describe, run_sync

    result, inv, api_url = run_sync(
        inventory, dry_run=dry_run, url=url, ca_file=ca_file, vault_file=vault_file,
        vault_password_file=vault_password_file, timeout=timeout,
    )
    if as_json:
        print_json(result.as_json())
        return
    for line in describe(result, inv, api_url, dry_run):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


# --- deploy -------------------------------------------------------------------------------------


@app.command("deploy")
def deploy_cmd(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")],
    engine: Annotated[str, typer.Option("--engine", help="pyinfra or ansible.")] = "pyinfra",
    check: Annotated[bool, typer.Option("--check", help="Detect changes only; change nothing.")] = False,
    limit: Annotated[str | None, typer.Option("--limit", help="Host names or roles, comma-separated.")] = None,
    vars_file: Annotated[
        list[Path] | None, typer.Option("--vars", help="YAML file of role variables for every host (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-host summary as JSON.")] = False,
) -> None:
    """Deploy the collector, ids_sensor and firewall roles of an inventory with pyinfra or Ansible."""
    from msib.deploy_cli import deploy_command

    summary = deploy_command(inventory, engine, check=check, limit=limit, vars_files=vars_file or [],
                             console=console, out=out, as_json=as_json)
    if as_json:
        print_json(summary.to_json())
    if not summary.ok:
        raise typer.Exit(1)


# --- entry point ----------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point: run the app, turn msib errors into one line and an exit code."""
    try:
        app(standalone_mode=False)
    except MsibError as exc:
        if _DEBUG:
            console.print_exception()
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 1))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("[red]aborted[/]")
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # a click usage error or a bug: still one line unless --debug
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        if _DEBUG or "--debug" in sys.argv:
            raise
        console.print(f"[red]internal error:[/] {type(exc).__name__}: {exc} (run with --debug for a traceback)")
        sys.exit(2)
