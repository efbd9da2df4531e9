"""Checks on rendered configs, made on the controller before anything is sent to a host.

:func:`nft_management` refuses an nftables ruleset that would cut the management path: in every
chain hooked on ``input``, tcp/<ssh port> from every controller must be accepted before the first
``drop``/``reject`` rule, and before the chain's ``policy drop``.

Example:
    >>> nft_management("table inet t { chain i { type filter hook input priority 0; policy drop; } }",
    ...                ["198.18.0.1/32"], 22)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    msib.engines.guards.LockoutError: chain t/i: tcp/22 from 198.18.0.1/32 is not accepted before policy drop
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from msib.errors import MsibError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class LockoutError(MsibError):
    """A ruleset would cut the management path: refused before it is applied."""

    exit_code = 2


_HEADER = re.compile(r"\b(?:table|chain)\s+(?:(?:inet|ip|ip6|arp|bridge|netdev)\s+)?[\w-]+\s*\{")
_COMMENT = re.compile(r'comment\s+"[^"]*"|#.*$')


def _statements(text: str) -> list[str]:
    """The ruleset as statements: comments removed, one rule or declaration per item."""
    out: list[str] = []
    text = _HEADER.sub(lambda m: m.group(0) + "\n", text)
    for line in text.splitlines():
        line = _COMMENT.sub("", line).strip()
        for part in line.split(";"):
            part = part.strip()
            if part:
                out.append(part)
    return out


def _addresses(literal: str) -> list[IPNetwork]:
    words = re.findall(r"[0-9a-fA-F.:]+(?:/\d+)?", literal)
    nets: list[IPNetwork] = []
    for w in words:
        try:
            nets.append(ipaddress.ip_network(w, strict=False))
        except ValueError:
            continue
    return nets


def _named_sets(text: str) -> dict[str, list[IPNetwork]]:
    """Elements of every named set defined with `elements = { ... }`, by set name."""
    sets: dict[str, list[IPNetwork]] = {}
    for m in re.finditer(r"\bset\s+(\w+)\s*\{", text):
        body_start = m.end()
        depth, i = 1, body_start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[body_start:i - 1]
        em = re.search(r"elements\s*=\s*\{([^}]*)\}", body)
        sets[m.group(1)] = _addresses(em.group(1)) if em else []
    return sets


def _ports(rule: str) -> set[int] | None:
    m = re.search(r"tcp\s+dport\s+(\{[^}]*\}|\S+)", rule)
    if not m:
        return None
    return {int(p) for p in re.findall(r"\d+", m.group(1))}


def _saddr_covers(rule: str, controller: IPNetwork, sets: Mapping[str, list[IPNetwork]]) -> bool:
    m = re.search(r"ip6?\s+saddr\s+(!=\s*)?(\{[^}]*\}|@\w+|\S+)", rule)
    if not m:
        return True  # no source restriction
    if m.group(1):
        return False
    lit = m.group(2)
    nets = sets.get(lit[1:], []) if lit.startswith("@") else _addresses(lit)
    return any(controller.version == n.version and controller.subnet_of(n) for n in nets)  # type: ignore[arg-type]


def nft_management(text: str, controllers: Iterable[str], port: int) -> None:
    """Refuse a ruleset that does not accept tcp/`port` from every controller before any drop.

    Args:
        text: the whole rendered ruleset (``nft -f`` input).
        controllers: the networks msib connects from (``msib_controllers``).
        port: the SSH port msib connects to.

    Raises:
        LockoutError: naming the chain and the controller that would be cut off.
    """
    wanted = [ipaddress.ip_network(str(c), strict=False) for c in controllers]
    if not wanted:
        raise LockoutError("no controllers (msib_controllers is empty): the management path cannot be kept")
    sets = _named_sets(text)
    table = chain = "?"
    in_input = False
    covered: set[IPNetwork] = set()
    policy_drop = False

    def close() -> None:
        if in_input and policy_drop:
            missing = [c for c in wanted if c not in covered]
            if missing:
                raise LockoutError(f"chain {table}/{chain}: tcp/{port} from {missing[0]} is not accepted "
                                   "before policy drop")

    for st in _statements(text):
        head = re.match(r"(table|chain)\s+(?:(?:inet|ip|ip6|arp|bridge|netdev)\s+)?([\w-]+)\s*\{", st)
        if head:
            close()
            if head.group(1) == "table":
                table, in_input = head.group(2), False
            else:
                chain = head.group(2)
                in_input, covered, policy_drop = False, set(), False
            continue
        if st.startswith("type ") and re.search(r"\bhook\s+input\b", st):
            in_input = True
            continue
        if st.startswith("policy"):
            policy_drop = bool(re.search(r"policy\s+drop", st))
            continue
        if not in_input:
            continue
        verdict = re.search(r"\b(accept|drop|reject)\b", st)
        if not verdict:
            continue
        if verdict.group(1) == "accept":
            ports = _ports(st)
            if ports is not None and port in ports and "ct state" not in st:
                covered |= {c for c in wanted if _saddr_covers(st, c, sets)}
            continue
        missing = [c for c in wanted if c not in covered]
        if missing:
            raise LockoutError(f"chain {table}/{chain}: '{st}' drops before tcp/{port} from {missing[0]} "
                               "is accepted")
    close()


def check(name: str, text: str, ctx: Mapping[str, Any]) -> None:
    """Run the guard called `name` on rendered `text` with the render context `ctx`.

    Raises:
        LockoutError: the guard refuses the text.
        ValueError: unknown guard name.
    """
    if name != "nft_management":
        raise ValueError(f"unknown guard {name!r} (known: nft_management)")
    role_guard = ctx.get("firewall_guard", True)
    if role_guard is False:
        return
    port = ctx.get("msib_appliance", {}).get("port") or 22
    nft_management(text, ctx.get("msib_controllers", []), int(port))
