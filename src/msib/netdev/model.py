"""What msib knows of a vendor firewall: its target, credentials, host key, results, and the errors it raises."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from msib import secrets
from msib.errors import DeviceError, InputError
from msib.netdev.ioscfg import LoggingHost
from msib.secrets import Secret

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
#: Where running-config backups go unless told (``$MSIB_BACKUP_DIR``): ``<dir>/<site>/<name>.cfg``.
DEFAULT_BACKUP_DIR = Path("backups")


def default_backup_dir() -> Path:
    """``$MSIB_BACKUP_DIR`` or ``./backups``."""
    return Path(os.environ.get("MSIB_BACKUP_DIR") or DEFAULT_BACKUP_DIR)

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
        values = secrets.read_vault(vault_file, password_file, ("msib_device_username", "msib_device_password"),
                                    optional=("msib_device_enable",))
        enable = values.get("msib_device_enable")
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
            return cls.from_vault(vault_file, secrets.vault_password_file(vault_file, vault_password_file, env))
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
