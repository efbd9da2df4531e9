"""A vty session of the device simulator: modes, prompts, and what each entered line does (no I/O)."""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from msib.lab.devsim.device import TYPE9, Ace, Device, Interface, LogHost, type9_hash, type9_verify
from msib.lab.devsim.parser import LEVELS, CliError, CommandTree, Handler, Node, ace_rest, ace_rest_noseq, ifname_rest

log = logging.getLogger("msib.devsim")

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
            if not TYPE9.match(str(tail[1])):
                raise CliError("message", text="% Invalid encrypted password\n")
            return str(tail[1])
        return type9_hash(str(tail[-1]))


def _build_trees() -> dict[Mode, CommandTree]:
    s = CliSession
    rest: dict[str, Callable[[list[str]], Any]] = {
        "ace": ace_rest, "ace-noseq": ace_rest_noseq, "ifname": ifname_rest}

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


def _copy_node(node: Node) -> Node:
    return Node({k: (tok, _copy_node(child)) for k, (tok, child) in node.children.items()}, node.handler)


TREES: dict[Mode, CommandTree] = _build_trees()
