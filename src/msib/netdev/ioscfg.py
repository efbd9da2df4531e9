"""IOS configuration text → canonical form, and back to the commands that close a gap.

Pure functions, no I/O: what :mod:`msib.netdev` reads from a device (``show running-config``) and
what it would write compare in one canonical form, which is what makes a second run a no-op.

- :func:`clean_config`: the text kept as a backup (volatile header lines dropped, secrets masked).
- :func:`parse_tree`: top-level lines with their indented children, whitespace collapsed.
- :func:`logging_state`, :func:`acl_entries`: the parts msib manages, typed.
- :func:`revert_commands`: the commands that turn one configuration back into another.

Example:
    >>> tree = parse_tree("logging trap warnings\\nlogging host 10.0.0.5 transport tcp port 514\\n")
    >>> logging_state(tree).trap
    'warnings'
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from msib.netdev.masking import is_masked, mask_secrets

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Transport = Literal["udp", "tcp"]

#: syslog severities, lowest number = most severe (IOS `logging trap` names)
LEVELS: tuple[str, ...] = ("emergencies", "alerts", "critical", "errors", "warnings", "notifications",
                           "informational", "debugging")
DEFAULT_TRAP = "informational"

_VOLATILE = re.compile(
    r"^(?:Building configuration\.\.\.|Current configuration\s*:.*|Using \d+ out of \d+ bytes.*"
    r"|! Last configuration change at .*|! NVRAM config last updated at .*"
    r"|! No configuration change since last restart.*|startup-config is not present)\s*$"
)
def clean_config(text: str) -> str:
    """Normalise device output into the text kept as a backup: diffable and without secrets.

    Line ends become ``\\n``; the volatile header lines (``Building configuration...``, byte counts,
    change timestamps) are dropped; every secret :mod:`msib.netdev.masking` knows (passwords,
    keys, communities, pre-shared keys, SNMPv3 auth/priv...) is replaced by a marker; leading blank
    lines and trailing spaces go.

    Example:
        >>> clean_config("Building configuration...\\r\\n\\r\\nhostname r1 \\r\\nenable secret 9 $9$x\\r\\n")
        'hostname r1\\nenable secret 9 <masked by msib>\\n'
    """
    out: list[str] = []
    parent: str | None = None  # the block a line is in: some secrets depend on it (`key 7 ...`)
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        if _VOLATILE.match(line):
            continue
        if not out and not line:
            continue
        if line and not line[0].isspace():
            parent = line
        out.append(mask_secrets(line, parent))
    while out and not out[-1]:
        out.pop()
    # a lone "!" left at the top by the dropped timestamp comments
    while len(out) > 1 and out[0] == "!" and out[1] == "!":
        out.pop(0)
    return "\n".join(out) + "\n" if out else ""


@dataclass(frozen=True)
class Block:
    """One top-level configuration line and its indented sub-mode lines."""

    line: str
    children: tuple[str, ...] = ()


def _collapse(line: str) -> str:
    return " ".join(line.split())


def parse_tree(text: str) -> tuple[Block, ...]:
    """Parse configuration text into top-level blocks (``!``, ``end`` and volatile lines skipped).

    Whitespace inside a line is collapsed (IOS pads ``deny   ip``); deeper indentation is folded
    into the block's children. Secrets are masked, so two trees compare equal without them.

    Example:
        >>> parse_tree("ip access-list extended A\\n 10 deny   ip any any\\n!\\nend\\n")
        (Block(line='ip access-list extended A', children=('10 deny ip any any',)),)
    """
    blocks: list[Block] = []
    for raw in clean_config(text).split("\n"):
        if not raw.strip() or raw.strip().startswith("!"):
            continue
        if raw.strip() == "end" and not raw[0].isspace():
            break
        line = _collapse(raw)
        if raw[0].isspace() and blocks:
            last = blocks[-1]
            blocks[-1] = Block(last.line, (*last.children, line))
        else:
            blocks.append(Block(line))
    return tuple(blocks)


# --- logging ------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class LoggingHost:
    """One ``logging host`` entry: where the device sends syslog."""

    address: IPAddress
    transport: Transport = "udp"
    port: int = 514
    #: options msib does not manage (vrf, session-id, ...), kept verbatim
    extra: str = ""

    def line(self) -> str:
        """The configuration line, in the form IOS shows it (defaults left out)."""
        head = f"logging host ipv6 {self.address}" if self.address.version == 6 else f"logging host {self.address}"
        default = self.transport == "udp" and self.port == 514
        tail = "" if default else f" transport {self.transport} port {self.port}"
        return head + tail + (f" {self.extra}" if self.extra else "")


@dataclass(frozen=True)
class LoggingState:
    """What a device's configuration says about syslog."""

    hosts: tuple[LoggingHost, ...]
    trap: str = DEFAULT_TRAP
    #: the lines this state was read from, as evidence
    lines: tuple[str, ...] = ()

    def host(self, address: IPAddress) -> LoggingHost | None:
        """The entry for `address`, if any."""
        return next((h for h in self.hosts if h.address == address), None)


def parse_logging_host(line: str) -> LoggingHost | None:
    """Parse a ``logging host`` / ``logging A.B.C.D`` line; None when the line is not one.

    Example:
        >>> parse_logging_host("logging host 10.0.0.5 transport tcp")
        LoggingHost(address=IPv4Address('10.0.0.5'), transport='tcp', port=601, extra='')
    """
    words = line.split()
    if len(words) < 2 or words[0] != "logging":
        return None
    i = 1
    if words[i] == "host":
        i += 1
    if i < len(words) and words[i] == "ipv6":
        i += 1
    if i >= len(words):
        return None
    try:
        address = ipaddress.ip_address(words[i])
    except ValueError:
        return None
    i += 1
    transport: Transport = "udp"
    port: int | None = None
    extra: list[str] = []
    while i < len(words):
        if words[i] == "transport" and i + 1 < len(words) and words[i + 1] in ("udp", "tcp"):
            transport = "tcp" if words[i + 1] == "tcp" else "udp"
            i += 2
            if i + 1 < len(words) and words[i] == "port" and words[i + 1].isdigit():
                port = int(words[i + 1])
                i += 2
        else:
            extra.append(words[i])
            i += 1
    if port is None:
        port = 601 if transport == "tcp" else 514
    return LoggingHost(address, transport, port, " ".join(extra))


def _level_name(word: str) -> str:
    if word.isdigit() and int(word) < len(LEVELS):
        return LEVELS[int(word)]
    return word


def logging_state(tree: Sequence[Block]) -> LoggingState:
    """The syslog destinations and trap level of a parsed configuration.

    Example:
        >>> logging_state(parse_tree("logging 10.0.0.5\\n")).hosts[0].line()
        'logging host 10.0.0.5'
    """
    hosts: list[LoggingHost] = []
    trap = DEFAULT_TRAP
    lines: list[str] = []
    for block in tree:
        if block.line.startswith("logging trap "):
            trap = _level_name(block.line.split()[2])
            lines.append(block.line)
            continue
        host = parse_logging_host(block.line)
        if host is not None:
            hosts.append(host)
            lines.append(block.line)
    return LoggingState(tuple(hosts), trap, tuple(lines))


def severity(level: str) -> int:
    """The number of a syslog level name (``informational`` → 6); ValueError when unknown."""
    try:
        return LEVELS.index(level)
    except ValueError:
        raise ValueError(f"unknown syslog level {level!r}; one of {', '.join(LEVELS)}") from None


# --- access lists -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AclEntry:
    """One entry of an extended ACL as the running config shows it."""

    seq: int | None
    text: str

    def line(self) -> str:
        """The sub-mode line that creates this entry."""
        return f"{self.seq} {self.text}" if self.seq is not None else self.text


def acl_entries(tree: Sequence[Block], name: str) -> tuple[AclEntry, ...] | None:
    """The entries of the extended ACL `name`, or None when the ACL does not exist.

    Example:
        >>> acl_entries(parse_tree("ip access-list extended B\\n 10 deny   ip host 1.2.3.4 any\\n"), "B")
        (AclEntry(seq=10, text='deny ip host 1.2.3.4 any'),)
    """
    for block in tree:
        if block.line == f"ip access-list extended {name}":
            entries: list[AclEntry] = []
            for child in block.children:
                head, _, rest = child.partition(" ")
                if head.isdigit():
                    entries.append(AclEntry(int(head), rest))
                else:
                    entries.append(AclEntry(None, child))
            return tuple(entries)
    return None


def acl_bindings(tree: Sequence[Block], name: str) -> tuple[tuple[str, str], ...]:
    """The (interface, direction) pairs where ACL `name` is applied with ``ip access-group``."""
    out: list[tuple[str, str]] = []
    for block in tree:
        if not block.line.startswith("interface "):
            continue
        for child in block.children:
            words = child.split()
            if words[:2] == ["ip", "access-group"] and len(words) == 4 and words[2] == name:
                out.append((block.line.split(" ", 1)[1], words[3]))
    return tuple(out)


def network_spec(net: ipaddress.IPv4Network) -> str:
    """An IPv4 network as an IOS ACL address (``host A``, ``any`` or ``A wildcard``)."""
    if net.prefixlen == 32:
        return f"host {net.network_address}"
    if net.prefixlen == 0:
        return "any"
    return f"{net.network_address} {net.hostmask}"


def parse_network_spec(words: Sequence[str]) -> tuple[ipaddress.IPv4Network, int] | None:
    """Parse an ACL address at the start of `words`: the network and how many words it took."""
    if not words:
        return None
    try:
        if words[0] == "any":
            return ipaddress.IPv4Network("0.0.0.0/0"), 1
        if words[0] == "host" and len(words) > 1:
            return ipaddress.IPv4Network(f"{words[1]}/32"), 2
        if len(words) > 1:
            return ipaddress.IPv4Network(f"{words[0]}/{words[1]}"), 2
    except ValueError:
        return None
    return None


# --- revert -------------------------------------------------------------------------------------


def _negate(line: str) -> str | None:
    """The command that removes `line`; None for lines that are themselves a negation."""
    if line.startswith("no "):
        return None
    return f"no {line}"


def _negate_child(parent: str, child: str) -> str | None:
    head = child.split(" ", 1)[0]
    if parent.startswith("ip access-list ") and head.isdigit():
        return f"no {head}"
    return _negate(child)


def revert_commands(target: Sequence[Block], current: Sequence[Block]) -> list[str]:
    """The configuration commands that turn `current` back into `target` (e.g. a backup).

    Removals come first (lines only `current` has are negated with ``no``), then additions in
    `target` order; a sub-mode block present in both is entered and only its differing lines are
    changed (ACL entries are removed by sequence number, so order is restored exactly).
    Lines with masked secrets are never sent. Returns [] when the two are equal.

    Example:
        >>> revert_commands(parse_tree("logging host 10.0.0.5\\n"), parse_tree("logging host 10.0.0.9\\n"))
        ['no logging host 10.0.0.9', 'logging host 10.0.0.5']
    """
    tgt = {b.line: b for b in target}
    cur = {b.line: b for b in current}
    removals: list[str] = []
    edits: list[str] = []
    additions: list[str] = []
    for block in current:
        if block.line in tgt or is_masked(block.line):
            continue
        neg = _negate(block.line)
        if neg is not None:
            removals.append(neg)
    for block in target:
        if is_masked(block.line):
            continue
        if block.line not in cur:
            additions.append(block.line)
            additions += [f" {c}" for c in block.children if not is_masked(c)]
            continue
        now = cur[block.line]
        if now.children == block.children:
            continue
        change: list[str] = []
        for child in now.children:
            if child not in block.children and not is_masked(child):
                neg = _negate_child(block.line, child)
                if neg is not None:
                    change.append(f" {neg}")
        change += [f" {c}" for c in block.children if c not in now.children and not is_masked(c)]
        if change:
            edits += [block.line, *change]
    return removals + edits + additions
