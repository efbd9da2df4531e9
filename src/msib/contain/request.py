"""What `msib contain` is asked (an address or network, a TTL) and what it never blocks, checked first."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from msib.errors import InputError, MsibError

IPv4Net = ipaddress.IPv4Network

#: the nftables table and set the firewall role declares for containment (roles/firewall/templates/ruleset.nft.j2):
#: a table of its own, never deleted by a ruleset change, so a block keeps its expiry
NFT_TABLE = ("inet", "msib_contain")
NFT_SET = "msib_blocked"
#: longest TTL accepted (a block is an emergency measure, not a policy)
MAX_TTL_S = 30 * 86400
DEFAULT_TTL = "1h"
#: a block already present is left alone when it expires at most this share of the TTL earlier
#: than requested (capped at GRACE_MAX_S): running the same command twice changes nothing
GRACE_SHARE = 0.1
GRACE_MAX_S = 300
#: ... and at least this much (nft reports whole seconds, and a run takes a moment)
GRACE_MIN_S = 2
SSH_TIMEOUT_S = 60.0
ENV_AUDIT = "MSIB_CONTAIN_AUDIT"

Platform = Literal["nftables", "cisco_ios"]
Action = Literal["block", "release", "expire", "refused"]
#: what happened on one firewall
Result = Literal["added", "extended", "present", "removed", "absent", "would-add", "would-extend",
                 "would-remove", "conflict", "error", "pending"]
CHANGED: frozenset[str] = frozenset({"added", "extended", "removed"})
FAILED: frozenset[str] = frozenset({"conflict", "error"})


class ContainRefused(InputError):
    """The address may not be blocked (it would cut the management path, the logs or an appliance)."""


class ContainError(MsibError):
    """A firewall could not be read or changed."""



_TTL_RE = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """A TTL such as ``90s``, ``30m``, ``1h``, ``1h30m``, ``2d`` (or plain seconds) in seconds.

    Raises:
        InputError: not a duration, zero, or longer than :data:`MAX_TTL_S`.
    """
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    elif value and _TTL_RE.sub("", value) == "":
        seconds = sum(int(n) * _UNIT_S[u] for n, u in _TTL_RE.findall(value))
    else:
        raise InputError("--ttl", f"{text!r} is not a duration", fix="give e.g. 90s, 30m, 1h, 1h30m, 2d")
    if seconds <= 0:
        raise InputError("--ttl", "must be longer than 0 s")
    if seconds > MAX_TTL_S:
        raise InputError("--ttl", f"{text} is longer than {MAX_TTL_S // 86400} days",
                         fix="containment is an emergency measure; make it permanent in the site plan instead")
    return seconds


def parse_target(text: str, option: str = "--ip") -> IPv4Net:
    """The IPv4 address or network to block (``A.B.C.D`` or ``A.B.C.D/NN`` without host bits).

    Only the canonical text is accepted: a block is an emergency act on a government network, so
    text that is not exactly what it names (spaces, a padded prefix length) is refused, not guessed.

    >>> parse_target(" 198.18.32.100")
    Traceback (most recent call last):
    msib.errors.InputError: --ip: ' 198.18.32.100' has white space around the address (give exactly 198.18.32.100)

    Raises:
        InputError: not an IPv4 address/network, not canonical, IPv6 (the set is ``ipv4_addr``),
            or host bits set.
    """
    bare = text.strip()
    try:
        net = ipaddress.ip_network(bare, strict=True)
    except ValueError as exc:
        raise InputError(option, f"{text!r} is not an address or network ({exc})",
                         fix="give A.B.C.D or A.B.C.D/NN with no host bits") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InputError(option, f"{bare} is IPv6; containment sets and ACLs are IPv4 only")
    canonical = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
    if bare != text:
        raise InputError(option, f"{text!r} has white space around the address", fix=f"give exactly {canonical}")
    if text not in (canonical, str(net)):
        raise InputError(option, f"{text!r} is not the canonical form of {canonical}",
                         fix=f"give exactly {canonical}")
    return net


@dataclass(frozen=True)
class Protected:
    """A network msib never blocks, and why."""

    network: IPv4Net
    what: str


#: always refused, whatever the inventory says
SPECIAL: tuple[Protected, ...] = (
    Protected(IPv4Net("0.0.0.0/32"), "the unspecified address"),
    Protected(IPv4Net("127.0.0.0/8"), "loopback"),
    Protected(IPv4Net("224.0.0.0/4"), "multicast"),
    Protected(IPv4Net("255.255.255.255/32"), "the broadcast address"),
)


def refusal(target: IPv4Net, protected: Sequence[Protected]) -> str | None:
    """Why blocking `target` is refused (it overlaps a protected network), or None when allowed.

    Overlap covers both ways: the target contains a protected address (``198.18.0.0/24`` holds
    the controller) or lies inside a protected network (one address of a controllers' /24).

    >>> refusal(IPv4Net("198.18.0.0/24"), [Protected(IPv4Net("198.18.0.1/32"), "the controller")])
    '198.18.0.0/24 contains 198.18.0.1/32 (the controller)'
    """
    for p in (*SPECIAL, *protected):
        if not target.overlaps(p.network):
            continue
        if target == p.network:
            return f"{target} is {p.what}"
        if p.network.subnet_of(target):
            return f"{target} contains {p.network} ({p.what})"
        return f"{target} lies in {p.network} ({p.what})"
    return None


def grace_s(ttl_s: int) -> int:
    """How much earlier than requested an existing block may expire and still count as present."""
    return min(GRACE_MAX_S, max(GRACE_MIN_S, int(ttl_s * GRACE_SHARE)))
