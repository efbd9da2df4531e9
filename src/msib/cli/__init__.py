"""The `msib` command line: the app, its command groups, and the one place where errors become exit codes.

Exit codes: 0 done; 1 a run/check failed; 2 unusable input or an error that prevented the work.
Errors are one line on stderr; `--debug` shows the traceback too.

Each command group lives in its own module (:mod:`msib.cli.lab`, :mod:`msib.cli.siem`,
:mod:`msib.cli.deploy`, :mod:`msib.cli.device`, :mod:`msib.cli.check`, :mod:`msib.cli.update`,
:mod:`msib.cli.inventory`, :mod:`msib.cli.site`, :mod:`msib.cli.delivery`, :mod:`msib.cli.contain`,
:mod:`msib.cli.fleet`, :mod:`msib.cli.health`, :mod:`msib.cli.report`)
with its console output; they import what they run inside each command, so that the startup of
one command does not pay for the others. An :class:`~msib.errors.MsibError` raised anywhere
below reaches :func:`main`, which alone turns it into its line on stderr and its exit code.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from msib import __version__
from msib.cli import check, contain, delivery, deploy, device, fleet, health, inventory, lab, report, siem, site, update
from msib.cli.console import console
from msib.errors import MsibError

app = typer.Typer(
    name="msib",
    help="Roll out, keep alive and check the IS event sources of state bodies, and register them with the SIEM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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


# the commands, in the order `msib --help` lists them (top-level commands first, then the groups)
app.command("deploy")(deploy.deploy_cmd)
app.command("check")(check.check_cmd)
app.command("contain")(contain.contain_cmd)
app.add_typer(lab.lab_app, name="lab")
app.add_typer(siem.siem_app, name="siem")
app.add_typer(device.device_app, name="device")
app.add_typer(update.update_app, name="update")
app.add_typer(inventory.inventory_app, name="inventory")
app.add_typer(site.site_app, name="site")
app.add_typer(delivery.delivery_app, name="delivery")
app.add_typer(fleet.fleet_app, name="fleet")
app.add_typer(health.health_app, name="health")
app.add_typer(report.report_app, name="report")


def main() -> None:
    """Console-script entry point: run the app, turn msib errors into one line and an exit code."""
    try:
        # with standalone_mode=False click *returns* the code of `raise typer.Exit(n)`
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MsibError as exc:
        if _DEBUG:
            console.print_exception()
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
        # typer vendors its own click: recognise its usage errors by shape, not by class
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            sys.exit(code or 2)
        if _DEBUG or "--debug" in sys.argv:
            raise
        text = f"{type(exc).__name__}: {escape(str(exc))} (run with --debug for a traceback)"
        console.print(f"[red]internal error:[/] {text}", highlight=False, soft_wrap=True)
        sys.exit(2)
