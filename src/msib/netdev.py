"""Vendor firewalls over SSH with netmiko: backup, logging to the collector, checks, containment.

For firewalls whose site-plan `platform` is a netmiko device_type (``cisco_ios`` today). Every
change follows one path: read ``show running-config`` → canonical state (:mod:`msib.ioscfg`) →
the missing lines only → back up the running config → send with ``error_pattern`` → verify →
``write memory`` only if something changed. A line the device rejects stops the change; what was
already applied is reverted from the backup (re-read, diffed, undone, verified) and
:class:`ConfigRejected` names the rejected line. Nothing is saved before a change succeeded, so
the startup-config still holds the last good configuration if even the revert fails.

Host keys are always checked against the site's known_hosts (``ssh_strict=True``, no system host
keys); an unknown key is refused, first contact is the explicit :func:`scan_host_key` +
:func:`trust_host_key` step. Credentials are :class:`~msib.secrets.Secret` values from the
environment or an ansible-vault file, unmasked only inside :meth:`NetDevice.__enter__`.

Example:
    >>> target = DeviceTarget(name="fw-ext-1", host="198.18.47.1", site="lab")   # doctest: +SKIP
    >>> with NetDevice(target, DeviceCredentials.resolve(), known_hosts=Path("known_hosts"),
    ...                backup_dir=Path("backups")) as dev:                       # doctest: +SKIP
    ...     dev.configure_logging([LoggingTarget(ipaddress.ip_address("198.18.32.10"))])
    ChangeResult(device='fw-ext-1', action='configure-logging', changed=True, ...)
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import os
import re
import shlex
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import yaml

from msib import ioscfg
from msib.errors import DeviceError, InputError
from msib.ioscfg import AclEntry, LoggingHost
from msib.secrets import Secret

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # a library: the application decides where logs go

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: netmiko device types this module drives (the simulator speaks cisco_ios)
SUPPORTED_PLATFORMS: tuple[str, ...] = ("cisco_ios",)
#: any line of device output starting with "%" is a refusal, except IOS syslog messages (%FAC-N-MNEMONIC:)
IOS_ERROR_PATTERN = r"^%(?![A-Z0-9_]+-\d-[A-Z0-9_]+:).*$"
#: the extended ACL msib owns for containment: deny entries first, one final permit
CONTAIN_ACL = "MSIB-CONTAIN"
#: sequence number of the containment ACL's final `permit ip any any`
CONTAIN_PERMIT_SEQ = 1000000
CONTAIN_PERMIT = "permit ip any any"

ENV_USERNAME = "MSIB_DEVICE_USERNAME"
ENV_PASSWORD = "MSIB_DEVICE_PASSWORD"
ENV_ENABLE = "MSIB_DEVICE_ENABLE"
ENV_VAULT_PASSWORD_FILE = "ANSIBLE_VAULT_PASSWORD_FILE"


# --- errors -------------------------------------------------------------------------------------


class DeviceAuthError(DeviceError):
    """The device refused the login or the enable secret."""


class HostKeyError(DeviceError):
    """The device's SSH host key could not be trusted; netmiko never logged in."""


class HostKeyUnknown(HostKeyError):
    """No key for the device in the site's known_hosts (first contact is an explicit step)."""


class HostKeyMismatch(HostKeyError):
    """The device presented a key other than the one pinned in known_hosts."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time (TCP, SSH banner, or a command)."""


class DeviceUnreachable(DeviceError):
    """Nothing accepts connections at the device's address and port."""


class ConfigRejected(DeviceError):
    """The device rejected a configuration line; the change was reverted from the backup."""

    def __init__(self, message: str, *, line: str, output: str, backup: Path | None) -> None:
        super().__init__(message)
        self.line = line
        self.output = output
        self.backup = backup


# --- settings and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceCredentials:
    """Login, password and enable secret of the vendor devices (secrets masked)."""

    username: str
    password: Secret
    enable: Secret | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeviceCredentials | None:
        """From MSIB_DEVICE_USERNAME / _PASSWORD / _ENABLE; None unless username and password are set."""
        env = os.environ if env is None else env
        user, password, enable = env.get(ENV_USERNAME), env.get(ENV_PASSWORD), env.get(ENV_ENABLE)
        if not user or not password:
            return None
        return cls(user, Secret(password), Secret(enable) if enable else None)

    @classmethod
    def from_vault(cls, vault_file: Path, password_file: Path) -> DeviceCredentials:
        """From an ansible-vault YAML file with msib_device_username/_password[/_enable].

        Raises:
            InputError: a file is unreadable, not a vault, the password is wrong, or a key is missing.
        """
        from ansible.errors import AnsibleError
        from ansible.parsing.vault import VaultLib, VaultSecret, is_encrypted

        try:
            vault_password = password_file.read_bytes().strip()
            data = vault_file.read_bytes()
        except OSError as exc:
            raise InputError(str(exc.filename), f"cannot read: {exc.strerror}") from None
        if not is_encrypted(data):
            raise InputError(str(vault_file), "not an ansible-vault file (secrets are never kept in plain text)",
                             fix="encrypt it with `ansible-vault encrypt`")
        try:
            plain = VaultLib([("default", VaultSecret(vault_password))]).decrypt(data)
        except AnsibleError:
            raise InputError(str(vault_file), "cannot decrypt the vault file",
                             fix="check the vault password file") from None
        try:
            values: Any = yaml.safe_load(plain)
        except yaml.YAMLError:
            values = None
        if not isinstance(values, dict):
            raise InputError(str(vault_file), "the decrypted vault is not a YAML mapping",
                             fix="store msib_device_username and msib_device_password in it")
        for key in ("msib_device_username", "msib_device_password"):
            if not isinstance(values.get(key), str) or not values[key]:
                raise InputError(str(vault_file), "missing or empty", where=key, fix="add it to the vault")
        enable = values.get("msib_device_enable")
        if enable is not None and not isinstance(enable, str):
            raise InputError(str(vault_file), "not a string", where="msib_device_enable")
        return cls(values["msib_device_username"], Secret(values["msib_device_password"]),
                   Secret(enable) if enable else None)

    @classmethod
    def resolve(cls, vault_file: Path | None = None, vault_password_file: Path | None = None,
                env: Mapping[str, str] | None = None) -> DeviceCredentials:
        """The vault file when one is given, else the environment.

        Raises:
            InputError: no credentials found, or the vault cannot be opened.
        """
        env = os.environ if env is None else env
        if vault_file is not None:
            pw_file = vault_password_file or (Path(env[ENV_VAULT_PASSWORD_FILE])
                                              if env.get(ENV_VAULT_PASSWORD_FILE) else None)
            if pw_file is None:
                raise InputError(str(vault_file), "no vault password file",
                                 fix=f"pass --vault-password-file or set {ENV_VAULT_PASSWORD_FILE}")
            return cls.from_vault(vault_file, pw_file)
        creds = cls.from_env(env)
        if creds is None:
            raise InputError("environment", "no device credentials",
                             fix=f"set {ENV_USERNAME}, {ENV_PASSWORD} (and {ENV_ENABLE}), or pass --vault-file")
        return creds


@dataclass(frozen=True)
class DeviceTarget:
    """One vendor firewall: where it is and what it speaks (the management address only)."""

    name: str
    host: str
    port: int = 22
    platform: str = "cisco_ios"
    site: str = "default"
    circuit: str | None = None

    def __post_init__(self) -> None:
        if self.platform not in SUPPORTED_PLATFORMS:
            raise InputError(self.name, f"platform {self.platform!r} is not supported",
                             fix=f"use one of: {', '.join(SUPPORTED_PLATFORMS)}")
        if not 1 <= self.port <= 65535:
            raise InputError(self.name, f"port {self.port} is out of range 1-65535")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", self.site):
            raise InputError(self.name, f"site code {self.site!r} is not usable as a directory name")


@dataclass(frozen=True)
class LoggingTarget:
    """A syslog destination the device must send to: a collector of its circuit."""

    address: IPAddress
    transport: Literal["udp", "tcp"] = "tcp"
    port: int = 514

    def host(self) -> LoggingHost:
        """The canonical ``logging host`` entry for this target."""
        return LoggingHost(self.address, self.transport, self.port)


@dataclass(frozen=True)
class BackupResult:
    """A running-config backup: where it is and whether it differs from the previous one."""

    device: str
    path: Path
    changed: bool
    sha256: str


@dataclass(frozen=True)
class ChangeResult:
    """The outcome of one desired-state operation on one device.

    `changed` is False when the device already matched (nothing sent, nothing saved);
    `lines` are the configuration lines sent (or, with `dry_run`, that would be sent).
    """

    device: str
    action: str
    changed: bool
    lines: tuple[str, ...] = ()
    saved: bool = False
    dry_run: bool = False
    backup: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "action": self.action, "changed": self.changed,
                "lines": list(self.lines), "saved": self.saved, "dry_run": self.dry_run,
                "backup": str(self.backup) if self.backup else None}


@dataclass(frozen=True)
class CheckResult:
    """A compliance check: passed or not, with the configuration lines that prove it."""

    device: str
    check: str
    passed: bool
    evidence: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "check": self.check, "passed": self.passed,
                "evidence": list(self.evidence), "problems": list(self.problems)}


@dataclass(frozen=True)
class HostKey:
    """An SSH host key as presented by a device."""

    host: str
    port: int
    key_type: str
    key_base64: str

    @property
    def fingerprint(self) -> str:
        """OpenSSH-style SHA256 fingerprint (``SHA256:...``)."""
        digest = hashlib.sha256(base64.b64decode(self.key_base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def known_hosts_line(self) -> str:
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {self.key_type} {self.key_base64}\n"


# --- the device ---------------------------------------------------------------------------------


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
        """Back up the running config to :attr:`backup_path` (diffable text, secrets masked, atomic).

        The file is only rewritten when the configuration changed, so a scheduler can commit the
        backup directory to git and see real changes only.
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
        _atomic_write(path, text)
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
        return blocked_networks(self.running_config(), _check_acl(acl))

    def acl_bindings(self, acl: str = CONTAIN_ACL) -> tuple[tuple[str, str], ...]:
        """The (interface, direction) pairs where the containment ACL is applied."""
        return ioscfg.acl_bindings(ioscfg.parse_tree(self.running_config()), _check_acl(acl))

    def block(self, network: str | IPNetwork, *, acl: str = CONTAIN_ACL, dry_run: bool = False) -> ChangeResult:
        """Deny all IP traffic from and to `network` in the containment ACL (idempotent).

        The ACL is created if missing, with a final ``permit ip any any`` at
        :data:`CONTAIN_PERMIT_SEQ`; deny entries are numbered before it.

        Raises:
            InputError: `network` is not an IPv4 address/network (before any I/O).
            DeviceError: no free sequence number before the final permit.
        """
        net = _block_network(network)
        acl = _check_acl(acl)
        running = self.running_config()
        lines = block_lines(running, net, acl, device=self.name)

        def converged(text: str) -> bool:
            return not block_lines(text, net, acl, device=self.name)

        return self._change("block", running, lines, converged, dry_run=dry_run)

    def unblock(self, network: str | IPNetwork, *, acl: str = CONTAIN_ACL, dry_run: bool = False) -> ChangeResult:
        """Remove the deny entries of `network` from the containment ACL (idempotent)."""
        net = _block_network(network)
        acl = _check_acl(acl)
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
            _atomic_write(restore_point, ioscfg.clean_config(running))
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
            rejected, output = _rejected(str(exc), lines)
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


# --- desired state → lines (pure) ---------------------------------------------------------------


def logging_lines(running: str, targets: Sequence[LoggingTarget], trap: str = ioscfg.DEFAULT_TRAP) -> list[str]:
    """The configuration lines a device with config `running` lacks to log to `targets` at `trap`.

    An entry for a target's address with another transport or port is replaced (IOS keeps one
    entry per address); a trap level at least as verbose as `trap` is left alone.

    Example:
        >>> logging_lines("logging host 10.0.0.5", [LoggingTarget(ipaddress.ip_address("10.0.0.5"))])
        ['logging host 10.0.0.5 transport tcp port 514']
    """
    wanted_level = ioscfg.severity(trap)
    state = ioscfg.logging_state(ioscfg.parse_tree(running))
    lines = [t.host().line() for t in targets if state.host(t.address) != t.host()]
    if ioscfg.severity(state.trap) < wanted_level:
        lines.append(f"logging trap {trap}")
    return lines


def blocked_networks(running: str, acl: str = CONTAIN_ACL) -> tuple[ipaddress.IPv4Network, ...]:
    """The networks with a deny entry (either direction) in containment ACL `acl` of `running`."""
    entries = ioscfg.acl_entries(ioscfg.parse_tree(running), acl) or ()
    return tuple(sorted({net for e in entries if (net := _blocked_network(e)) is not None}))


def block_lines(running: str, network: str | IPNetwork, acl: str = CONTAIN_ACL, *,
                device: str = "device") -> list[str]:
    """The lines that add `network`'s two deny entries (and the final permit) to `acl`; [] when present.

    Example:
        >>> block_lines("", "10.0.0.9")[1:3]
        [' 10 deny ip host 10.0.0.9 any log', ' 20 deny ip any host 10.0.0.9 log']
    """
    net = _block_network(network)
    return _block_lines(device, acl, net, ioscfg.acl_entries(ioscfg.parse_tree(running), acl))


def unblock_lines(running: str, network: str | IPNetwork, acl: str = CONTAIN_ACL) -> list[str]:
    """The lines that remove `network`'s deny entries from `acl`; [] when there are none."""
    net = _block_network(network)
    return _unblock_lines(acl, net, ioscfg.acl_entries(ioscfg.parse_tree(running), acl))


# --- containment helpers (pure) -----------------------------------------------------------------


def _check_acl(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name):
        raise InputError("acl", f"{name!r} is not a usable ACL name", fix="letters, digits, _ . - (64 at most)")
    return name


def _block_network(value: str | IPNetwork) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True) if isinstance(value, str) else value
    except ValueError as exc:
        raise InputError("address", f"{value!r} is not an address or network ({exc})",
                         fix="give A.B.C.D or A.B.C.D/NN with no host bits") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InputError("address", f"{value} is IPv6; the cisco_ios containment ACL is IPv4 only")
    if net.prefixlen == 0:
        raise InputError("address", "refusing to block 0.0.0.0/0 (everything)")
    return net


def _block_texts(net: ipaddress.IPv4Network) -> tuple[str, str]:
    spec = ioscfg.network_spec(net)
    return f"deny ip {spec} any log", f"deny ip any {spec} log"


def _blocked_network(entry: AclEntry) -> ipaddress.IPv4Network | None:
    words = entry.text.split()
    if words[:2] != ["deny", "ip"]:
        return None
    src = ioscfg.parse_network_spec(words[2:])
    if src is None:
        return None
    dst = ioscfg.parse_network_spec(words[2 + src[1]:])
    if dst is None:
        return None
    if dst[0].prefixlen == 0 and src[0].prefixlen:
        return src[0]
    if src[0].prefixlen == 0 and dst[0].prefixlen:
        return dst[0]
    return None


def _block_lines(device: str, acl: str, net: ipaddress.IPv4Network,
                 entries: tuple[AclEntry, ...] | None) -> list[str]:
    """The lines that add `net`'s deny entries (and the final permit) to `acl`; [] when present."""
    entries = entries or ()
    texts = {e.text for e in entries}
    permit = next((e for e in entries if e.text == CONTAIN_PERMIT), None)
    limit = permit.seq if permit is not None and permit.seq is not None else CONTAIN_PERMIT_SEQ
    missing = [t for t in _block_texts(net) if t not in texts]
    body: list[str] = []
    last = max((e.seq for e in entries if e.seq is not None and e.seq < limit), default=0)
    for text in missing:
        seq = (last // 10 + 1) * 10
        if seq >= limit:
            raise DeviceError(f"{device}: no free sequence number before {limit} in ACL {acl}; resequence it")
        body.append(f" {seq} {text}")
        last = seq
    if permit is None:
        body.append(f" {CONTAIN_PERMIT_SEQ} {CONTAIN_PERMIT}")
    return [f"ip access-list extended {acl}", *body] if body else []


def _unblock_lines(acl: str, net: ipaddress.IPv4Network, entries: tuple[AclEntry, ...] | None) -> list[str]:
    """The lines that remove `net`'s deny entries from `acl`; [] when there are none."""
    texts = set(_block_texts(net))
    body = [f" no {e.seq}" if e.seq is not None else f" no {e.text}" for e in entries or () if e.text in texts]
    return [f"ip access-list extended {acl}", *body] if body else []


def _rejected(message: str, lines: Sequence[str]) -> tuple[str, str]:
    """The rejected line and the device's error, from netmiko's ConfigInvalidException text."""
    m = re.search(r"at command: (.*), matched error: (.*)$", message, re.S)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    return (lines[-1].strip() if lines else "?"), message.strip()


# --- files --------------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str, mode: int = 0o640) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- first contact ------------------------------------------------------------------------------


def scan_host_key(host: str, port: int = 22, timeout: float = 10.0) -> HostKey:
    """Fetch the host key a device presents (no login). Trust it only after checking its fingerprint.

    Raises:
        DeviceUnreachable, DeviceTimeout: nothing answers, or no SSH.
    """
    import paramiko

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise DeviceTimeout(f"{host}:{port}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise DeviceUnreachable(f"{host}:{port}: {exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return HostKey(host, port, key.get_name(), key.get_base64())
    except paramiko.SSHException as exc:
        raise DeviceTimeout(f"{host}:{port}: SSH failed: {exc}") from None
    finally:
        transport.close()
        sock.close()


def trust_host_key(known_hosts: Path, key: HostKey, fingerprint: str) -> bool:
    """Pin `key` in `known_hosts` if it matches the `fingerprint` checked out of band.

    Returns True when the line was added, False when the same key was already pinned.

    Raises:
        HostKeyMismatch: `fingerprint` differs from the key, or another key is already pinned.
    """
    if fingerprint.strip() != key.fingerprint:
        raise HostKeyMismatch(f"{key.host}:{key.port} presents {key.fingerprint}, not the expected "
                              f"{fingerprint.strip()}; nothing written")
    import paramiko

    existing = paramiko.HostKeys()
    if known_hosts.exists():
        existing.load(str(known_hosts))
    name = key.host if key.port == 22 else f"[{key.host}]:{key.port}"
    pinned = existing.lookup(name)
    if pinned is not None and key.key_type in pinned:
        if pinned[key.key_type].get_base64() == key.key_base64:
            return False
        raise HostKeyMismatch(f"{name}: {known_hosts} already pins another {key.key_type} key; "
                              f"remove it by hand if the device was really replaced")
    old = known_hosts.read_text(encoding="utf-8") if known_hosts.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    _atomic_write(known_hosts, old + key.known_hosts_line(), mode=0o644)
    log.info("pinned %s %s in %s", name, key.fingerprint, known_hosts)
    return True


# --- inventory ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetdevInventory:
    """The vendor firewalls of one inventory directory, and where their circuits log to."""

    site: str
    devices: tuple[DeviceTarget, ...]
    collectors: Mapping[str, tuple[IPAddress, ...]]
    known_hosts: Path

    def select(self, limit: str | None) -> tuple[DeviceTarget, ...]:
        """The devices named by `limit` (comma-separated names), or all.

        Raises:
            InputError: a name in `limit` is not a netdev host of the inventory.
        """
        if not limit:
            return self.devices
        names = [n.strip() for n in limit.split(",") if n.strip()]
        known = {d.name: d for d in self.devices}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InputError("--limit", f"not a vendor firewall of the inventory: {', '.join(unknown)}",
                             fix=f"one of: {', '.join(known) or '(none)'}")
        return tuple(known[n] for n in names)

    def logging_targets(self, device: DeviceTarget, transport: Literal["udp", "tcp"] = "tcp",
                        port: int = 514) -> list[LoggingTarget]:
        """The collectors of the device's circuit as syslog targets.

        Raises:
            InputError: the circuit has no collector.
        """
        addresses = self.collectors.get(device.circuit or "", ())
        if not addresses:
            raise InputError("hosts.yml", f"circuit {device.circuit!r} of {device.name} has no collector",
                             where=f"all.vars.msib_circuits.{device.circuit}.collectors")
        return [LoggingTarget(a, transport, port) for a in addresses]


def _known_hosts_from(vars_: Mapping[str, Any], inventory_dir: Path) -> Path:
    ssh = vars_.get("msib_ssh")
    explicit = ssh.get("known_hosts_file") if isinstance(ssh, dict) else None
    if isinstance(explicit, str) and explicit:
        return (inventory_dir / explicit).resolve()
    args = vars_.get("ansible_ssh_common_args")
    if isinstance(args, str) and args:
        words = shlex.split(args)
        for i, w in enumerate(words):
            if w.startswith("-oUserKnownHostsFile=") or w.startswith("UserKnownHostsFile="):
                return Path(w.split("=", 1)[1]).expanduser()
            if w == "-o" and i + 1 < len(words) and words[i + 1].startswith("UserKnownHostsFile="):
                return Path(words[i + 1].split("=", 1)[1]).expanduser()
            if w == "-F" and i + 1 < len(words):
                found = _known_hosts_in_ssh_config(Path(words[i + 1]))
                if found:
                    return found
    return inventory_dir / "known_hosts"


def _known_hosts_in_ssh_config(path: Path) -> Path | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        words = line.strip().replace("=", " ").split()
        if len(words) >= 2 and words[0].lower() == "userknownhostsfile":
            return Path(words[1]).expanduser()
    return None


def load_inventory(inventory_dir: Path) -> NetdevInventory:
    """Read the vendor firewalls (group ``netdev``) of an inventory directory's hosts.yml.

    Per host: ``ansible_host`` (management address), ``ansible_port``, ``msib_device_type`` (or
    ``msib_appliance.platform``), ``msib_circuit``. The known_hosts file is ``msib_ssh.known_hosts_file``,
    else the ``UserKnownHostsFile`` of ``ansible_ssh_common_args`` (or of its ``-F`` ssh_config), else
    ``DIR/known_hosts``. Collectors: ``msib_circuits.<circuit>.collectors[].service_address``.

    Raises:
        InputError: naming hosts.yml and the key path when something is missing or malformed.
    """
    path = inventory_dir / "hosts.yml"
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(str(path), f"cannot read the inventory: {exc.strerror}",
                         fix="run `msib inventory build` first or check --inventory") from None
    except yaml.YAMLError:
        raise InputError(str(path), "not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise InputError(str(path), "no `all` group", fix="write it with `msib inventory build`")
    all_ = data["all"]
    vars_ = all_.get("vars") or {}
    if not isinstance(vars_, dict):
        raise InputError(str(path), "not a mapping", where="all.vars")
    site = str(vars_.get("msib_sb_code") or "default")
    circuits = vars_.get("msib_circuits") or {}
    collectors: dict[str, tuple[IPAddress, ...]] = {}
    if isinstance(circuits, dict):
        for cname, circuit in circuits.items():
            found: list[IPAddress] = []
            for i, col in enumerate((circuit or {}).get("collectors") or []):
                raw = (col or {}).get("service_address") or (col or {}).get("address")
                try:
                    found.append(ipaddress.ip_address(str(raw)))
                except ValueError:
                    raise InputError(str(path), f"{raw!r} is not an IP address",
                                     where=f"all.vars.msib_circuits.{cname}.collectors[{i}]") from None
            collectors[str(cname)] = tuple(found)
    group = ((all_.get("children") or {}).get("netdev") or {})
    hosts = (group.get("hosts") or {}) if isinstance(group, dict) else {}
    if not isinstance(hosts, dict):
        raise InputError(str(path), "not a mapping", where="all.children.netdev.hosts")
    devices: list[DeviceTarget] = []
    for name, hv in hosts.items():
        hv = hv or {}
        where = f"all.children.netdev.hosts.{name}"
        app = hv.get("msib_appliance") or {}
        host = hv.get("ansible_host") or app.get("address")
        if not host:
            raise InputError(str(path), "no ansible_host (management address)", where=where)
        platform = hv.get("msib_device_type") or app.get("platform")
        if not platform:
            raise InputError(str(path), "no platform (a netmiko device_type)", where=f"{where}.msib_device_type")
        try:
            port = int(hv.get("ansible_port") or app.get("port") or 22)
        except (TypeError, ValueError):
            raise InputError(str(path), "port is not a number", where=f"{where}.msib_appliance.port") from None
        try:
            devices.append(DeviceTarget(name=str(name), host=str(host), port=port, platform=str(platform),
                                        site=site, circuit=hv.get("msib_circuit")))
        except InputError as exc:
            raise InputError(str(path), exc.message, where=where, fix=exc.fix) from None
    return NetdevInventory(site, tuple(devices), collectors, _known_hosts_from(vars_, inventory_dir))
