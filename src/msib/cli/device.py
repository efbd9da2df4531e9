"""`msib device ...`: vendor firewalls over SSH (backup, configure-logging, check, trust) and their tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from msib.cli.console import out, print_json

device_app = typer.Typer(help="Vendor firewalls (inventory group netdev) over SSH with netmiko.",
                         no_args_is_help=True)

DevInventoryOpt = Annotated[Path, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")]
DevLimitOpt = Annotated[str | None, typer.Option("--limit", help="Device names, comma-separated (default: all).")]
DevBackupDirOpt = Annotated[
    Path | None, typer.Option("--backup-dir", envvar="MSIB_BACKUP_DIR",
                              help="Backups go to DIR/<site>/<device>.cfg (default ./backups).")
]
DevKnownHostsOpt = Annotated[
    Path | None, typer.Option("--known-hosts", help="known_hosts of the site (default: from the inventory).")
]
DevVaultOpt = Annotated[
    Path | None, typer.Option("--vault-file", help="ansible-vault file with msib_device_username/_password/_enable.")
]
DevVaultPwOpt = Annotated[
    Path | None, typer.Option("--vault-password-file", envvar="ANSIBLE_VAULT_PASSWORD_FILE",
                              help="Vault password file.")
]
DevTimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds per connect and per command.")]
DevTransportOpt = Annotated[str, typer.Option("--transport", help="Syslog transport to the collector: tcp or udp.")]
DevPortOpt = Annotated[int, typer.Option("--port", help="Syslog port of the collector.")]
DevTrapOpt = Annotated[str, typer.Option("--trap", help="Lowest severity sent (IOS `logging trap` level).")]
DevJsonOpt = Annotated[bool, typer.Option("--json", help="Print the per-device outcome as JSON.")]


def _device_run(inventory: Path, action: str, as_json: bool, **opts: Any) -> None:
    from msib.netdev import runner as device_cli

    if opts.get("transport") not in (None, "tcp", "udp"):
        raise typer.BadParameter("tcp or udp", param_hint="--transport")
    opts["backup_dir"] = opts.get("backup_dir") or device_cli.default_backup_dir()
    result = device_cli.run(inventory, action, device_cli.RunOptions(**opts))  # type: ignore[arg-type]
    if as_json:
        print_json(result.to_json())
    else:
        from rich.table import Table

        table = Table("device", "ok", "outcome")
        for o in result.outcomes:
            table.add_row(o.device, "yes" if o.ok else "[red]NO[/]", o.summary)
        out.print(table)
    if not result.ok:
        raise typer.Exit(1)


@device_app.command("backup")
def device_backup(inventory: DevInventoryOpt, limit: DevLimitOpt = None, backup_dir: DevBackupDirOpt = None,
                  known_hosts: DevKnownHostsOpt = None, vault_file: DevVaultOpt = None,
                  vault_password_file: DevVaultPwOpt = None, timeout: DevTimeoutOpt = 20.0,
                  as_json: DevJsonOpt = False) -> None:
    """Back up each device's running config (diffable, secrets masked); rewritten only when it changed.

    Credentials: MSIB_DEVICE_USERNAME / MSIB_DEVICE_PASSWORD / MSIB_DEVICE_ENABLE, or --vault-file.
    Exit 0 done, 1 a device failed, 2 bad input.
    """
    _device_run(inventory, "backup", as_json, limit=limit, backup_dir=backup_dir, known_hosts=known_hosts,
                vault_file=vault_file, vault_password_file=vault_password_file, timeout=timeout)


@device_app.command("configure-logging")
def device_configure_logging(inventory: DevInventoryOpt, limit: DevLimitOpt = None,
                             check: Annotated[bool, typer.Option(
                                 "--check", help="Show what would be sent; change nothing.")] = False,
                             transport: DevTransportOpt = "tcp", port: DevPortOpt = 514,
                             trap: DevTrapOpt = "informational", backup_dir: DevBackupDirOpt = None,
                             known_hosts: DevKnownHostsOpt = None, vault_file: DevVaultOpt = None,
                             vault_password_file: DevVaultPwOpt = None, timeout: DevTimeoutOpt = 20.0,
                             as_json: DevJsonOpt = False) -> None:
    """Make each device send syslog to its circuit's collectors: only missing lines, saved only if changed.

    A rejected line is reverted from the backup taken just before. Exit 0 done, 1 a device failed, 2 bad input.
    """
    _device_run(inventory, "configure-logging", as_json, limit=limit, dry_run=check, transport=transport,
                port=port, trap=trap, backup_dir=backup_dir, known_hosts=known_hosts, vault_file=vault_file,
                vault_password_file=vault_password_file, timeout=timeout)


@device_app.command("check")
def device_check(inventory: DevInventoryOpt, limit: DevLimitOpt = None, transport: DevTransportOpt = "tcp",
                 port: DevPortOpt = 514, trap: DevTrapOpt = "informational", known_hosts: DevKnownHostsOpt = None,
                 vault_file: DevVaultOpt = None, vault_password_file: DevVaultPwOpt = None,
                 timeout: DevTimeoutOpt = 20.0, as_json: DevJsonOpt = False) -> None:
    """Check (read-only) that each device logs to its collectors and that this is saved; evidence per device.

    Exit 0 every check passed, 1 a check failed or a device could not be read, 2 bad input.
    """
    _device_run(inventory, "check", as_json, limit=limit, transport=transport, port=port, trap=trap,
                known_hosts=known_hosts, vault_file=vault_file, vault_password_file=vault_password_file,
                timeout=timeout)


@device_app.command("trust")
def device_trust(inventory: DevInventoryOpt,
                 limit: Annotated[str, typer.Option("--limit", help="The one device to trust.")],
                 fingerprint: Annotated[str | None, typer.Option(
                     "--fingerprint",
                     help="SHA256:... checked on the device's console; pinned only if it matches.")] = None,
                 known_hosts: DevKnownHostsOpt = None, as_json: DevJsonOpt = False) -> None:
    """First contact: show a device's SSH host key fingerprint; with --fingerprint, pin it in known_hosts.

    Exit 0 pinned (or already), 1 not pinned (no or another fingerprint), 2 bad input.
    """
    from msib.netdev import runner as device_cli

    outcome = device_cli.trust(inventory, limit, fingerprint, known_hosts)
    if as_json:
        print_json(outcome.to_json())
    else:
        out.print(f"{outcome.device}: {outcome.summary}", highlight=False, soft_wrap=True)
    if not outcome.ok:
        raise typer.Exit(1)
