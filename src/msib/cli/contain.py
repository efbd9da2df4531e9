"""`msib contain`: block, release or list addresses on the circuit's firewalls, and say what was done."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from msib.cli.console import out, print_json


def contain_cmd(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")],
    ip: Annotated[str | None, typer.Option("--ip", help="Address or network to block (A.B.C.D[/NN]).")] = None,
    release: Annotated[str | None, typer.Option("--release", help="Address or network to unblock.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Show the active blocks (sweeps expired ones).")] = False,
    circuit: Annotated[
        list[str] | None, typer.Option("--circuit", help="Only this circuit (repeatable; default: the address's).")
    ] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="How long the block lasts: 90s, 30m, 1h, 2d.")] = "1h",
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the audit record).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Say what would change; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    audit_log: Annotated[
        Path | None, typer.Option("--audit-log", envvar="MSIB_CONTAIN_AUDIT",
                                  help="Audit log (default: <inventory dir>.contain-audit.jsonl beside it).")
    ] = None,
    backup_dir: Annotated[
        Path | None, typer.Option("--backup-dir", envvar="MSIB_BACKUP_DIR", help="Vendor config backups.")
    ] = None,
    known_hosts: Annotated[
        Path | None, typer.Option("--known-hosts", help="known_hosts of the vendor devices (default: the site's).")
    ] = None,
    vault_file: Annotated[
        Path | None, typer.Option("--vault-file", help="ansible-vault file with the device credentials.")
    ] = None,
    vault_password_file: Annotated[
        Path | None, typer.Option("--vault-password-file", envvar="ANSIBLE_VAULT_PASSWORD_FILE",
                                  help="Vault password file.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per device connection/command.")] = 20.0,
) -> None:
    """Block an address on every firewall of its circuit(s) for a TTL, release it, or list active blocks.

    Refuses (exit 2, nothing changed) the management path, collectors, the SIEM, appliances,
    loopback/multicast and networks holding any of them. Every action is an audit record.
    Exit 0 done (or already so), 1 a firewall failed, 2 refused or bad input.
    """
    from msib import contain as ct
    from msib.errors import InputError

    if sum(x for x in (ip is not None, release is not None, list_)) != 1:
        raise InputError("msib contain", "give exactly one of --ip ADDR, --release ADDR, --list")
    opts = ct.Options(audit_log=audit_log, backup_dir=backup_dir, known_hosts=known_hosts, vault_file=vault_file,
                      vault_password_file=vault_password_file, timeout=timeout)
    if list_:
        blocks = ct.list_blocks(inventory, opts=opts)
        if as_json:
            print_json(blocks.to_json())
        else:
            for line in ct.describe_list(blocks):
                out.print(line, highlight=False, markup=False, soft_wrap=True)
        sys.exit(blocks.exit_code())
    if ip is not None:
        run = ct.contain(inventory, ip, ttl=ttl, circuits=circuit or [], reason=reason, check=check, opts=opts)
    else:
        assert release is not None
        run = ct.release(inventory, release, circuits=circuit or [], reason=reason, check=check, opts=opts)
    if as_json:
        print_json(run.to_json())
    else:
        for line in ct.describe(run):
            out.print(line, highlight=False, markup=False, soft_wrap=True)
    sys.exit(run.exit_code())
