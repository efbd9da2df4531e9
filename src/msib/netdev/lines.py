"""Desired state → configuration lines of a vendor firewall (pure): logging targets, containment ACL entries."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from msib.errors import DeviceError, InputError
from msib.netdev import ioscfg
from msib.netdev.ioscfg import AclEntry
from msib.netdev.model import CONTAIN_ACL, CONTAIN_PERMIT, CONTAIN_PERMIT_SEQ, IPNetwork, LoggingTarget


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
    net = block_network(network)
    return _add_block_lines(device, acl, net, ioscfg.acl_entries(ioscfg.parse_tree(running), acl))


def unblock_lines(running: str, network: str | IPNetwork, acl: str = CONTAIN_ACL) -> list[str]:
    """The lines that remove `network`'s deny entries from `acl`; [] when there are none."""
    net = block_network(network)
    return _remove_block_lines(acl, net, ioscfg.acl_entries(ioscfg.parse_tree(running), acl))


def check_acl(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name):
        raise InputError("acl", f"{name!r} is not a usable ACL name", fix="letters, digits, _ . - (64 at most)")
    return name


def block_network(value: str | IPNetwork) -> ipaddress.IPv4Network:
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


def _add_block_lines(device: str, acl: str, net: ipaddress.IPv4Network,
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


def _remove_block_lines(acl: str, net: ipaddress.IPv4Network, entries: tuple[AclEntry, ...] | None) -> list[str]:
    """The lines that remove `net`'s deny entries from `acl`; [] when there are none."""
    texts = set(_block_texts(net))
    body = [f" no {e.seq}" if e.seq is not None else f" no {e.text}" for e in entries or () if e.text in texts]
    return [f"ip access-list extended {acl}", *body] if body else []


def rejected_line(message: str, lines: Sequence[str]) -> tuple[str, str]:
    """The rejected line and the device's error, from netmiko's ConfigInvalidException text."""
    m = re.search(r"at command: (.*), matched error: (.*)$", message, re.S)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    return (lines[-1].strip() if lines else "?"), message.strip()

