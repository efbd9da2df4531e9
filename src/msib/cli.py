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
from rich.markup import escape

from msib import __version__
from msib.engines.result import DEFAULT_STEP_TIMEOUT_S
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
    step_timeout: Annotated[float, typer.Option(
        "--step-timeout", help="Seconds one step may run on a host before that host fails (the others go on).",
    )] = DEFAULT_STEP_TIMEOUT_S,
) -> None:
    """Deploy the collector, ids_sensor and firewall roles of an inventory with pyinfra or Ansible."""
    from msib.deploy_cli import deploy_command

    summary = deploy_command(inventory, engine, check=check, limit=limit, vars_files=vars_file or [],
                             console=console, out=out, as_json=as_json, step_timeout=step_timeout)
    if as_json:
        print_json(summary.to_json())
    if not summary.ok:
        raise typer.Exit(1)


# --- device -------------------------------------------------------------------------------------

device_app = typer.Typer(help="Vendor firewalls (inventory group netdev) over SSH with netmiko.",
                         no_args_is_help=True)
app.add_typer(device_app, name="device")

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


# --- check --------------------------------------------------------------------------------------


@app.command("check")
def check_cmd(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")],
    report: Annotated[Path, typer.Option("--report", help="Directory for junit.xml, report.html, report.md.")],
    vars_file: Annotated[
        list[Path] | None, typer.Option("--vars", help="Role variables as given to msib deploy --vars (repeatable).")
    ] = None,
    limit: Annotated[list[str] | None, typer.Option("--limit", help="Check only this host (repeatable).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Hosts checked at once.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the compliance checks on every appliance; write JUnit XML, HTML and Markdown reports.

    Exit 0 all passed, 1 a check failed, 2 an error prevented checking.
    """
    from msib.report_cli import check_command

    names = [n for item in (limit or []) for n in item.split(",") if n]
    run, _ = check_command(inventory, report, vars_files=vars_file or [], limit=names, workers=workers,
                           console=console, out=out, as_json=as_json)
    if as_json:
        print_json(run.summary())
    sys.exit(run.exit_code())  # (typer.Exit's code is swallowed by app(standalone_mode=False))


# --- update -------------------------------------------------------------------------------------

update_app = typer.Typer(help="Unattended updates: packages (security first) and the IDS rule set.",
                         invoke_without_command=True)
app.add_typer(update_app, name="update")


@update_app.callback()
def update_cmd(
    ctx: typer.Context,
    inventory: Annotated[
        Path | None, typer.Option("--inventory", "-i", help="Inventory directory (hosts.yml).")
    ] = None,
    packages: Annotated[
        bool, typer.Option("--packages", help="Upgrade packages, security first; restart what needs it.")
    ] = False,
    rules: Annotated[
        bool, typer.Option("--rules", help="Fetch, test, push, reload and verify the IDS rule set.")
    ] = False,
    vars_file: Annotated[
        list[Path] | None, typer.Option("--vars", help="Role variables as given to msib deploy --vars (repeatable).")
    ] = None,
    limit: Annotated[list[str] | None, typer.Option("--limit", help="Only this host (repeatable).")] = None,
    rules_source: Annotated[
        str | None, typer.Option("--rules-source", help="Directory or http(s) URL of the rule sets.")
    ] = None,
    lock_file: Annotated[Path | None, typer.Option("--lock-file", help="Lock file (one run at a time).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Update the appliances unattended (neither --packages nor --rules: both).

    Exit 0 done, 1 something failed, 2 unusable input, 75 another run holds the lock.
    """
    if ctx.invoked_subcommand is not None:
        return
    from msib import update as up

    if inventory is None:
        from msib.errors import InputError

        raise InputError("--inventory", "is required", fix="the inventory directory (hosts.yml)")
    names = [n for item in (limit or []) for n in item.split(",") if n]
    try:
        run = up.run_update(inventory, packages=packages, rules=rules, vars_files=vars_file or [], limit=names,
                            rules_source=rules_source, lock=lock_file or up.DEFAULT_LOCK,
                            on_step=lambda line: console.print(line, highlight=False))
    except up.UpdateLocked as exc:
        if as_json:
            print_json({"ok": False, "locked": True, "exit_code": up.EXIT_LOCKED, "message": str(exc)})
        console.print(f"[yellow]refused:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(up.EXIT_LOCKED)
    summary = run.as_json()
    if as_json:
        print_json(summary)
    else:
        for h, p in (summary["packages"] or {}).items():
            out.print(f"{h}: {len(p['upgraded'])} upgraded ({p['security']} security), restarted "
                      f"{', '.join(p['restarted']) or 'nothing'}" + (f" [red]{p['error']}[/]" if p["error"] else ""))
        for h, s in ((summary["rules"] or {}).get("sensors") or {}).items():
            out.print(f"{h}: rules {s['status']} {s['version'] or ''} ({s['rules_loaded']} loaded)"
                      + (f" [red]{s['error']}[/]" if s["error"] else ""))
    sys.exit(run.exit_code())


@update_app.command("install-timer")
def update_install_timer(
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory the nightly run updates.")],
    vars_file: Annotated[list[Path] | None, typer.Option("--vars", help="Role variables (repeatable).")] = None,
    unit_dir: Annotated[Path, typer.Option("--unit-dir", help="Where the units go.")] = Path("/etc/systemd/system"),
    env_file: Annotated[Path, typer.Option("--env-file", help="Environment file of the service.")] = Path(
        "/etc/msib/update.env"),
    enable: Annotated[
        bool, typer.Option("--enable/--no-enable", help="daemon-reload and enable --now the timer.")
    ] = True,
) -> None:
    """Install msib-update.service and msib-update.timer (nightly) on this control node."""
    from msib.update import install_timer

    paths = install_timer(inventory, vars_files=vars_file or [], unit_dir=unit_dir, env_file=env_file, enable=enable)
    for kind, path in paths.items():
        out.print(f"{kind}: {path}", highlight=False)


# --- inventory ----------------------------------------------------------------------------------

inventory_app = typer.Typer(help="Appendix + site plan -> the inventory directory; what changed between two.",
                            no_args_is_help=True)
app.add_typer(inventory_app, name="inventory")


def _fail(exc: MsibError) -> typer.Exit:
    """One escaped line on stderr (file and sheet names may hold `[`), and the error's exit code."""
    from rich.markup import escape

    if _DEBUG:
        console.print_exception()
    console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(getattr(exc, "exit_code", 1))


def _as_of(value: str | None) -> Any:
    import datetime as dt
    import re

    from msib.errors import InputError

    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError("--as-of", f"{value!r} is not a date", fix="give it as YYYY-MM-DD") from None


@inventory_app.command("build")
def inventory_build(
    appendices: Annotated[list[Path], typer.Argument(help="Appendix files (.xlsx or .csv, any mix), in order.")],
    site: Annotated[Path, typer.Option("--site", help="The SB's site plan (site.yml).")],
    out_dir: Annotated[Path, typer.Option("--out", help="The inventory directory (replaced as a whole).")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="YYYY-MM-DD that decides what is past end of life (default today).")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Write nothing (exit 1) if any row is rejected.")] = False,
    ssh_config: Annotated[Path | None, typer.Option("--ssh-config", help="ssh_config every connection uses.")] = None,
    known_hosts: Annotated[
        Path | None, typer.Option("--known-hosts", help="known_hosts of the site (host keys are always checked).")
    ] = None,
    ssh_key: Annotated[Path | None, typer.Option("--ssh-key", help="Private key to log in with.")] = None,
    ssh_user: Annotated[str | None, typer.Option("--ssh-user", help="Login user (default: the site plan's).")] = None,
) -> None:
    """Read the appendix and the site plan; write hosts.yml, pyinfra_inventory.py, objects.json, reports."""
    from msib.inventory import RowsRejected, SshSettings, build_inventory

    try:
        ssh = SshSettings(ssh_config=ssh_config, known_hosts=known_hosts, identity_file=ssh_key, user=ssh_user)
        result = build_inventory(site, appendices, out_dir, as_of=_as_of(as_of), strict=strict, ssh=ssh)
    except RowsRejected as exc:
        from rich.markup import escape

        for r in exc.rejected:
            place = r.file if r.sheet is None else f"{r.file} [{r.sheet}]"
            col = f" {r.column}" if r.column else ""
            console.print(escape(f"  {place} row {r.row}{col}: {r.reason}: {r.message}"), highlight=False,
                          soft_wrap=True)
        raise _fail(exc) from None
    except MsibError as exc:
        raise _fail(exc) from None
    console.print(f"[green]wrote {out_dir}[/]: {result.summary()}; see {out_dir / 'report.md'}", highlight=False)


@inventory_app.command("diff")
def inventory_diff(
    old: Annotated[Path, typer.Argument(help="The earlier inventory directory.")],
    new: Annotated[Path, typer.Argument(help="The later inventory directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the differences as JSON.")] = False,
) -> None:
    """What changed between two inventories: objects added, removed, moved, re-addressed, newly end of life."""
    from msib.diff import diff_inventories, render_diff_markdown

    try:
        result = diff_inventories(old, new)
    except MsibError as exc:
        raise _fail(exc) from None
    if as_json:
        print_json(result.to_json())
    else:
        sys.stdout.write(render_diff_markdown(result))


# --- site ---------------------------------------------------------------------------------------

site_app = typer.Typer(help="The site plan: its published JSON Schema, and validation.", no_args_is_help=True)
app.add_typer(site_app, name="site")


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
        try:
            plan = load_site(path)
        except MsibError as exc:
            raise _fail(exc) from None
        apps = sum(1 for _ in plan.appliances())
        out.print(f"ok: {path}: {plan.code}, circuits {', '.join(plan.circuits)}, {apps} appliances",
                  highlight=False)


# --- delivery -----------------------------------------------------------------------------------

delivery_app = typer.Typer(help="End-to-end log delivery to the SIEM (canary events).", no_args_is_help=True)
app.add_typer(delivery_app, name="delivery")


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
    from msib.delivery import LabSiemFiles, NotVerifiable, check_delivery, sources_from_inventory
    from msib.errors import InputError

    query: Any = NotVerifiable()
    pairs: list[tuple[str, str]] = []
    try:
        for item in objects or []:
            name, sep, circuit = item.partition(":")
            if not sep or not name or not circuit:
                raise InputError("--object", f"{item!r} is not NAME:CIRCUIT", fix="e.g. --object obj-int-1:internal")
            pairs.append((name, circuit))
        lab_dir = inventory.resolve().parent
        if (lab_dir / "ssh_config").is_file() and site.is_file():
            lab = _lab(site, lab_dir)
            if lab.inventory_dir.resolve() == inventory.resolve() and lab.is_up():
                query = LabSiemFiles(lab.ssh_argv(lab.spec.siem.name))
                if objects is None:
                    pairs = [(o.name, o.circuit) for o in lab.spec.objects]
        sources = sources_from_inventory(inventory, pairs)
        report = check_delivery(sources, query, timeout=timeout)
    except MsibError as exc:
        raise _fail(exc) from None
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


# --- contain --------------------------------------------------------------------------------------


@app.command("contain")
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


# --- entry point ----------------------------------------------------------------------------------


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
