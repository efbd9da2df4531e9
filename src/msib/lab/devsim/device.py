"""The simulated device's state: its configuration as IOS prints it, its users and secrets (type 9)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

# --- Cisco type 9 secrets (scrypt, Cisco's base64 alphabet) ------------------------------------

_CISCO_B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_STD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_CISCO = str.maketrans(_STD_B64, _CISCO_B64)
TYPE9 = re.compile(r"^\$9\$([./0-9A-Za-z]{14})\$([./0-9A-Za-z]{43})$")


def type9_hash(secret: str, salt: str | None = None) -> str:
    """Hash `secret` the way IOS stores ``secret 9``: scrypt (N=16384, r=1, p=1) in Cisco base64."""
    salt = salt or "".join(secrets.choice(_CISCO_B64) for _ in range(14))
    digest = hashlib.scrypt(secret.encode(), salt=salt.encode(), n=16384, r=1, p=1, dklen=32)
    encoded = base64.b64encode(digest).decode().rstrip("=").translate(_TO_CISCO)
    return f"$9${salt}${encoded}"


def type9_verify(secret: str, stored: str) -> bool:
    """True when `secret` hashes to the stored type 9 value (constant-time compare)."""
    match = TYPE9.match(stored)
    if not match:
        return False
    return hmac.compare_digest(type9_hash(secret, match.group(1)), stored)



# --- the device's configuration -----------------------------------------------------------------


@dataclass
class Ace:
    """One entry of an extended ACL: sequence number and canonical text."""

    seq: int
    text: str

    def run_text(self) -> str:
        """As ``show running-config`` prints it (IOS pads ``deny`` to the width of ``permit``)."""
        action, _, rest = self.text.partition(" ")
        if action == "deny":
            return f"{self.seq} deny   {rest}"
        return f"{self.seq} {self.text}"


@dataclass
class Interface:
    name: str
    description: str | None = None
    address: tuple[str, str] | None = None
    acl_in: str | None = None
    acl_out: str | None = None
    shutdown: bool = True


@dataclass
class LogHost:
    address: str
    transport: Literal["udp", "tcp"] = "udp"
    port: int = 514

    def line(self) -> str:
        if self.transport == "udp" and self.port == 514:
            return f"logging host {self.address}"
        return f"logging host {self.address} transport {self.transport} port {self.port}"


def _ios_time(ts: float) -> str:
    t = time.gmtime(ts)
    return time.strftime("%H:%M:%S UTC %a %b ", t) + f"{t.tm_mday} {t.tm_year}"


@dataclass
class Device:
    """Everything the simulated device holds: running configuration, startup, credentials."""

    hostname: str = "Router"
    enable_secret: str | None = None
    users: dict[str, tuple[int, str]] = field(default_factory=dict)
    interfaces: dict[str, Interface] = field(default_factory=dict)
    acls: dict[str, list[Ace]] = field(default_factory=dict)
    log_hosts: list[LogHost] = field(default_factory=list)
    log_trap: str = "informational"
    startup: str | None = None
    startup_saved: tuple[float, str] | None = None
    last_change: tuple[float, str] | None = None
    booted: float = field(default_factory=time.time)
    on_running_change: Callable[[Device], None] | None = None
    on_startup_change: Callable[[Device], None] | None = None

    def changed(self, by: str) -> None:
        """Record a configuration change (time, user) and persist the running config."""
        self.last_change = (time.time(), by)
        if self.on_running_change:
            self.on_running_change(self)

    def body(self) -> str:
        """The configuration text from ``version`` to ``end`` (``\\n`` line ends)."""
        out = ["version 17.9", "service timestamps debug datetime msec",
               "service timestamps log datetime msec", "!", f"hostname {self.hostname}", "!",
               "boot-start-marker", "boot-end-marker", "!"]
        if self.enable_secret:
            out += [f"enable secret 9 {self.enable_secret}", "!"]
        for name, (priv, hashed) in self.users.items():
            out.append(f"username {name} privilege {priv} secret 9 {hashed}")
        if self.users:
            out.append("!")
        for itf in self.interfaces.values():
            out.append(f"interface {itf.name}")
            if itf.description:
                out.append(f" description {itf.description}")
            out.append(f" ip address {itf.address[0]} {itf.address[1]}" if itf.address else " no ip address")
            if itf.acl_in:
                out.append(f" ip access-group {itf.acl_in} in")
            if itf.acl_out:
                out.append(f" ip access-group {itf.acl_out} out")
            if itf.shutdown:
                out.append(" shutdown")
            out.append("!")
        out.append("ip ssh version 2")
        out.append("!")
        for name, entries in self.acls.items():
            out.append(f"ip access-list extended {name}")
            out += [f" {e.run_text()}" for e in entries]
        if self.acls:
            out.append("!")
        if self.log_trap != "informational":
            out.append(f"logging trap {self.log_trap}")
        out += [h.line() for h in self.log_hosts]
        if self.log_trap != "informational" or self.log_hosts:
            out.append("!")
        out += ["line vty 0 4", " login local", " transport input ssh", "!", "end"]
        return "\n".join(out) + "\n"

    def running_text(self) -> str:
        """The running config as stored in the state directory (with its change comment)."""
        head = ["!"]
        if self.last_change:
            head += [f"! Last configuration change at {_ios_time(self.last_change[0])} by {self.last_change[1]}",
                     "!"]
        return "\n".join(head) + "\n" + self.body()

    def show_running(self) -> str:
        text = self.running_text()
        return f"Building configuration...\n\nCurrent configuration : {len(text)} bytes\n{text}"

    def save(self, by: str) -> None:
        """``write memory``: the running config becomes the startup config."""
        now = time.time()
        self.startup_saved = (now, by)
        head = ["!"]
        if self.last_change:
            head.append(f"! Last configuration change at {_ios_time(self.last_change[0])} by {self.last_change[1]}")
        head += [f"! NVRAM config last updated at {_ios_time(now)} by {by}", "!"]
        self.startup = "\n".join(head) + "\n" + self.body()
        if self.on_startup_change:
            self.on_startup_change(self)

    def show_acls(self, name: str | None) -> str:
        out: list[str] = []
        for acl, entries in self.acls.items():
            if name is not None and acl != name:
                continue
            out.append(f"Extended IP access list {acl}")
            out += [f"    {e.seq} {e.text}" for e in entries]
        return "\n".join(out)

    def login_ok(self, username: str, password: str) -> bool:
        user = self.users.get(username)
        return user is not None and type9_verify(password, user[1])

    def privilege(self, username: str) -> int:
        user = self.users.get(username)
        return user[0] if user else 1
