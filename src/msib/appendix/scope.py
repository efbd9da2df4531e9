"""Out of scope: masking excluded hostnames and IP addresses wherever they would appear inside other text.

An excluded object (the site plan's `excluded`, and every row linked to one: rules.py computes that
closure) appears in no output file. Its own row is reported as `excluded` with nothing that names
it; but its hostname or address may also be typed inside *other* cells: a rejected cell echoed in
the report (`10.20.99.14/24`, `10.20.99.14 (осн.)`, `secret-arm-1 (old)`), or the location, OS or
department of an accepted object. :class:`Masker` replaces each such mention by :data:`WITHHELD`.

What is masked, in any text:

* an IPv4 address (also zero-padded, or with commas for dots) that is an excluded object's address
  or lies in an excluded network; an IPv6 address that is an excluded object's or lies in an
  excluded network. Boundaries respect digits and dots: `10.20.99.14` is masked in
  `10.20.99.14/24` and `10.20.99.14 (осн.)`, never inside `10.20.99.140` or `110.20.99.14`;
* a name (letters, digits, `_`, `-`, `.`), case-insensitively, that is an excluded object's
  hostname, names the same host (`arm-1` and `arm-1.mcri.local`), or matches an excluded hostname
  pattern (on the full name or its first label);
* an excluded row's hostname cell that is not a valid name (`секрет 1`), as typed, with word
  boundaries.

Linear in the length of the text: one pass of one regex with bounded or possessive repetition,
and a set lookup per address or name found.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Final

#: What a withheld hostname or address is replaced by (documented in docs/inventory.md).
WITHHELD: Final = "[withheld]"

_V4: Final = r"(?<![0-9.,])[0-9]{1,3}(?:[.,][0-9]{1,3}){3}(?![0-9]|[.,][0-9])"
_V6: Final = (r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}+(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{1,4})?+"
              r"(?![0-9A-Za-z:.])")
_NAME: Final = r"(?<![A-Za-z0-9_.-])[A-Za-z0-9_][A-Za-z0-9_.-]*+"
_TOKENS: Final = re.compile(f"(?P<v4>{_V4})|(?P<v6>{_V6})|(?P<name>{_NAME})")
# a quick test before the tokens: could the text hold an address at all?
_ADDRESS_LIKE: Final = re.compile(r"[0-9]{1,3}[.,][0-9]{1,3}[.,][0-9]{1,3}[.,][0-9]|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:")


def _v4_value(token: str) -> int | None:
    parts = token.replace(",", ".").split(".")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        return None
    if len(numbers) != 4 or any(n > 255 for n in numbers):
        return None
    return int.from_bytes(bytes(numbers), "big")


class Masker:
    """Replaces excluded hostnames and addresses inside text by :data:`WITHHELD`.

    Args:
        ips: the excluded objects' addresses (canonical text, IPv4 or IPv6).
        hosts: the excluded objects' hostnames (folded: lower case; a valid name, or a hostname cell
            that is not one, as folded).
        networks: the excluded networks.
        host_match: whether a (lower-case) name matches an excluded hostname pattern.
        literals: what every name a pattern matches starts with (`kgs-` of `kgs-*`); an empty string
            when a pattern may match any name.
    """

    def __init__(self, ips: Iterable[str], hosts: Iterable[str],
                 networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
                 host_match: Callable[[str], bool] | None = None, literals: Sequence[str] = ()) -> None:
        self._v4: set[int] = set()
        self._v6: set[int] = set()
        for ip in ips:
            if ":" in ip:
                self._v6.add(int(ipaddress.IPv6Address(ip)))
            else:
                self._v4.add(int.from_bytes(socket.inet_aton(ip), "big"))
        self._nets4 = [(int(n.network_address), int(n.netmask)) for n in networks if n.version == 4]
        self._nets6 = [(int(n.network_address), int(n.netmask)) for n in networks if n.version == 6]
        names: set[str] = set()
        odd: set[str] = set()
        for host in hosts:
            if not host:
                continue
            if re.fullmatch(r"[a-z0-9_][a-z0-9_.-]*", host):
                names.add(host)
            else:  # a hostname cell that is not a name: masked as typed
                odd.add(host)
                first = host.split(None, 1)[0] if host.split() else ""
                if re.fullmatch(r"[a-z0-9_][a-z0-9_-]*(?:\.[a-z0-9_-]+)*", first) and len(first) >= 3:
                    names.add(first)
        self._names = names
        # `arm-1` names the same host as `arm-1.mcri.local`: a bare name masks the FQDNs it starts,
        # an FQDN masks its bare first label
        self._bare = {h for h in names if "." not in h} | {h.split(".", 1)[0] for h in names if "." in h}
        self._match = host_match
        self._odd = (re.compile("|".join(rf"(?<!\w){re.escape(o)}(?!\w)" for o in sorted(odd, key=len, reverse=True)),
                                re.IGNORECASE) if odd else None)
        literal_names = sorted({*names, *self._bare, *odd, *literals}, key=len, reverse=True)
        self._any_name = "" in literals  # a pattern without a literal start: every name is looked at
        self._quick = re.compile("|".join(re.escape(n) for n in literal_names), re.IGNORECASE) \
            if literal_names and not self._any_name else None
        self.active = bool(self._v4 or self._v6 or self._nets4 or self._nets6 or names or odd or host_match)

    # --- the tests for one token ----------------------------------------------------------------------

    def _v4_withheld(self, value: int) -> bool:
        return value in self._v4 or any(value & mask == net for net, mask in self._nets4)

    def _v6_withheld(self, token: str) -> bool:
        try:
            value = int(ipaddress.IPv6Address(token.split("%", 1)[0]))
        except ValueError:
            return False
        if value in self._v6 or any(value & mask == net for net, mask in self._nets6):
            return True
        mapped = ipaddress.IPv6Address(value).ipv4_mapped
        return mapped is not None and self._v4_withheld(int(mapped))

    def _name_withheld(self, name: str) -> bool:
        if name in self._names:
            return True
        label = name.split(".", 1)[0]
        if label in self._bare and ("." not in name or label in self._names):
            return True
        return self._match is not None and (self._match(name) or ("." in name and self._match(label)))

    def _replace(self, m: re.Match[str]) -> str:
        token = m.group()
        kind = m.lastgroup
        if kind == "v4":
            value = _v4_value(token)
            return WITHHELD if value is not None and self._v4_withheld(value) else token
        if kind == "v6":
            return WITHHELD if ":" in token and self._v6_withheld(token) else token
        core = token.rstrip(".-")
        if core and self._name_withheld(core.lower()):
            return WITHHELD + token[len(core):]
        return token

    # --- text -------------------------------------------------------------------------------------

    def could_hold(self, text: str) -> bool:
        """A quick test: False when `text` certainly names nothing excluded."""
        if self._any_name:
            return True
        if (self._nets4 or self._nets6 or self._v4 or self._v6) and _ADDRESS_LIKE.search(text):
            return True
        return self._quick is not None and self._quick.search(text) is not None

    def text(self, text: str) -> str:
        """`text` with every excluded hostname and address in it replaced by :data:`WITHHELD`."""
        if not self.active or not text or not self.could_hold(text):
            return text
        out = _TOKENS.sub(self._replace, text)
        if self._odd is not None:
            out = self._odd.sub(WITHHELD, out)
        return out

    def optional(self, text: str | None) -> str | None:
        """:meth:`text` of a value that may be None."""
        return None if text is None else self.text(text)

    def column(self, values: Sequence[str | None]) -> Sequence[str | None]:
        """:meth:`text` of every value of a column (each distinct value once; the column as it is when
        nothing in it could name an excluded object, the common case: one quick test of the whole)."""
        if not self.active or not values:
            return values
        distinct = {v for v in values if v}
        if not distinct or not self.could_hold("\n".join(distinct)):
            return values
        masked = {v: self.text(v) for v in distinct}
        if all(k == v for k, v in masked.items()):
            return values
        return [masked.get(v, v) if v else v for v in values]
