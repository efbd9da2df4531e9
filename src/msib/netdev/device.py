"""A vendor firewall driven over SSH with netmiko: read, back up, change with revert, verify, save.

Every change follows one path: read ``show running-config`` → canonical state
(:mod:`msib.netdev.ioscfg`) → the missing lines only → back up the running config → send with
``error_pattern`` → verify → ``write memory`` only if something changed. A line the device rejects
stops the change; what was already applied is reverted from the backup (re-read, diffed, undone,
verified) and :class:`~msib.netdev.model.ConfigRejected` names the rejected line. Nothing is saved
before a change succeeded, so the startup-config still holds the last good configuration if even
the revert fails.

Host keys are always checked against the site's known_hosts (``ssh_strict=True``, no system host
keys); credentials are unmasked only inside :meth:`NetDevice.__enter__`.

Example:
    >>> target = DeviceTarget(name="fw-ext-1", host="198.18.47.1", site="lab")   # doctest: +SKIP
    >>> with NetDevice(target, DeviceCredentials.resolve(), known_hosts=Path("known_hosts"),
    ...                backup_dir=Path("backups")) as dev:                       # doctest: +SKIP
    ...     dev.configure_logging([LoggingTarget(ipaddress.ip_address("198.18.32.10"))])
    ChangeResult(device='fw-ext-1', action='configure-logging', changed=True, ...)
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from msib.errors import DeviceError, InputError
from msib.fsutil import atomic_write
from msib.netdev import ioscfg
from msib.netdev.lines import (
    block_lines,
    block_network,
    blocked_networks,
    check_acl,
    logging_lines,
    rejected_line,
    unblock_lines,
)
from msib.netdev.model import (
    CONTAIN_ACL,
    ENV_ENABLE,
    IOS_ERROR_PATTERN,
    BackupResult,
    ChangeResult,
    CheckResult,
    ConfigRejected,
    DeviceAuthError,
    DeviceCredentials,
    DeviceTarget,
    DeviceTimeout,
    DeviceUnreachable,
    HostKey,
    HostKeyMismatch,
    HostKeyUnknown,
    IPNetwork,
    LoggingTarget,
)

log = logging.getLogger("msib.netdev")
log.addHandler(logging.NullHandler())  # a library: the application decides where logs go


@dataclass
class NetDevice:
    """A vendor firewall driven over SSH; the constructor only stores settings, ``with`` connects.

    Args:
        target: the device (management address, port, platform, site code).
        credentials: login, password and enable secret (masked).
        known_hosts: the site's known_hosts file; the device's key must already be in it.
        backup_dir: backups go to ``backup_dir/<site>/<name>.cfg``.
        timeout: seconds for TCP connect, SSH banner, authentication and each command.

    Raises (on ``with``): :class:`HostKeyUnknown`, :class:`HostKeyMismatch`, :class:`DeviceAuthError`,
    :class:`DeviceTimeout`, :class:`DeviceUnreachable`.
    """

    target: DeviceTarget
    credentials: DeviceCredentials
    known_hosts: Path
    backup_dir: Path
    timeout: float = 20.0
    _conn: Any = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def backup_path(self) -> Path:
        """Where this device's running-config backup is kept."""
        return self.backup_dir / self.target.site / f"{self.target.name}.cfg"

    # .. connection ..

    def __enter__(self) -> Self:
        from netmiko import ConnectHandler

        if not self.known_hosts.is_file():
            raise HostKeyUnknown(f"{self.name}: no known_hosts file at {self.known_hosts} "
                                 f"(first contact: `msib device trust`)")
        params: dict[str, Any] = {
            "device_type": self.target.platform,
            "host": self.target.host,
            "port": self.target.port,
            "username": self.credentials.username,
            "password": self.credentials.password.unmask(),
            # given to netmiko although msib sends it itself: netmiko's log filter then masks it too
            "secret": self.credentials.enable.unmask() if self.credentials.enable else "",
            # strict host keys always: only the site's known_hosts, unknown keys refused
            "ssh_strict": True,
            "system_host_keys": False,
            "alt_host_keys": True,
            "alt_key_file": str(self.known_hosts),
            "use_keys": False,
            "allow_agent": False,
            "conn_timeout": self.timeout,
            "auth_timeout": self.timeout,
            "banner_timeout": self.timeout,
            "session_log": None,
        }
        log.info("%s: connecting to %s:%s as %s", self.name, self.target.host, self.target.port,
                 self.credentials.username)
        try:
            conn = ConnectHandler(**params)
        except Exception as exc:
            raise self._connect_error(exc) from exc
        finally:
            params.clear()
        self._conn = conn
        try:
            self._enable()
        except BaseException:
            self._disconnect()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._disconnect()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception as exc:  # the session is going away anyway
                log.debug("%s: disconnect: %s", self.name, exc)

    def _connect_error(self, exc: Exception) -> DeviceError:
        import paramiko
        from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

        where = f"{self.name} ({self.target.host}:{self.target.port})"
        cause = exc.__context__ or exc.__cause__
        if isinstance(exc, NetmikoAuthenticationException):
            return DeviceAuthError(f"{where}: login refused for user {self.credentials.username!r} "
                                   f"(check the device credentials)")
        if isinstance(cause, paramiko.BadHostKeyException):
            got = HostKey(self.target.host, self.target.port, cause.key.get_name(), cause.key.get_base64())
            want = HostKey(self.target.host, self.target.port, cause.expected_key.get_name(),
                           cause.expected_key.get_base64())
            return HostKeyMismatch(f"{where}: HOST KEY MISMATCH: the device presented {got.fingerprint}, "
                                   f"{self.known_hosts} pins {want.fingerprint}; not connecting "
                                   f"(if the device was really replaced, re-trust it explicitly)")
        if isinstance(cause, paramiko.SSHException) and "not found in known_hosts" in str(cause):
            return HostKeyUnknown(f"{where}: the device's host key is not in {self.known_hosts}; not connecting "
                                  f"(first contact: `msib device trust`)")
        if isinstance(cause, paramiko.ssh_exception.NoValidConnectionsError):
            errors = list(cause.errors.values())
            if errors and all(isinstance(e, ConnectionRefusedError) for e in errors):
                return DeviceUnreachable(f"{where}: connection refused")
            return DeviceUnreachable(f"{where}: {cause}")
        if isinstance(cause, TimeoutError | socket.timeout):
            return DeviceTimeout(f"{where}: no answer within {self.timeout:g} s")
        if isinstance(cause, ConnectionRefusedError):
            return DeviceUnreachable(f"{where}: connection refused")
        if isinstance(cause, OSError):
            return DeviceUnreachable(f"{where}: {cause.strerror or cause}")
        if isinstance(cause, paramiko.SSHException):
            return DeviceTimeout(f"{where}: SSH failed: {cause}")
        if isinstance(exc, NetmikoTimeoutException):
            return DeviceTimeout(f"{where}: {str(exc).strip().splitlines()[0]}")
        return DeviceError(f"{where}: cannot connect: {type(exc).__name__}: {exc}")

    def _enable(self) -> None:
        """Enter privileged EXEC; fails fast on a wrong secret (IOS re-prompts three times)."""
        conn = self._conn
        prompt = conn.find_prompt()
        if prompt.endswith("#"):
            return
        if self.credentials.enable is None:
            raise DeviceAuthError(f"{self.name}: the login lands in user EXEC and no enable secret is set "
                                  f"({ENV_ENABLE})")
        answer = r"(?:[Pp]assword:\s*$|[>#]\s*$)"
        password_prompt = re.compile(r"[Pp]assword:\s*$", re.M)
        conn.write_channel("enable" + conn.RETURN)
        out = conn.read_until_pattern(pattern=answer, read_timeout=self.timeout, re_flags=re.M)
        if password_prompt.search(out):
            conn.write_channel(self.credentials.enable.unmask() + conn.RETURN)
            out = conn.read_until_pattern(pattern=answer, read_timeout=self.timeout, re_flags=re.M)
            # a wrong secret: IOS asks again (three tries in all); empty answers end it at once
            for _ in range(3):
                if not password_prompt.search(out):
                    break
                conn.write_channel(conn.RETURN)
                out = conn.read_until_pattern(pattern=answer, read_timeout=self.timeout, re_flags=re.M)
        if not conn.find_prompt().endswith("#"):
            raise DeviceAuthError(f"{self.name}: the enable secret was refused")
        conn.set_base_prompt()

    def _require(self) -> Any:
        if self._conn is None:
            raise DeviceError(f"{self.name}: not connected (use `with NetDevice(...) as dev:`)")
        return self._conn

    def _show(self, command: str) -> str:
        from netmiko.exceptions import ReadTimeout

        conn = self._require()
        try:
            out: str = conn.send_command(command, read_timeout=self.timeout)
        except ReadTimeout:
            raise DeviceTimeout(f"{self.name}: {command!r} did not finish within {self.timeout:g} s") from None
        if re.search(IOS_ERROR_PATTERN, out, re.M):
            raise DeviceError(f"{self.name}: {command!r} was refused: {out.strip().splitlines()[-1]}")
        return out

    # .. reading ..

    def running_config(self) -> str:
        """``show running-config`` as the device prints it."""
        return self._show("show running-config")

    def startup_config(self) -> str:
        """``show startup-config`` as the device prints it."""
        return self._show("show startup-config")

    def backup(self) -> BackupResult:
        """Back up the running config to :attr:`backup_path` (diffable text, secrets masked, atomic, 0600).

        The file is only rewritten when the configuration changed (its mtime says when it last did).
        A backup is the device's whole configuration, its topology and ACLs included: keep it like
        the credentials (0700 directories, 0600 files), never in a repository.
        """
        return self._write_backup(self.running_config())

    def _write_backup(self, running: str) -> BackupResult:
        text = ioscfg.clean_config(running)
        if not ioscfg.parse_tree(text):
            raise DeviceError(f"{self.name}: the running config read back is empty; no backup written")
        path = self.backup_path
        digest = hashlib.sha256(text.encode()).hexdigest()
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = None
        if old == text:
            return BackupResult(self.name, path, False, digest)
        for d in (self.backup_dir, path.parent):  # 0700: a backup says how the device is configured
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        atomic_write(path, text, mode=0o600, make_parents=False)
        log.info("%s: running config backed up to %s", self.name, path)
        return BackupResult(self.name, path, True, digest)

    # .. logging ..

    def configure_logging(self, targets: Sequence[LoggingTarget], *, trap: str = ioscfg.DEFAULT_TRAP,
                          dry_run: bool = False) -> ChangeResult:
        """Make the device send syslog to `targets` at `trap` level or more verbose.

        Other ``logging host`` entries are left alone. Converged → nothing sent, nothing saved.

        Raises:
            ValueError: an unknown `trap` level (before any I/O).
            ConfigRejected: the device refused a line (reverted from the backup).
        """
        ioscfg.severity(trap)
        if not targets:
            raise ValueError("configure_logging needs at least one collector")
        running = self.running_config()
        lines = logging_lines(running, targets, trap)

        def converged(text: str) -> bool:
            return not logging_lines(text, targets, trap)

        return self._change("configure-logging", running, lines, converged, dry_run=dry_run)

    def check_logging(self, targets: Sequence[LoggingTarget], *,
                      trap: str = ioscfg.DEFAULT_TRAP) -> CheckResult:
        """Check (read-only) that the device sends syslog to every target, and that it is saved.

        Evidence is the ``logging`` lines of the running config. Fails when a target is missing or
        differs (transport/port), when the trap level drops `trap`-level messages, or when the
        startup-config lacks what the running config has (lost on reload).
        """
        wanted = ioscfg.severity(trap)
        running = ioscfg.logging_state(ioscfg.parse_tree(self.running_config()))
        startup = ioscfg.logging_state(ioscfg.parse_tree(self.startup_config()))
        problems: list[str] = []
        for t in targets:
            want = t.host()
            have = running.host(t.address)
            if have is None:
                problems.append(f"no logging to {t.address} (want `{want.line()}`)")
            elif have != want:
                problems.append(f"logging to {t.address} is `{have.line()}`, want `{want.line()}`")
            elif startup.host(t.address) != want:
                problems.append(f"`{want.line()}` is not saved in startup-config (lost on reload)")
        if ioscfg.severity(running.trap) < wanted:
            problems.append(f"logging trap {running.trap} drops {trap} messages (want {trap} or more verbose)")
        evidence = running.lines or ("(no logging lines in running-config)",)
        return CheckResult(self.name, "logging", not problems, tuple(evidence), tuple(problems))

    # .. containment ..

    def blocks(self, acl: str = CONTAIN_ACL) -> tuple[ipaddress.IPv4Network, ...]:
        """The networks blocked in the containment ACL (a deny entry in either direction)."""
        return blocked_networks(self.running_config(), check_acl(acl))

    def acl_bindings(self, acl: str = CONTAIN_ACL) -> tuple[tuple[str, str], ...]:
        """The (interface, direction) pairs where the containment ACL is applied."""
        return ioscfg.acl_bindings(ioscfg.parse_tree(self.running_config()), check_acl(acl))

    def block(self, network: str | IPNetwork, *, acl: str = CONTAIN_ACL, dry_run: bool = False) -> ChangeResult:
        """Deny all IP traffic from and to `network` in the containment ACL (idempotent).

        The ACL is created if missing, with a final ``permit ip any any`` at
        :data:`CONTAIN_PERMIT_SEQ`; deny entries are numbered before it.

        Raises:
            InputError: `network` is not an IPv4 address/network (before any I/O).
            DeviceError: no free sequence number before the final permit.
        """
        net = block_network(network)
        acl = check_acl(acl)
        running = self.running_config()
        lines = block_lines(running, net, acl, device=self.name)

        def converged(text: str) -> bool:
            return not block_lines(text, net, acl, device=self.name)

        return self._change("block", running, lines, converged, dry_run=dry_run)

    def unblock(self, network: str | IPNetwork, *, acl: str = CONTAIN_ACL, dry_run: bool = False) -> ChangeResult:
        """Remove the deny entries of `network` from the containment ACL (idempotent)."""
        net = block_network(network)
        acl = check_acl(acl)
        running = self.running_config()
        lines = unblock_lines(running, net, acl)

        def converged(text: str) -> bool:
            return not unblock_lines(text, net, acl)

        return self._change("unblock", running, lines, converged, dry_run=dry_run)

    # .. the one change path ..

    def push(self, lines: Sequence[str], *, action: str = "push") -> ChangeResult:
        """Send configuration `lines` transactionally (backup, error_pattern, revert, save).

        For callers with their own desired-state logic; nothing is sent when `lines` is empty.
        """
        running = self.running_config()
        return self._change(action, running, list(lines), None)

    def restore(self, backup: Path | None = None) -> ChangeResult:
        """Bring the running config back to a backup file (default: this device's own) and save.

        Raises:
            InputError: the backup file cannot be read.
            DeviceError: the device still differs from the backup afterwards.
        """
        path = backup or self.backup_path
        try:
            wanted = ioscfg.parse_tree(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(str(path), f"cannot read the backup: {exc.strerror}") from None
        running = self.running_config()
        lines = ioscfg.revert_commands(wanted, ioscfg.parse_tree(running))

        def converged(text: str) -> bool:
            return ioscfg.parse_tree(text) == wanted

        before = self.backup_path.with_name(f"{self.name}.before-restore.cfg")
        return self._change("restore", running, lines, converged, restore_point=before)

    def _change(self, action: str, running: str, lines: list[str], converged: Callable[[str], bool] | None,
                *, dry_run: bool = False, restore_point: Path | None = None) -> ChangeResult:
        if not lines:
            log.info("%s: %s: already converged", self.name, action)
            return ChangeResult(self.name, action, False, dry_run=dry_run)
        if dry_run:
            return ChangeResult(self.name, action, True, tuple(lines), dry_run=True)
        if restore_point is None:
            backup: Path | None = self._write_backup(running).path
            restore_point = self.backup_path
        else:
            backup = None
            atomic_write(restore_point, ioscfg.clean_config(running), mode=0o600)
        self._send(lines, restore_point)
        after = self.running_config()
        if converged is not None and not converged(after):
            self._revert(restore_point, reason=f"{action} did not reach the desired state")
            raise DeviceError(f"{self.name}: {action}: the device accepted every line but its configuration "
                              f"does not show the result; reverted from {restore_point}")
        saved = self._save()
        log.info("%s: %s: %d line(s) applied and saved", self.name, action, len(lines))
        return ChangeResult(self.name, action, True, tuple(lines), saved=saved, backup=backup)

    def _send(self, lines: Sequence[str], restore_point: Path) -> None:
        from netmiko.exceptions import ConfigInvalidException, ReadTimeout

        conn = self._require()
        try:
            conn.send_config_set(list(lines), error_pattern=IOS_ERROR_PATTERN, read_timeout=self.timeout)
            conn.set_base_prompt()  # a `hostname` line changes the prompt
        except ConfigInvalidException as exc:
            rejected, output = rejected_line(str(exc), lines)
            log.warning("%s: the device rejected %r: %s", self.name, rejected, output)
            self._leave_config_mode()
            self._revert(restore_point, reason=f"rejected line {rejected!r}")
            raise ConfigRejected(
                f"{self.name}: the device rejected {rejected!r} ({output}); the change was reverted "
                f"from {restore_point}",
                line=rejected, output=output, backup=restore_point,
            ) from None
        except ReadTimeout:
            self._leave_config_mode()
            self._revert(restore_point, reason="a command timed out")
            raise DeviceTimeout(f"{self.name}: a configuration command timed out; the change was reverted "
                                f"from {restore_point}") from None

    def _leave_config_mode(self) -> None:
        conn = self._require()
        try:
            conn.exit_config_mode()
            conn.set_base_prompt()
        except Exception as exc:
            raise DeviceError(f"{self.name}: cannot leave configuration mode after a failed change ({exc}); "
                              f"startup-config is untouched (nothing was saved)") from None

    def _revert(self, backup: Path, *, reason: str) -> None:
        """Turn the running config back into `backup`, verify, and do not save."""
        from netmiko.exceptions import ConfigInvalidException, ReadTimeout

        wanted = ioscfg.parse_tree(backup.read_text(encoding="utf-8"))
        lines = ioscfg.revert_commands(wanted, ioscfg.parse_tree(self.running_config()))
        log.warning("%s: reverting (%s): %d line(s)", self.name, reason, len(lines))
        if lines:
            try:
                self._require().send_config_set(lines, error_pattern=IOS_ERROR_PATTERN,
                                                read_timeout=self.timeout)
                self._require().set_base_prompt()
            except (ConfigInvalidException, ReadTimeout) as exc:
                self._leave_config_mode()
                raise DeviceError(f"{self.name}: {reason}, and the REVERT FAILED ({exc}); the running config "
                                  f"differs from {backup}; startup-config is untouched (nothing was saved)") from None
        now = ioscfg.parse_tree(self.running_config())
        if now != wanted:
            left = ioscfg.revert_commands(wanted, now)
            raise DeviceError(f"{self.name}: {reason}, and the running config still differs from {backup} after "
                              f"the revert ({'; '.join(left[:5])}); startup-config is untouched")

    def _save(self) -> bool:
        out = str(self._require().save_config())
        if "[OK]" not in out:
            raise DeviceError(f"{self.name}: write memory did not confirm [OK]: {out.strip()[-200:]}")
        return True

