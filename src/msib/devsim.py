"""A Cisco IOS device simulator over SSH, standing in for a vendor firewall in tests and the lab.

It is **not** a Cisco device and does not forward packets: it speaks enough of the IOS CLI, over
a real SSH server (asyncssh), for netmiko's ``cisco_ios`` driver and for msib's netdev module:
password login, user EXEC ``>``, ``enable`` with an enable secret, ``terminal length/width``,
``configure terminal`` with the ``ip access-list extended`` and ``interface`` sub-modes,
``logging host``/``logging trap``, ``show running-config``/``show startup-config``/
``show ip access-lists``, ``write memory``/``copy running-config startup-config``, command
abbreviation, and the real IOS error strings (``% Invalid input detected at '^' marker.`` with its
caret line, ``% Incomplete command.``, ``% Ambiguous command:``). docs/devsim.md lists the rest.

State lives in one directory: the SSH host key (generated once, never shipped), the running and
the startup config as IOS text. The simulator boots by feeding the stored text through its own
configuration parser, as a device does with its startup-config.

Run (secrets come from the environment, never from argv)::

    MSIB_SIM_PASSWORD=... MSIB_SIM_ENABLE=... python -m msib.devsim --listen 127.0.0.1 --port 0 \\
        --state /tmp/fw1 --username msib --password-env MSIB_SIM_PASSWORD --enable-env MSIB_SIM_ENABLE

It prints one line ``devsim ready HOST PORT FINGERPRINT`` on stdout once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncssh

log = logging.getLogger("msib.devsim")

# --- Cisco type 9 secrets (scrypt, Cisco's base64 alphabet) ------------------------------------

_CISCO_B64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_STD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_CISCO = str.maketrans(_STD_B64, _CISCO_B64)
_TYPE9 = re.compile(r"^\$9\$([./0-9A-Za-z]{14})\$([./0-9A-Za-z]{43})$")


def type9_hash(secret: str, salt: str | None = None) -> str:
    """Hash `secret` the way IOS stores ``secret 9``: scrypt (N=16384, r=1, p=1) in Cisco base64."""
    salt = salt or "".join(secrets.choice(_CISCO_B64) for _ in range(14))
    digest = hashlib.scrypt(secret.encode(), salt=salt.encode(), n=16384, r=1, p=1, dklen=32)
    encoded = base64.b64encode(digest).decode().rstrip("=").translate(_TO_CISCO)
    return f"$9${salt}${encoded}"


def type9_verify(secret: str, stored: str) -> bool:
    """True when `secret` hashes to the stored type 9 value (constant-time compare)."""
    match = _TYPE9.match(stored)
    if not match:
        return False
    return hmac.compare_digest(type9_hash(secret, match.group(1)), stored)


# --- the parser: IOS-style command trees with abbreviation -------------------------------------


class CliError(Exception):
    """A command line the device refuses; `kind` decides the IOS text shown."""

    def __init__(self, kind: Literal["invalid", "incomplete", "ambiguous", "message"],
                 word: int = 0, text: str = "") -> None:
        super().__init__(kind, word, text)
        self.kind = kind
        self.word = word
        self.text = text


class _RestFail(Exception):
    def __init__(self, offset: int, kind: Literal["invalid", "incomplete", "ambiguous"]) -> None:
        super().__init__(offset, kind)
        self.offset = offset
        self.kind = kind


Handler = Callable[["CliSession", list[Any]], str | None]


@dataclass(frozen=True)
class _Kw:
    word: str


@dataclass(frozen=True)
class _Param:
    name: str
    accept: Callable[[str], Any]  # returns the value, or None when the word does not fit


@dataclass(frozen=True)
class _Rest:
    name: str
    parse: Callable[[list[str]], Any]  # consumes every remaining word or raises _RestFail


@dataclass
class _Node:
    children: dict[str, tuple[_Kw | _Param | _Rest, _Node]] = field(default_factory=dict)
    handler: Handler | None = None


def _ipv4(word: str) -> str | None:
    if not re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", word):
        return None
    try:
        return str(ipaddress.IPv4Address(word))
    except ValueError:
        return None


def _word(word: str) -> str:
    return word


def _int_range(lo: int, hi: int) -> Callable[[str], int | None]:
    def accept(word: str) -> int | None:
        if word.isdigit() and lo <= int(word) <= hi:
            return int(word)
        return None

    return accept


def _rest_line(words: list[str]) -> str:
    return " ".join(words)


LEVELS = ("emergencies", "alerts", "critical", "errors", "warnings", "notifications", "informational",
          "debugging")


class CommandTree:
    """Commands of one CLI mode, built from pattern strings such as ``logging host <ip>``.

    Pattern words: a keyword (matched by unique prefix), ``<ip>``, ``<word>``, ``<line>`` (the rest
    of the line), ``<lo-hi>`` (an integer range), ``<a|b>`` (one of several keywords), ``<level>``
    (a syslog level name or 0-7), or a named rest-parser given in `rest`.
    """

    def __init__(self, rest: dict[str, Callable[[list[str]], Any]] | None = None) -> None:
        self.root = _Node()
        self._rest = rest or {}

    def add(self, pattern: str, handler: Handler) -> None:
        """Add every expansion of `pattern` (choices multiply) with `handler`."""
        expansions: list[list[_Kw | _Param | _Rest]] = [[]]
        for word in pattern.split():
            options: list[_Kw | _Param | _Rest]
            if word == "<ip>":
                options = [_Param("ip", _ipv4)]
            elif word == "<word>":
                options = [_Param("word", _word)]
            elif word == "<line>":
                options = [_Rest("line", _rest_line)]
            elif word == "<level>":
                options = [*(_Kw(lv) for lv in LEVELS), _Param("0-7", _int_range(0, 7))]
            elif m := re.fullmatch(r"<(\d+)-(\d+)>", word):
                options = [_Param(word, _int_range(int(m.group(1)), int(m.group(2))))]
            elif word.startswith("<") and word[1:-1] in self._rest:
                options = [_Rest(word, self._rest[word[1:-1]])]
            elif word.startswith("<") and "|" in word:
                options = [_Kw(w) for w in word[1:-1].split("|")]
            else:
                options = [_Kw(word)]
            expansions = [[*e, o] for e in expansions for o in options]
        for tokens in expansions:
            node = self.root
            for tok in tokens:
                key = f"kw:{tok.word}" if isinstance(tok, _Kw) else f"p:{tok.name}"
                if key not in node.children:
                    node.children[key] = (tok, _Node())
                node = node.children[key][1]
            node.handler = handler

    def match(self, words: list[str]) -> tuple[Handler, list[Any]]:
        """Resolve `words` to a handler and the matched values, or raise :class:`CliError`."""
        alive: list[tuple[_Node, list[Any]]] = [(self.root, [])]
        rest_done: list[tuple[_Node, list[Any]]] = []
        fail: tuple[int, Literal["invalid", "incomplete", "ambiguous"]] = (0, "invalid")
        for i, word in enumerate(words):
            low = word.lower()
            kw_hits: dict[str, list[tuple[_Node, list[Any]]]] = {}
            nxt: list[tuple[_Node, list[Any]]] = []
            for node, vals in alive:
                for tok, child in node.children.values():
                    if isinstance(tok, _Kw):
                        if tok.word.lower().startswith(low):
                            kw_hits.setdefault(tok.word, []).append((child, [*vals, tok.word]))
                    elif isinstance(tok, _Param):
                        value = tok.accept(word)
                        if value is not None:
                            nxt.append((child, [*vals, value]))
                    else:
                        try:
                            value = tok.parse(words[i:])
                        except _RestFail as exc:
                            if i + exc.offset >= fail[0]:
                                fail = (i + exc.offset, exc.kind)
                        else:
                            if child.handler:
                                rest_done.append((child, [*vals, value]))
            exact = [k for k in kw_hits if k.lower() == low]
            if exact:
                nxt = kw_hits[exact[0]] + nxt
            elif len(kw_hits) == 1:
                nxt = next(iter(kw_hits.values())) + nxt
            elif len(kw_hits) > 1:
                raise CliError("ambiguous", i)
            if not nxt:
                if rest_done:
                    node, vals = rest_done[0]
                    assert node.handler is not None
                    return node.handler, vals
                if i >= fail[0]:
                    fail = (i, "invalid")
                raise CliError(fail[1], fail[0])
            alive = nxt
        for node, vals in alive:
            if node.handler:
                return node.handler, vals
        if rest_done:
            node, vals = rest_done[0]
            assert node.handler is not None
            return node.handler, vals
        raise CliError("incomplete", len(words))


def _prefix_kw(word: str, options: Sequence[str], at: int) -> str:
    """Resolve an abbreviated keyword inside a rest-parser (exact match wins)."""
    low = word.lower()
    if low in options:
        return low
    hits = [o for o in options if o.startswith(low)]
    if len(hits) == 1:
        return hits[0]
    raise _RestFail(at, "ambiguous" if hits else "invalid")


# --- access-control entries ---------------------------------------------------------------------

_PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ahp": 51, "eigrp": 88,
                  "ospf": 89, "pim": 103}
_PROTO_NAMES = {v: k for k, v in _PROTO_NUMBERS.items()}
_PORT_NAMES = {"ftp-data": 20, "ftp": 21, "telnet": 23, "smtp": 25, "domain": 53, "www": 80,
               "pop3": 110, "bgp": 179}
_PORT_BY_NUMBER = {v: k for k, v in _PORT_NAMES.items()}


def _ace_addr(words: list[str], i: int) -> tuple[str, int]:
    if i >= len(words):
        raise _RestFail(i, "incomplete")
    word = words[i]
    ip = _ipv4(word)
    if ip is None:
        kw = _prefix_kw(word, ("any", "host"), i)
        if kw == "any":
            return "any", i + 1
        if i + 1 >= len(words):
            raise _RestFail(i + 1, "incomplete")
        host = _ipv4(words[i + 1])
        if host is None:
            raise _RestFail(i + 1, "invalid")
        return f"host {host}", i + 2
    if i + 1 >= len(words):
        raise _RestFail(i + 1, "incomplete")
    wildcard = _ipv4(words[i + 1])
    if wildcard is None:
        raise _RestFail(i + 1, "invalid")
    wild = int(ipaddress.IPv4Address(wildcard))
    base = ipaddress.IPv4Address(int(ipaddress.IPv4Address(ip)) & ~wild & 0xFFFFFFFF)
    if wild == 0:
        return f"host {base}", i + 2
    if wild == 0xFFFFFFFF:
        return "any", i + 2
    return f"{base} {wildcard}", i + 2


def _ace_port(words: list[str], i: int) -> str:
    if i >= len(words):
        raise _RestFail(i, "incomplete")
    word = words[i].lower()
    if word.isdigit() and int(word) <= 65535:
        number = int(word)
    else:
        number = _PORT_NAMES[_prefix_kw(word, tuple(_PORT_NAMES), i)]
    return _PORT_BY_NUMBER.get(number, str(number))


def _ace_ports(words: list[str], i: int) -> tuple[str, int]:
    if i >= len(words) or _ipv4(words[i]) is not None:
        return "", i
    low = words[i].lower()
    if not any(op.startswith(low) for op in ("eq", "neq", "lt", "gt", "range")):
        return "", i
    op = _prefix_kw(low, ("eq", "neq", "lt", "gt", "range"), i)
    if op == "range":
        return f" range {_ace_port(words, i + 1)} {_ace_port(words, i + 2)}", i + 3
    return f" {op} {_ace_port(words, i + 1)}", i + 2


def parse_ace(words: list[str], *, with_seq: bool = True) -> tuple[int | None, str]:
    """Parse one extended ACL entry; return (sequence or None, canonical text as IOS shows it)."""
    i = 0
    seq: int | None = None
    if with_seq and words and words[0].isdigit():
        seq = int(words[0])
        if not 1 <= seq <= 2147483647:
            raise _RestFail(0, "invalid")
        i = 1
    if i >= len(words):
        raise _RestFail(i, "incomplete")
    action = _prefix_kw(words[i], ("permit", "deny", "remark"), i)
    i += 1
    if action == "remark":
        if i >= len(words):
            raise _RestFail(i, "incomplete")
        text = " ".join(words[i:])
        if len(text) > 100:
            raise _RestFail(i, "invalid")
        return seq, f"remark {text}"
    if i >= len(words):
        raise _RestFail(i, "incomplete")
    pword = words[i].lower()
    if pword.isdigit() and int(pword) <= 255:
        proto = _PROTO_NAMES.get(int(pword), pword)
    else:
        proto = _prefix_kw(pword, ("ip", *_PROTO_NUMBERS), i)
    i += 1
    src, i = _ace_addr(words, i)
    sports, dports = "", ""
    if proto in ("tcp", "udp"):
        sports, i = _ace_ports(words, i)
    dst, i = _ace_addr(words, i)
    if proto in ("tcp", "udp"):
        dports, i = _ace_ports(words, i)
    flags: list[str] = []
    options: tuple[str, ...] = ("log", "log-input", *(("established",) if proto == "tcp" else ()))
    while i < len(words):
        if not options:
            raise _RestFail(i, "invalid")
        flag = _prefix_kw(words[i], options, i)
        # `established` may be followed by a log keyword; nothing follows a log keyword
        options = ("log", "log-input") if flag == "established" else ()
        flags.append(flag)
        i += 1
    text = f"{action} {proto} {src}{sports} {dst}{dports}" + "".join(f" {f}" for f in flags)
    return seq, text


def _ace_rest(words: list[str]) -> tuple[int | None, str]:
    return parse_ace(words, with_seq=True)


def _ace_rest_noseq(words: list[str]) -> tuple[int | None, str]:
    return parse_ace(words, with_seq=False)


_IF_TYPES = ("GigabitEthernet", "Loopback")


def _ifname_rest(words: list[str]) -> str:
    joined = "".join(words)
    m = re.fullmatch(r"([A-Za-z-]+)(\d+(?:/\d+)*)", joined)
    if not m:
        raise _RestFail(0, "invalid" if joined else "incomplete")
    kind = _prefix_kw(m.group(1), tuple(t.lower() for t in _IF_TYPES), 0)
    return next(t for t in _IF_TYPES if t.lower() == kind) + m.group(2)


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


# --- the CLI session ----------------------------------------------------------------------------

Mode = Literal["user", "exec", "config", "config-ext-nacl", "config-if", "config-line"]
_SUBMODES: tuple[Mode, ...] = ("config-ext-nacl", "config-if", "config-line")
_SECRET_LINE = re.compile(r"^(\s*(?:enable\s+secret|username\s+\S+.*?\bsecret)\s+(?:\d\s+)?)\S+", re.I)


def mask_secret_line(line: str) -> str:
    """A command line with its secret replaced, for logs."""
    return _SECRET_LINE.sub(r"\1*****", line)


@dataclass
class Reply:
    """What the device prints after a line, and whether the session ends."""

    text: str = ""
    close: bool = False


class CliSession:
    """One vty session: mode, prompt, and the handling of each entered line (no I/O here)."""

    def __init__(self, device: Device, user: str, *, privilege: int = 1, peer: str = "") -> None:
        self.dev = device
        self.user = user
        self.peer = peer
        self.mode: Mode = "exec" if privilege >= 15 else "user"
        self.acl: str | None = None
        self.iface: str | None = None
        self.pending: Literal["enable", "copy"] | None = None
        self.enable_tries = 0

    @property
    def echo(self) -> bool:
        """False while the device reads a password."""
        return self.pending != "enable"

    def prompt(self) -> str:
        if self.pending == "enable":
            return "Password: "
        if self.pending == "copy":
            return "Destination filename [startup-config]? "
        if self.mode == "user":
            return f"{self.dev.hostname}>"
        if self.mode == "exec":
            return f"{self.dev.hostname}#"
        return f"{self.dev.hostname[:20]}({self.mode})#"

    # .. line handling ..

    def handle(self, line: str) -> Reply:
        """Process one entered line (without its line end) and return what to print."""
        if self.pending == "enable":
            return self._enable_password(line)
        if self.pending == "copy":
            self.pending = None
            if line.strip() in ("", "startup-config", "nvram:startup-config"):
                self.dev.save(self.user)
                return Reply("Building configuration...\n[OK]")
            return Reply(f"%Error opening {line.strip()} (Permission denied)")
        stripped = line.strip()
        if not stripped or stripped.startswith("!"):
            return Reply()
        prompt_len = len(self.prompt())
        if self.mode not in ("user", "exec"):
            do = re.match(r"^(\s*do\s+)(\S.*)$", line, re.I)
            if do:
                return self._run(do.group(2), line, prompt_len + len(do.group(1)), "exec")
        return self._run(line, line, prompt_len, self.mode)

    def _run(self, line: str, shown: str, column0: int, mode: Mode) -> Reply:
        spans = [(m.start(), m.group()) for m in re.finditer(r"\S+", line)]
        words = [w for _, w in spans]
        try:
            handler, values = self._resolve(words, mode)
            text = handler(self, values)
        except CliError as exc:
            return Reply(self._error_text(exc, spans, shown, column0))
        if self.user != "boot" and (mode not in ("user", "exec") or words[0].lower().startswith("conf")):
            log.info("%s@%s: %s", self.user, self.peer, mask_secret_line(line.strip()))
        if text is None:
            return Reply()
        if text == "\x04close":
            return Reply(close=True)
        return Reply(text)

    def _resolve(self, words: list[str], mode: Mode) -> tuple[Handler, list[Any]]:
        tree = TREES[mode]
        try:
            return tree.match(words)
        except CliError as exc:
            if mode not in _SUBMODES:
                raise
            # IOS leaves a sub-mode by itself when the line is a global configuration command
            try:
                handler, values = TREES["config"].match(words)
            except CliError as parent:
                raise parent if parent.word > exc.word else exc from None
            self.mode, self.acl, self.iface = "config", None, None
            return handler, values

    def _error_text(self, exc: CliError, spans: list[tuple[int, str]], shown: str, column0: int) -> str:
        if exc.kind == "message":
            return exc.text
        if exc.kind == "incomplete":
            return "% Incomplete command.\n"
        if exc.kind == "ambiguous":
            return f'% Ambiguous command:  "{shown.strip()}"\n'
        col = spans[exc.word][0] if exc.word < len(spans) else (spans[-1][0] + len(spans[-1][1]) + 1 if spans else 0)
        if self.mode in ("user", "exec") and len(spans) == 1 and exc.word == 0:
            return "% Unknown command or computer name, or unable to find computer address\n"
        return " " * (column0 + col) + "^\n% Invalid input detected at '^' marker.\n"

    def _enable_password(self, line: str) -> Reply:
        if self.dev.enable_secret and type9_verify(line, self.dev.enable_secret):
            self.pending = None
            self.enable_tries = 0
            self.mode = "exec"
            log.info("%s@%s: enable", self.user, self.peer)
            return Reply()
        self.enable_tries += 1
        if self.enable_tries >= 3:
            self.pending = None
            self.enable_tries = 0
            log.warning("%s@%s: enable refused (bad secret)", self.user, self.peer)
            return Reply("% Bad secrets\n")
        return Reply()

    # .. command handlers (used by the trees below) ..

    def cmd_enable(self, _v: list[Any]) -> str | None:
        if self.mode == "exec":
            return None
        if not self.dev.enable_secret:
            return "% No password set"
        self.pending = "enable"
        return None

    def cmd_disable(self, _v: list[Any]) -> None:
        self.mode = "user"

    def cmd_exit(self, _v: list[Any]) -> str | None:
        if self.mode in ("user", "exec"):
            return "\x04close"
        if self.mode == "config":
            self.mode = "exec"
        else:
            self.mode, self.acl, self.iface = "config", None, None
        return None

    def cmd_end(self, _v: list[Any]) -> None:
        self.mode, self.acl, self.iface = "exec", None, None

    def cmd_configure(self, _v: list[Any]) -> str:
        self.mode = "config"
        return "Enter configuration commands, one per line.  End with CNTL/Z."

    def cmd_noop(self, _v: list[Any]) -> None:
        return None

    def cmd_show_run(self, _v: list[Any]) -> str:
        return self.dev.show_running()

    def cmd_show_start(self, _v: list[Any]) -> str:
        if self.dev.startup is None:
            return "startup-config is not present"
        return f"Using {len(self.dev.startup)} out of 262144 bytes\n{self.dev.startup}"

    def cmd_show_acl(self, v: list[Any]) -> str:
        return self.dev.show_acls(v[3] if len(v) > 3 else None)

    def cmd_show_version(self, _v: list[Any]) -> str:
        uptime = int((time.time() - self.dev.booted) // 60)
        return ("msib devsim: a simulated Cisco IOS XE CLI subset (a test stand-in, not a Cisco device)\n"
                "Cisco IOS Software [devsim], Version 17.9.4a, RELEASE SOFTWARE (emulated)\n\n"
                f"{self.dev.hostname} uptime is {uptime} minutes\n")

    def cmd_show_privilege(self, _v: list[Any]) -> str:
        return f"Current privilege level is {15 if self.mode != 'user' else 1}"

    def cmd_write(self, _v: list[Any]) -> str:
        self.dev.save(self.user)
        log.info("%s@%s: write memory", self.user, self.peer)
        return "Building configuration...\n[OK]"

    def cmd_copy(self, _v: list[Any]) -> None:
        self.pending = "copy"

    # configuration commands

    def cmd_hostname(self, v: list[Any]) -> None:
        name = str(v[1])
        if not re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", name):
            raise CliError("message", text="% Hostname contains one or more illegal characters.\n")
        self.dev.hostname = name
        self.dev.changed(self.user)

    def cmd_no_hostname(self, _v: list[Any]) -> None:
        self.dev.hostname = "Router"
        self.dev.changed(self.user)

    def cmd_logging_host(self, v: list[Any]) -> None:
        # logging host <ip> [transport <udp|tcp> [port <n>]]  |  logging <ip>
        address = v[2] if v[1] == "host" else v[1]
        rest = v[3:] if v[1] == "host" else v[2:]
        transport: Literal["udp", "tcp"] = "udp"
        port = 514
        if rest:
            transport = "tcp" if rest[1] == "tcp" else "udp"
            port = int(rest[3]) if len(rest) > 3 else (601 if transport == "tcp" else 514)
        entry = LogHost(address, transport, port)
        for i, h in enumerate(self.dev.log_hosts):
            if h.address == address:
                self.dev.log_hosts[i] = entry
                break
        else:
            self.dev.log_hosts.append(entry)
        self.dev.changed(self.user)

    def cmd_no_logging_host(self, v: list[Any]) -> None:
        address = v[3] if v[2] == "host" else v[2]
        rest = v[4:] if v[2] == "host" else v[3:]
        for h in list(self.dev.log_hosts):
            if h.address != address:
                continue
            if rest:
                transport = "tcp" if rest[1] == "tcp" else "udp"
                port = int(rest[3]) if len(rest) > 3 else (601 if transport == "tcp" else 514)
                if (h.transport, h.port) != (transport, port):
                    continue
            self.dev.log_hosts.remove(h)
            self.dev.changed(self.user)

    def cmd_logging_trap(self, v: list[Any]) -> None:
        level = v[2]
        self.dev.log_trap = LEVELS[level] if isinstance(level, int) else str(level)
        self.dev.changed(self.user)

    def cmd_no_logging_trap(self, _v: list[Any]) -> None:
        self.dev.log_trap = "informational"
        self.dev.changed(self.user)

    def cmd_acl(self, v: list[Any]) -> None:
        name = str(v[3])
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name):
            raise CliError("invalid", 3)
        if name not in self.dev.acls:
            self.dev.acls[name] = []
            self.dev.changed(self.user)
        self.mode, self.acl = "config-ext-nacl", name

    def cmd_no_acl(self, v: list[Any]) -> None:
        if self.dev.acls.pop(str(v[4]), None) is not None:
            self.dev.changed(self.user)

    def cmd_ace(self, v: list[Any]) -> None:
        assert self.acl is not None
        seq, text = v[0]
        entries = self.dev.acls[self.acl]
        if any(e.text == text for e in entries):
            return  # IOS ignores an entry that is already there
        if seq is None:
            seq = (max((e.seq for e in entries), default=0) // 10 + 1) * 10
        elif any(e.seq == seq for e in entries):
            raise CliError("message", text="% Duplicate sequence number\n")
        entries.append(Ace(seq, text))
        entries.sort(key=lambda e: e.seq)
        self.dev.changed(self.user)

    def cmd_no_ace_seq(self, v: list[Any]) -> None:
        assert self.acl is not None
        entries = self.dev.acls[self.acl]
        kept = [e for e in entries if e.seq != v[1]]
        if len(kept) != len(entries):
            self.dev.acls[self.acl] = kept
            self.dev.changed(self.user)

    def cmd_no_ace(self, v: list[Any]) -> None:
        assert self.acl is not None
        _seq, text = v[1]
        entries = self.dev.acls[self.acl]
        kept = [e for e in entries if e.text != text]
        if len(kept) != len(entries):
            self.dev.acls[self.acl] = kept
            self.dev.changed(self.user)

    def cmd_interface(self, v: list[Any]) -> None:
        name = str(v[1])
        if name not in self.dev.interfaces:
            if not name.startswith("Loopback"):
                raise CliError("invalid", 1)
            self.dev.interfaces[name] = Interface(name, shutdown=False)
            self.dev.changed(self.user)
        self.mode, self.iface = "config-if", name

    def cmd_no_interface(self, v: list[Any]) -> None:
        name = str(v[2])
        if not name.startswith("Loopback"):
            raise CliError("message", text="% Removal of physical interfaces is not permitted\n")
        if self.dev.interfaces.pop(name, None) is not None:
            self.dev.changed(self.user)

    def _itf(self) -> Interface:
        assert self.iface is not None
        return self.dev.interfaces[self.iface]

    def cmd_if_description(self, v: list[Any]) -> None:
        self._itf().description = str(v[1])
        self.dev.changed(self.user)

    def cmd_if_no_description(self, _v: list[Any]) -> None:
        self._itf().description = None
        self.dev.changed(self.user)

    def cmd_if_address(self, v: list[Any]) -> None:
        mask = str(v[3])
        inverse = ~int(ipaddress.IPv4Address(mask)) & 0xFFFFFFFF
        if inverse & (inverse + 1):
            raise CliError("message",
                           text=f"% Bad mask 0x{int(ipaddress.IPv4Address(mask)):X} for address {v[2]}\n")
        self._itf().address = (str(v[2]), mask)
        self.dev.changed(self.user)

    def cmd_if_no_address(self, _v: list[Any]) -> None:
        self._itf().address = None
        self.dev.changed(self.user)

    def cmd_if_access_group(self, v: list[Any]) -> None:
        itf = self._itf()
        if v[3] == "in":
            itf.acl_in = str(v[2])
        else:
            itf.acl_out = str(v[2])
        self.dev.changed(self.user)

    def cmd_if_no_access_group(self, v: list[Any]) -> None:
        itf = self._itf()
        direction = v[-1]
        name = v[3] if len(v) == 5 else None
        current = itf.acl_in if direction == "in" else itf.acl_out
        if current is None or (name is not None and name != current):
            return
        if direction == "in":
            itf.acl_in = None
        else:
            itf.acl_out = None
        self.dev.changed(self.user)

    def cmd_if_shutdown(self, _v: list[Any]) -> None:
        self._itf().shutdown = True
        self.dev.changed(self.user)

    def cmd_if_no_shutdown(self, _v: list[Any]) -> None:
        self._itf().shutdown = False
        self.dev.changed(self.user)

    def cmd_enable_secret(self, v: list[Any]) -> None:
        self.dev.enable_secret = self._secret_value(v[2:])
        self.dev.changed(self.user)

    def cmd_username(self, v: list[Any]) -> None:
        name = str(v[1])
        priv = int(v[3]) if v[2] == "privilege" else 1
        tail = v[5:] if v[2] == "privilege" else v[3:]
        self.dev.users[name] = (priv, self._secret_value(tail))
        self.dev.changed(self.user)

    def cmd_no_username(self, v: list[Any]) -> None:
        if self.dev.users.pop(str(v[2]), None) is not None:
            self.dev.changed(self.user)

    @staticmethod
    def _secret_value(tail: list[Any]) -> str:
        if len(tail) == 2 and tail[0] not in (0, 9):
            raise CliError("message", text=f"% Secret type {tail[0]} is not supported; use 0 or 9\n")
        if len(tail) == 2 and tail[0] == 9:
            if not _TYPE9.match(str(tail[1])):
                raise CliError("message", text="% Invalid encrypted password\n")
            return str(tail[1])
        return type9_hash(str(tail[-1]))


def _build_trees() -> dict[Mode, CommandTree]:
    s = CliSession
    rest: dict[str, Callable[[list[str]], Any]] = {
        "ace": _ace_rest, "ace-noseq": _ace_rest_noseq, "ifname": _ifname_rest}

    user = CommandTree(rest)
    for t in (user,):
        t.add("enable", s.cmd_enable)
        t.add("exit", s.cmd_exit)
        t.add("logout", s.cmd_exit)
        t.add("terminal length <0-512>", s.cmd_noop)
        t.add("terminal width <0-512>", s.cmd_noop)
        t.add("terminal monitor", s.cmd_noop)
        t.add("show version", s.cmd_show_version)
        t.add("show privilege", s.cmd_show_privilege)
        t.add("show ip access-lists", s.cmd_show_acl)
        t.add("show ip access-lists <word>", s.cmd_show_acl)

    exec_ = CommandTree(rest)
    exec_.root = _copy_node(user.root)
    exec_.add("disable", s.cmd_disable)
    exec_.add("configure terminal", s.cmd_configure)
    exec_.add("show running-config", s.cmd_show_run)
    exec_.add("show startup-config", s.cmd_show_start)
    exec_.add("write", s.cmd_write)
    exec_.add("write memory", s.cmd_write)
    exec_.add("copy running-config startup-config", s.cmd_copy)

    config = CommandTree(rest)
    config.add("end", s.cmd_end)
    config.add("exit", s.cmd_exit)
    config.add("hostname <word>", s.cmd_hostname)
    config.add("no hostname", s.cmd_no_hostname)
    config.add("no hostname <word>", s.cmd_no_hostname)
    for head in ("logging host <ip>", "logging <ip>"):
        config.add(head, s.cmd_logging_host)
        config.add(f"{head} transport <udp|tcp>", s.cmd_logging_host)
        config.add(f"{head} transport <udp|tcp> port <1-65535>", s.cmd_logging_host)
        config.add(f"no {head}", s.cmd_no_logging_host)
        config.add(f"no {head} transport <udp|tcp>", s.cmd_no_logging_host)
        config.add(f"no {head} transport <udp|tcp> port <1-65535>", s.cmd_no_logging_host)
    config.add("logging trap <level>", s.cmd_logging_trap)
    config.add("no logging trap", s.cmd_no_logging_trap)
    config.add("no logging trap <level>", s.cmd_no_logging_trap)
    config.add("ip access-list extended <word>", s.cmd_acl)
    config.add("no ip access-list extended <word>", s.cmd_no_acl)
    config.add("interface <ifname>", s.cmd_interface)
    config.add("no interface <ifname>", s.cmd_no_interface)
    config.add("enable secret <word>", s.cmd_enable_secret)
    config.add("enable secret <0-9> <word>", s.cmd_enable_secret)
    for head in ("username <word> secret", "username <word> privilege <0-15> secret"):
        config.add(f"{head} <word>", s.cmd_username)
        config.add(f"{head} <0-9> <word>", s.cmd_username)
    config.add("no username <word>", s.cmd_no_username)
    # platform lines every config carries; accepted so that a stored config boots
    config.add("version <word>", s.cmd_noop)
    config.add("service timestamps <debug|log> datetime msec", s.cmd_noop)
    config.add("boot-start-marker", s.cmd_noop)
    config.add("boot-end-marker", s.cmd_noop)
    config.add("ip ssh version 2", s.cmd_noop)
    config.add("line vty <0-15> <0-15>", lambda ses, _v: _enter(ses, "config-line"))

    acl = CommandTree(rest)
    acl.add("<ace>", s.cmd_ace)
    acl.add("no <1-2147483647>", s.cmd_no_ace_seq)
    acl.add("no <ace-noseq>", s.cmd_no_ace)
    acl.add("end", s.cmd_end)
    acl.add("exit", s.cmd_exit)

    itf = CommandTree(rest)
    itf.add("description <line>", s.cmd_if_description)
    itf.add("no description", s.cmd_if_no_description)
    itf.add("no description <line>", s.cmd_if_no_description)
    itf.add("ip address <ip> <ip>", s.cmd_if_address)
    itf.add("no ip address", s.cmd_if_no_address)
    itf.add("no ip address <ip> <ip>", s.cmd_if_no_address)
    itf.add("ip access-group <word> <in|out>", s.cmd_if_access_group)
    itf.add("no ip access-group <in|out>", s.cmd_if_no_access_group)
    itf.add("no ip access-group <word> <in|out>", s.cmd_if_no_access_group)
    itf.add("shutdown", s.cmd_if_shutdown)
    itf.add("no shutdown", s.cmd_if_no_shutdown)
    itf.add("end", s.cmd_end)
    itf.add("exit", s.cmd_exit)

    line = CommandTree(rest)
    line.add("login local", s.cmd_noop)
    line.add("transport input ssh", s.cmd_noop)
    line.add("end", s.cmd_end)
    line.add("exit", s.cmd_exit)

    return {"user": user, "exec": exec_, "config": config, "config-ext-nacl": acl, "config-if": itf,
            "config-line": line}


def _enter(session: CliSession, mode: Mode) -> None:
    session.mode = mode


def _copy_node(node: _Node) -> _Node:
    return _Node({k: (tok, _copy_node(child)) for k, (tok, child) in node.children.items()}, node.handler)


TREES: dict[Mode, CommandTree] = _build_trees()


# --- state directory ----------------------------------------------------------------------------


def _atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
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


def load_config(device: Device, text: str, source: str) -> None:
    """Boot `device` from configuration text, line by line in configuration mode.

    Raises:
        ValueError: a line the device refuses (naming `source` and the line number).
    """
    session = CliSession(device, "boot", privilege=15)
    session.mode = "config"
    hook, device.on_running_change = device.on_running_change, None
    try:
        for number, raw in enumerate(text.splitlines(), 1):
            if raw.strip() == "end":
                break
            reply = session.handle(raw)
            if session.mode in ("user", "exec"):  # an `exit` in the text: stay in configuration
                session.mode = "config"
            if "%" in reply.text:
                raise ValueError(f"{source}:{number}: the device refuses {raw.strip()!r}: {reply.text.strip()}")
    finally:
        device.on_running_change = hook


class StateDir:
    """The simulator's state directory: host key, running-config, startup-config."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = path / "ssh_host_ed25519_key"
        self.pub = path / "ssh_host_ed25519_key.pub"
        self.running = path / "running-config"
        self.startup = path / "startup-config"

    def host_key(self) -> asyncssh.SSHKey:
        """The persisted host key, generated on first use (mode 0600)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.key.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment="msib-devsim")
            _atomic_write(self.key, key.export_private_key().decode())
            _atomic_write(self.pub, key.export_public_key().decode(), mode=0o644)
        return asyncssh.read_private_key(str(self.key))

    def boot(self, device: Device, *, reload: bool) -> None:
        """Load startup and running config; `reload` boots from startup as after a power cycle."""
        if self.startup.exists():
            device.startup = self.startup.read_text(encoding="utf-8")
        source = self.startup if reload or not self.running.exists() else self.running
        if source.exists():
            load_config(device, source.read_text(encoding="utf-8"), str(source))
            device.last_change = (source.stat().st_mtime, "boot")
        device.on_running_change = lambda d: _atomic_write(self.running, d.running_text())
        device.on_startup_change = lambda d: _atomic_write(self.startup, d.startup or "")


# --- SSH glue -----------------------------------------------------------------------------------


class _SshServer(asyncssh.SSHServer):
    def __init__(self, device: Device) -> None:
        self.device = device
        self.peer = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return False

    def validate_password(self, username: str, password: str) -> bool:
        ok = self.device.login_ok(username, password)
        if ok:
            log.info("login %s from %s", username, self.peer)
        else:
            log.warning("login refused for %r from %s", username, self.peer)
        return ok


async def _serve_session(device: Device, process: asyncssh.SSHServerProcess[str]) -> None:
    user = process.get_extra_info("username") or "?"
    peer = process.get_extra_info("peername")
    session = CliSession(device, user, privilege=device.privilege(user),
                         peer=str(peer[0]) if peer else "?")
    process.stdout.write("\r\n" + session.prompt())
    line = ""
    after_cr = False
    try:
        while True:
            try:
                data = await process.stdin.read(4096)
            except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            if not data:
                break
            out: list[str] = []
            for ch in data:
                if after_cr and ch == "\n":
                    after_cr = False
                    continue
                after_cr = ch == "\r"
                if ch in "\r\n" or (ch == "\x1a" and session.mode not in ("user", "exec")):
                    entered, line = ("end" if ch == "\x1a" else line), ""
                    if ch == "\x1a":
                        out.append("^Z")
                    reply = session.handle(entered)
                    out.append("\r\n")
                    if reply.text:
                        text = reply.text.replace("\n", "\r\n")
                        out.append(text if text.endswith("\r\n") else text + "\r\n")
                        if reply.text.startswith("%") or "\n%" in reply.text:
                            out.append("\r\n")
                    if reply.close:
                        process.stdout.write("".join(out))
                        process.exit(0)
                        return
                    out.append(session.prompt())
                elif ch in "\x08\x7f":
                    if line:
                        line = line[:-1]
                        if session.echo:
                            out.append("\x08 \x08")
                elif ch == "\x03":
                    line = ""
                    out.append("\r\n" + session.prompt())
                elif ch == "\t" or ch >= " ":
                    line += ch
                    if session.echo:
                        out.append(ch)
            if out:
                process.stdout.write("".join(out))
    except (BrokenPipeError, ConnectionError, asyncssh.Error):
        pass
    process.exit(0)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m msib.devsim",
                                description="A Cisco IOS device simulator over SSH (a test stand-in, not a device).")
    p.add_argument("--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (printed on stdout)")
    p.add_argument("--state", type=Path, required=True, help="state directory (host key, configs)")
    p.add_argument("--username", default="msib", help="login user (privilege 1)")
    p.add_argument("--password-env", required=True, metavar="VAR", help="environment variable holding the password")
    p.add_argument("--enable-env", required=True, metavar="VAR",
                   help="environment variable holding the enable secret")
    p.add_argument("--hostname", default="Router", help="hostname of a fresh device (a stored config wins)")
    p.add_argument("--interfaces", default="GigabitEthernet0/0,GigabitEthernet0/1,GigabitEthernet0/2",
                   help="comma-separated physical interfaces of a fresh device")
    p.add_argument("--reload", action="store_true", help="boot from startup-config (as after a power cycle)")
    p.add_argument("-v", "--verbose", action="store_true", help="log sessions and configuration commands")
    return p.parse_args(argv)


def build_device(args: argparse.Namespace, password: str, enable: str) -> Device:
    """A device as the state directory left it, with the login and enable secret from the environment."""
    device = Device(hostname=args.hostname)
    for name in filter(None, (n.strip() for n in args.interfaces.split(","))):
        device.interfaces[name] = Interface(name)
    state = StateDir(args.state)
    state.boot(device, reload=args.reload)
    changed = False
    user = device.users.get(args.username)
    if user is None or not type9_verify(password, user[1]):
        device.users[args.username] = (user[0] if user else 1, type9_hash(password))
        changed = True
    if not device.enable_secret or not type9_verify(enable, device.enable_secret):
        device.enable_secret = type9_hash(enable)
        changed = True
    if changed or not state.running.exists():
        device.changed("provisioning")
    return device


async def serve(args: argparse.Namespace, password: str, enable: str) -> None:
    """Run the simulator until SIGTERM/SIGINT."""
    state = StateDir(args.state)
    key = state.host_key()
    device = build_device(args, password, enable)
    server = await asyncssh.listen(
        args.listen, args.port, server_host_keys=[key], server_factory=lambda: _SshServer(device),
        process_factory=lambda proc: _serve_session(device, proc), line_editor=False, encoding="utf-8",
        allow_scp=False, sftp_factory=None, agent_forwarding=False, x11_forwarding=False,
        allow_pty=True, login_timeout=30,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"devsim ready {args.listen} {port} {key.get_fingerprint('sha256')}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m msib.devsim``; exit 2 on unusable arguments or state."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="devsim %(levelname)s %(message)s")
    secrets_: dict[str, str] = {}
    for var in (args.password_env, args.enable_env):
        value = os.environ.get(var)
        if not value:
            print(f"devsim: environment variable {var} is not set (it holds a secret)", file=sys.stderr)
            return 2
        secrets_[var] = value
    try:
        asyncio.run(serve(args, secrets_[args.password_env], secrets_[args.enable_env]))
    except (ValueError, OSError) as exc:
        print(f"devsim: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
