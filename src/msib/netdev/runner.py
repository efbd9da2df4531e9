"""`msib device ...`'s runner: one netdev operation on every vendor firewall of an inventory, each on its own.

Everything that can be wrong with the input (inventory, --limit, credentials, trap level, a
circuit without collector) is found before the first connection (exit 2). Each device then runs
on its own: a device that fails (auth, host key, timeout, rejected line) is reported and the
others go on; the run exits 1 when any device failed or any check did not pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from msib import contract
from msib.errors import DeviceError, InputError
from msib.netdev import ioscfg
from msib.netdev.device import NetDevice
from msib.netdev.hostkeys import scan_host_key, trust_host_key
from msib.netdev.model import DEFAULT_BACKUP_DIR, DeviceCredentials, DeviceTarget, LoggingTarget, default_backup_dir
from msib.netdev.view import NetdevInventory

__all__ = ["ACTIONS", "Action", "DeviceOutcome", "DeviceRun", "RunOptions", "default_backup_dir", "run", "trust"]

Action = Literal["backup", "configure-logging", "check"]
ACTIONS: tuple[Action, ...] = ("backup", "configure-logging", "check")


@dataclass(frozen=True)
class DeviceOutcome:
    """What happened on one device."""

    device: str
    ok: bool
    summary: str
    result: Mapping[str, Any] | None = None
    error_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "ok": self.ok, "summary": self.summary,
                "result": dict(self.result) if self.result is not None else None, "error": self.error_type}


@dataclass(frozen=True)
class DeviceRun:
    """One action over the selected devices."""

    action: str
    outcomes: tuple[DeviceOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "ok": self.ok, "devices": [o.to_json() for o in self.outcomes]}


@dataclass(frozen=True)
class RunOptions:
    """Options shared by the device commands (validated by :func:`run`)."""

    limit: str | None = None
    backup_dir: Path = DEFAULT_BACKUP_DIR
    known_hosts: Path | None = None
    vault_file: Path | None = None
    vault_password_file: Path | None = None
    timeout: float = 20.0
    transport: Literal["udp", "tcp"] = "tcp"
    port: int = 514
    trap: str = ioscfg.DEFAULT_TRAP
    dry_run: bool = False


def run(inventory: Path, action: Action, opts: RunOptions, env: Mapping[str, str] | None = None) -> DeviceRun:
    """Run `action` on the inventory's vendor firewalls.

    Raises:
        InputError: unusable input, found before any device is contacted.
    """
    if action not in ACTIONS:
        raise InputError("action", f"unknown action {action!r}", fix=f"one of: {', '.join(ACTIONS)}")
    try:
        ioscfg.severity(opts.trap)
    except ValueError as exc:
        raise InputError("--trap", str(exc)) from None
    if not 1 <= opts.port <= 65535:
        raise InputError("--port", f"{opts.port} is out of range 1-65535")
    if opts.timeout <= 0:
        raise InputError("--timeout", "must be positive")
    inv = NetdevInventory.of(contract.load(inventory))
    devices = inv.select(opts.limit)
    if not devices:
        raise InputError(str(inventory / "hosts.yml"), "no vendor firewalls (group netdev) in the inventory")
    targets: dict[str, list[LoggingTarget]] = {}
    if action != "backup":
        targets = {d.name: inv.logging_targets(d, opts.transport, opts.port) for d in devices}
    creds = DeviceCredentials.resolve(opts.vault_file, opts.vault_password_file, env=env)
    known_hosts = opts.known_hosts or inv.known_hosts
    outcomes = [_one(d, action, creds, known_hosts, opts, targets.get(d.name, [])) for d in devices]
    return DeviceRun(action, tuple(outcomes))


def _one(target: DeviceTarget, action: Action, creds: DeviceCredentials, known_hosts: Path, opts: RunOptions,
         collectors: list[LoggingTarget]) -> DeviceOutcome:
    dev = NetDevice(target, creds, known_hosts=known_hosts, backup_dir=opts.backup_dir, timeout=opts.timeout)
    try:
        with dev:
            if action == "backup":
                b = dev.backup()
                return DeviceOutcome(target.name, True, f"{'written' if b.changed else 'unchanged'}: {b.path}",
                                     {"path": str(b.path), "changed": b.changed, "sha256": b.sha256})
            if action == "configure-logging":
                r = dev.configure_logging(collectors, trap=opts.trap, dry_run=opts.dry_run)
                if not r.changed:
                    summary = "ok (no change)"
                else:
                    verb = "would send" if r.dry_run else "sent and saved"
                    summary = f"{verb}: " + "; ".join(r.lines)
                return DeviceOutcome(target.name, True, summary, r.to_json())
            c = dev.check_logging(collectors, trap=opts.trap)
            summary = "pass: " + "; ".join(c.evidence) if c.passed else "FAIL: " + "; ".join(c.problems)
            return DeviceOutcome(target.name, c.passed, summary, c.to_json())
    except DeviceError as exc:
        return DeviceOutcome(target.name, False, str(exc), None, type(exc).__name__)


def trust(inventory: Path, name: str, fingerprint: str | None, known_hosts: Path | None = None,
          timeout: float = 10.0) -> DeviceOutcome:
    """First contact: show a device's host key fingerprint, and pin it when `fingerprint` matches.

    Raises:
        InputError: unknown device.
    """
    inv = NetdevInventory.of(contract.load(inventory))
    (device,) = inv.select(name) if "," not in name else (None,)
    if device is None:
        raise InputError("--limit", "trust takes exactly one device name")
    path = known_hosts or inv.known_hosts
    try:
        key = scan_host_key(device.host, device.port, timeout)
        if fingerprint is None:
            return DeviceOutcome(device.name, False,
                                 f"presents {key.key_type} {key.fingerprint}; nothing written. Check it on the "
                                 f"device's console, then run again with --fingerprint {key.fingerprint}",
                                 {"fingerprint": key.fingerprint, "pinned": False}, None)
        added = trust_host_key(path, key, fingerprint)
    except DeviceError as exc:
        return DeviceOutcome(device.name, False, str(exc), None, type(exc).__name__)
    return DeviceOutcome(device.name, True,
                         f"{'pinned' if added else 'already pinned'}: {key.fingerprint} in {path}",
                         {"fingerprint": key.fingerprint, "pinned": True, "known_hosts": str(path)})
