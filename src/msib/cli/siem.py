"""`msib siem sync`: reconcile the central SIEM with the inventory, and print the plan and outcome."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from msib.cli.console import out, print_json

siem_app = typer.Typer(help="The central SIEM: register this SB's appliances and objects.", no_args_is_help=True)


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
    system_ca: Annotated[bool, typer.Option(
        "--system-ca", help="Verify the SIEM against the system's trust store when no CA is configured.",
    )] = False,
) -> None:
    """Reconcile the SIEM with the inventory: register what is missing, deregister what left, nothing else.

    Credentials: MSIB_SIEM_USER / MSIB_SIEM_PASSWORD, or --vault-file. Exit 0 done, 1 the SIEM
    refused or failed, 2 bad input.
    """
    from msib.siem.sync import describe, run_sync

    started = time.time()
    result, inv, api_url = run_sync(
        inventory, dry_run=dry_run, url=url, ca_file=ca_file, vault_file=vault_file,
        vault_password_file=vault_password_file, timeout=timeout, system_ca=system_ca,
    )
    if not dry_run:  # registration changes at the SIEM, for the quarterly report
        from msib.cli.runs import record_run

        record_run(inventory, "siem_sync", result.as_json(), ok=True, started=started)
    if as_json:
        print_json(result.as_json())
        return
    for line in describe(result, inv, api_url, dry_run):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
