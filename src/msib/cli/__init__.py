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

import importlib
import sys
from typing import Annotated, Final

import typer

from msib import __version__
from msib.cli.console import console
from msib.errors import MsibError
from msib.escape import rich_markup

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


# the commands, in the order `msib --help` lists them (top-level commands first, then the groups):
# name -> (module of msib.cli, its command function or group app). A command's module is imported,
# and its parameters built, only when that command runs (or for help): `msib inventory build`
# does not load deploy's, check's or the lab's.
_COMMANDS: Final = {
    "deploy": ("deploy", "deploy_cmd"),
    "check": ("check", "check_cmd"),
    "contain": ("contain", "contain_cmd"),
    "lab": ("lab", "lab_app"),
    "siem": ("siem", "siem_app"),
    "device": ("device", "device_app"),
    "update": ("update", "update_app"),
    "inventory": ("inventory", "inventory_app"),
    "site": ("site", "site_app"),
    "delivery": ("delivery", "delivery_app"),
    "fleet": ("fleet", "fleet_app"),
    "health": ("health", "health_app"),
    "report": ("report", "report_app"),
}


def register_commands(argv: list[str] | None = None) -> typer.Typer:
    """Add to :data:`app` the command `argv` names (every command when it names none, or for help)."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    only = args[0] if args and args[0] in _COMMANDS else None
    registered = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for name, (module, attr) in _COMMANDS.items():
        if (only is not None and name != only) or name in registered:
            continue
        target = getattr(importlib.import_module(f"msib.cli.{module}"), attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def main() -> None:
    """Console-script entry point: run the app, turn msib errors into one line and an exit code."""
    try:
        # with standalone_mode=False click *returns* the code of `raise typer.Exit(n)`
        code = register_commands()(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MsibError as exc:
        if _DEBUG:
            console.print_exception()
        console.print(f"[red]error:[/] {rich_markup(exc)}", highlight=False, soft_wrap=True)
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
        text = f"{type(exc).__name__}: {rich_markup(exc)} (run with --debug for a traceback)"
        console.print(f"[red]internal error:[/] {text}", highlight=False, soft_wrap=True)
        sys.exit(2)
