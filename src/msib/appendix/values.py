"""Value normalisation of appendix cells: cell text, IP addresses, network names, OS names (the OS table)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import compress, count, repeat
from operator import not_, rshift
from typing import Any, Final, Literal, NamedTuple, cast, get_args

from msib.errors import InputError

OsFamily = Literal["windows", "linux", "network", "other"]
OS_FAMILIES: Final[tuple[OsFamily, ...]] = get_args(OsFamily)


def column_letter(index: int) -> str:
    """Excel column letter of a 0-based column index (0 -> A, 27 -> AB)."""
    if index < 0:
        raise ValueError(f"negative column index {index}")
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


#: A cell as the readers give it: text, or (xlsx) a number, bool, date or time.
Cell = str | int | float | bool | dt.date | dt.datetime | dt.time | dt.timedelta | None


@dataclass(frozen=True, slots=True)
class OsInfo:
    """An OS as classified by the OS table (``msib/data/os_families.yml``)."""

    name: str | None  # the table's name ("Windows 10"), or the text as typed when unknown
    family: OsFamily
    eol_date: dt.date | None  # the vendor's last day of support, when known
    eol: bool | None  # past end of life on the `as_of` date; None when unknown


# --- text -------------------------------------------------------------------------------------------

_WS_RE: Final = re.compile(r"\s+")
_CYRILLIC_RE: Final = re.compile(r"[\u0400-\u04ff]")


def cell_text(value: object) -> str:
    """A cell as text: numbers stored as numbers lose a trailing `.0`, dates are ISO, empty is ``""``."""
    if value is None:
        return ""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _fold(text: str) -> str:
    """Lower case, `ё` as `е`, every run of whitespace (line breaks, NBSP) as one space."""
    return " ".join(text.replace("ё", "е").replace("Ё", "Е").split()).casefold()


def _rows_where(flags: Iterable[object]) -> list[int]:
    """The indexes of the true items of `flags` (at C speed)."""
    return list(compress(count(), flags))


# --- the OS table -----------------------------------------------------------------------------------

#: How much of an OS cell the table's patterns look at: an OS name is short, and the patterns (data,
#: not code) then run in bounded time whatever a cell holds.
OS_TEXT_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class OsEntry:
    """One system of the OS table."""

    name: str
    family: OsFamily
    patterns: tuple[re.Pattern[str], ...]
    eol: dt.date | Literal["none", "unknown"]
    examples: tuple[str, ...]


@dataclass(frozen=True)
class OsTable:
    """The OS table: systems tried in order, then per-family fallbacks."""

    systems: tuple[OsEntry, ...]
    families: tuple[tuple[OsFamily, tuple[re.Pattern[str], ...]], ...]

    def entry(self, text: str) -> OsEntry | None:
        """The first system whose pattern is found in the folded `text` (its first :data:`OS_TEXT_CHARS`)."""
        folded = _fold(text)[:OS_TEXT_CHARS].replace("_", " ")
        for entry in self.systems:
            if any(p.search(folded) for p in entry.patterns):
                return entry
        return None

    def family(self, text: str) -> OsFamily:
        """The family of `text` from the fallback patterns (`other` when none matches)."""
        folded = _fold(text)[:OS_TEXT_CHARS].replace("_", " ")
        for fam, patterns in self.families:
            if any(p.search(folded) for p in patterns):
                return fam
        return "other"


def parse_os_table(data: Any, file: str) -> OsTable:
    """Validate the parsed OS table.

    Raises:
        InputError: naming the entry and what is wrong.
    """
    if not isinstance(data, dict) or not isinstance(data.get("systems"), list):
        raise InputError(file, "the OS table is a mapping with `families` and a `systems` list")
    fams = data.get("families") or {}
    if not isinstance(fams, dict) or any(f not in OS_FAMILIES for f in fams):
        raise InputError(file, f"`families` keys must be among {', '.join(OS_FAMILIES)}", where="families")
    families: list[tuple[OsFamily, tuple[re.Pattern[str], ...]]] = []
    for fam in OS_FAMILIES:
        if fam in fams:
            try:
                families.append((fam, tuple(re.compile(p) for p in fams[fam])))
            except (re.error, TypeError) as exc:
                raise InputError(file, f"bad pattern ({exc})", where=f"families.{fam}") from None
    systems: list[OsEntry] = []
    for i, item in enumerate(data["systems"]):
        where = f"systems[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "family", "match", "eol", "examples"}:
            raise InputError(file, "an entry has name, family, match, eol and examples", where=where)
        if item.get("family") not in OS_FAMILIES:
            raise InputError(file, f"family must be one of {', '.join(OS_FAMILIES)}", where=where)
        eol = item.get("eol")
        if eol is None or not (isinstance(eol, dt.date) or eol in ("none", "unknown")):
            raise InputError(file, "eol is a date (YYYY-MM-DD), `none` or `unknown`", where=where)
        try:
            patterns = tuple(re.compile(p) for p in item["match"])
        except (re.error, TypeError, KeyError) as exc:
            raise InputError(file, f"bad match patterns ({exc})", where=where) from None
        systems.append(
            OsEntry(str(item["name"]), item["family"], patterns, eol, tuple(item.get("examples") or ()))
        )
    return OsTable(tuple(systems), tuple(families))


@cache
def os_table() -> OsTable:
    """The OS table shipped in the package (``msib/data/os_families.yml``)."""
    ref = resources.files("msib") / "data" / "os_families.yml"
    import yaml  # here: reading a workbook does not need it

    return parse_os_table(yaml.safe_load(ref.read_text(encoding="utf-8")), "msib/data/os_families.yml")


def classify_os(text: str | None, as_of: dt.date, table: OsTable | None = None) -> OsInfo:
    """Classify an OS name as typed in the appendix.

    Args:
        text: the OS cell (`Win 10 Корп.`, `Astra Linux SE 1.7`, ...); empty or None when not given.
        as_of: the day that decides what is past end of life.
        table: the OS table (default: the packaged one).

    Returns:
        The table's name, family, end-of-life date and whether it is past on `as_of`
        (None when the date is not known, or the OS is not in the table).

    Example:
        >>> classify_os("Win 7 Проф.", dt.date(2025, 1, 1)).eol
        True
    """
    table = table or os_table()
    if not text or not text.strip():
        return OsInfo(None, "other", None, None)
    entry = table.entry(text)
    if entry is None:
        return OsInfo(" ".join(text.split()), table.family(text), None, None)
    if entry.eol == "none":
        return OsInfo(entry.name, entry.family, None, False)
    if entry.eol == "unknown":
        return OsInfo(entry.name, entry.family, None, None)
    return OsInfo(entry.name, entry.family, entry.eol, as_of > entry.eol)


# --- normalising values -----------------------------------------------------------------------------

_IPV4_RE: Final = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4_RE: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_IP_SEP_RE: Final = re.compile(r"[.,]")
# an IPv4 address inside other text (digits and dots around it are not part of another number)
_IPV4_TOKEN_RE: Final = re.compile(r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9]|\.[0-9])")
_RANGE_DASHES: Final = "-\u2010\u2011\u2012\u2013\u2014\u2212"
_NETMASK_RE: Final = re.compile(r"255\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")

#: What a spreadsheet shows instead of a value when a formula fails (Excel, LibreOffice, Google Sheets).
FORMULA_ERRORS: Final = frozenset({
    "#null!", "#div/0!", "#value!", "#ref!", "#name?", "#num!", "#n/a", "#getting_data", "#spill!",
    "#calc!", "#field!", "#blocked!", "#connect!", "#busy!", "#unknown!", "#external!", "#python!",
    "err:502", "err:504", "err:508", "err:511", "err:522", "err:523", "#name!", "#error!",
})


def is_formula_error(value: object) -> bool:
    """Whether a cell holds a spreadsheet's error value (`#REF!`, `#N/A`, ...) instead of a value."""
    return type(value) is str and 3 <= len(value) <= 16 and value.strip().casefold() in FORMULA_ERRORS
_LABEL: Final = r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?"
_HOSTNAME_RE: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
# the common case only (no all-digit name, so never an IP address); anything else takes the slow check
_HOSTNAME_QUICK_RE: Final = re.compile(rf"(?![0-9.]*$){_LABEL}(?:\.{_LABEL})*")
_NOT_HOST_FIRST_OCTET: Final = frozenset({0, 127, *range(224, 256)})
# the same two checks for a whole column at once, each cell on a line of its own (see _lines_not_matching)
# (possessive `*+`: nothing follows, so nothing to give back, and much faster over long runs)
_CANONICAL_IPV4_LINES: Final = re.compile(rf"(?:{_OCTET}(?:\.{_OCTET}){{3}}\n)*+")
_HOSTNAME_QUICK_LINES: Final = re.compile(rf"(?:(?![0-9.]*\n){_LABEL}(?:\.{_LABEL})*\n)*+")
_INVISIBLE: Final = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


class IPValue(NamedTuple):
    """A normalised address: canonical text, integer value and version."""

    text: str
    value: int
    version: int


class IPError(ValueError):
    """An IP cell that is not one host address, with the reason code of the report (``outputs.md``):
    `invalid_ip`, `ip_range`, `ip_network`, `multiple_ips` or `formula_error`."""

    def __init__(self, message: str, reason: str = "invalid_ip") -> None:
        super().__init__(message)
        self.reason = reason


def _v4_host(value: int) -> None:
    first = value >> 24
    if first == 0 or first == 127 or first >= 224:
        raise IPError("not a host address (0.x, loopback, multicast or reserved)")


def _not_one_address(t: str) -> IPError:
    """Why `t` (stripped, not one address) is not: a formula error, a range, a network, several
    addresses, or just not an address. Linear in the length of `t`."""
    if is_formula_error(t):
        return IPError(f"the cell shows the spreadsheet error {t.strip()}, not an address", "formula_error")
    tokens = _IPV4_TOKEN_RE.findall(t) if len(t) <= 4096 else _IPV4_TOKEN_RE.findall(t[:4096])
    if tokens:
        first = t.find(tokens[0]) + len(tokens[0])
        rest = t[first:].lstrip()
        if rest[:1] == "/" and rest[1:3].strip().isdigit():
            return IPError(f"an address with a network prefix ({tokens[0]}{rest.split()[0]}), not one host address",
                           "ip_network")
        if len(tokens) == 2 and _NETMASK_RE.fullmatch(tokens[1]):
            return IPError(f"an address with a netmask ({tokens[1]}), not one host address", "ip_network")
        if rest[:1] and rest[0] in _RANGE_DASHES and (len(tokens) == 2 or rest[1:].strip()[:3].isdigit()):
            return IPError("a range of addresses, not one host address", "ip_range")
        if len(tokens) >= 2:
            return IPError(f"{len(tokens)} addresses in one cell", "multiple_ips")
        return IPError("other text beside the address")
    if "/" in t:
        return IPError("a network or mask, not one host address", "ip_network")
    parts = t.split(".")
    if len(parts) != 4 and all(p.isascii() and p.isdigit() for p in parts):
        return IPError(f"{len(parts)} numbers instead of 4")
    return IPError("not an IPv4/IPv6 address")


def normalize_ip(text: str) -> IPValue:
    """Normalise an IP cell: stray spaces, zero-padded octets, commas for dots.

    Returns:
        The canonical address (`010.020.001.005` -> `10.20.1.5`, `10,20,1,77` -> `10.20.1.77`).

    Raises:
        IPError: not one IPv4/IPv6 host address even after normalising (message says why, `reason`
            is the report's reason code). Linear in the length of `text`.

    Example:
        >>> normalize_ip(" 010.020.001.005 ").text
        '10.20.1.5'
    """
    if _CANONICAL_IPV4_RE.fullmatch(text):  # the common case: already canonical
        value = int.from_bytes(socket.inet_aton(text), "big")
        _v4_host(value)
        return IPValue(text, value, 4)
    t = text.translate(_INVISIBLE).strip()
    if ":" in t and not is_formula_error(t):
        return _normalize_ipv6(t)
    m = _IPV4_RE.fullmatch(t)  # zero-padded octets: nothing else to fix
    if m is None and len(t) <= 64:  # spaces around the dots, commas for dots (an address is short)
        m = _IPV4_RE.fullmatch(".".join(p.strip() for p in _IP_SEP_RE.split(t)))
    if m is None:
        raise _not_one_address(t)
    a, b, c, d = int(m[1]), int(m[2]), int(m[3]), int(m[4])
    if a > 255 or b > 255 or c > 255 or d > 255:
        raise IPError("a number is greater than 255")
    value = (a << 24) | (b << 16) | (c << 8) | d
    _v4_host(value)
    return IPValue(f"{a}.{b}.{c}.{d}", value, 4)


def _normalize_ipv6(text: str) -> IPValue:
    t = text.strip("[]").split("%", 1)[0]
    if not t.isascii() or len(t) > 64:
        raise _not_one_address(text)
    try:
        addr = ipaddress.IPv6Address(t)
    except ValueError:
        if "/" in t:
            raise IPError("a network, not one host address", "ip_network") from None
        if any(sep in t for sep in (",", ";", " ")):
            raise IPError("several addresses in one cell", "multiple_ips") from None
        raise IPError("not an IPv4/IPv6 address") from None
    if addr.ipv4_mapped is not None:
        return normalize_ip(str(addr.ipv4_mapped))
    if addr.is_unspecified or addr.is_loopback or addr.is_multicast:
        raise IPError("not a host address (unspecified, loopback or multicast)")
    return IPValue(addr.compressed, int(addr), 6)


def _fold_hostname(text: str) -> str:
    """Stray spaces, case and a trailing dot removed (not yet validated)."""
    return text.strip().lower().rstrip(".")


def normalize_hostname(text: str) -> str:
    """Normalise a network-name cell: stray spaces, lower case, a trailing dot (a FQDN stays a FQDN).

    Raises:
        ValueError: not a valid DNS name (message says why).

    Example:
        >>> normalize_hostname(" ARM-0003.MCRI.LOCAL ")
        'arm-0003.mcri.local'
    """
    name = _fold_hostname(text)
    if not (_HOSTNAME_RE.fullmatch(name) and len(name) <= 253 and text.isascii()):
        visible = text.translate(_INVISIBLE)
        name = _fold_hostname(visible)
        if not (_HOSTNAME_RE.fullmatch(name) and len(name) <= 253 and visible.isascii()):
            raise ValueError(_hostname_problem(name if visible.isascii() else visible.strip()))
    if _CANONICAL_IPV4_RE.fullmatch(name):
        raise ValueError("an IP address, not a network name")
    return name


def _hostname_problem(name: str) -> str:
    if _CYRILLIC_RE.search(name):
        return "Cyrillic letters (a network name uses Latin letters, digits and '-')"
    if _WS_RE.search(name):
        return "spaces inside the name"
    if not name.isascii():
        return "characters other than Latin letters, digits, '-' and '.'"
    if len(name) > 253:
        return "longer than 253 characters"
    for label in name.split("."):
        if not label:
            return "an empty part between dots"
        if len(label) > 63:
            return "a part longer than 63 characters"
        if label[0] in "_-" or label[-1] in "_-":
            return f"a part starts or ends with {label[0] if label[0] in '_-' else label[-1]!r}"
    return "characters other than Latin letters, digits, '-' and '.'"


def _same_host(a: str, b: str) -> bool:
    """`arm-1` and `arm-1.mcri.local` name the same host; two different FQDNs do not."""
    if a == b:
        return True
    if "." in a and "." in b:
        return False
    return a.split(".", 1)[0] == b.split(".", 1)[0]


# --- whole columns ----------------------------------------------------------------------------------


def _lines_not_matching(values: Sequence[str], lines: re.Pattern[str]) -> list[int] | None:
    """The indexes of the strings that are not one whole unit of `lines`, a pattern ``(?:ITEM\\n)*+``.

    One regex run over the column joined by line breaks does what ``ITEM.fullmatch`` on each string
    would, without a Python call per string: it stops only at the strings that fail. None when a
    string holds a line break itself (then the caller checks them one by one).
    """
    if not values:
        return []
    text = "\n".join(values) + "\n"
    if text.count("\n") != len(values):
        return None
    failing: list[int] = []
    pos = line = 0
    while True:
        end = cast(re.Match[str], lines.match(text, pos)).end()  # the good lines from `pos` on
        line += text.count("\n", pos, end)
        if end == len(text):
            return failing
        failing.append(line)
        pos = text.index("\n", end) + 1
        line += 1


def _check_hostnames(raw: Sequence[Cell]) -> tuple[list[str], list[int], dict[int, tuple[str, str]]]:
    """Fold and validate a hostname column: (hostnames, rows missing or invalid, why invalid: the
    reason code, `invalid_hostname` or `formula_error`, and the message).

    The common cell, a plain lower-case DNS name, is recognised for the whole column at once (one
    regex over each cell, C-level `map`); the rest go through :func:`normalize_hostname`.
    """
    texts = cast("Sequence[str]", raw)
    try:
        hosts = list(map(str.lower, texts))
        non_ascii = [] if all(map(str.isascii, texts)) else _rows_where(map(not_, map(str.isascii, texts)))
    except TypeError:  # a number or a date among them
        hosts = [_fold_hostname(cell_text(h)) for h in raw]
        non_ascii = [i for i, h in enumerate(raw) if type(h) is str and not h.isascii()]
    # a plain name that is not an IPv4 address: already folded, and valid; the rest, below
    plain_failing = _lines_not_matching(hosts, _HOSTNAME_QUICK_LINES)
    if plain_failing is None:  # a line break in a cell
        plain_failing = _rows_where(map(not_, map(_HOSTNAME_QUICK_RE.fullmatch, hosts)))
    slow = {*plain_failing, *non_ascii}  # lower() can turn a non-ASCII letter (the Kelvin sign) into an ASCII one
    if hosts and max(map(len, hosts)) > 253:
        slow.update(i for i, h in enumerate(hosts) if len(h) > 253)
    bad: list[int] = []
    errors: dict[int, tuple[str, str]] = {}
    for i in sorted(slow):
        text = cell_text(raw[i])
        hosts[i] = _fold_hostname(text)
        if not hosts[i]:
            bad.append(i)  # missing, not invalid
            continue
        try:  # the complete check: it also drops invisible characters
            hosts[i] = normalize_hostname(text)
        except ValueError as exc:
            bad.append(i)
            if is_formula_error(text):
                errors[i] = ("formula_error", f"the cell shows the spreadsheet error {text.strip()}, not a name")
            else:
                errors[i] = ("invalid_hostname", str(exc))
    return hosts, bad, errors


def _check_ips(raw: Sequence[Cell]) -> tuple[list[str | None], list[int], dict[int, int], dict[int, tuple[str, str]]]:
    """Normalise and validate an IP column: (canonical texts, integers, rows without an IPv4 address
    and their version, why invalid: the reason code and the message).

    The common cell, a canonical IPv4 host address, is recognised for the whole column at once;
    the rest go through :func:`normalize_ip`.
    """
    try:
        other = _lines_not_matching(cast("Sequence[str]", raw), _CANONICAL_IPV4_LINES)
    except TypeError:  # a number or a date among them
        other = None
    if other is None:
        other = [i for i, x in enumerate(raw) if type(x) is not str or not _CANONICAL_IPV4_RE.fullmatch(x)]
    ips = cast("list[str | None]", list(raw))
    for i in other:
        ips[i] = "0.0.0.0"  # no IPv4 text: a placeholder with first octet 0, looked at below
    numbers = list(map(int.from_bytes, map(socket.inet_aton, cast("list[str]", ips))))
    no_v4: dict[int, int] = {}
    errors: dict[int, tuple[str, str]] = {}
    # the rare rows: not a canonical IPv4 text (first octet 0 here), or not a host address
    for i in compress(count(), map(_NOT_HOST_FIRST_OCTET.__contains__, map(rshift, numbers, repeat(24)))):
        ips[i], numbers[i], no_v4[i] = None, 0, 0
        value = raw[i]
        if value == "" or value is None:
            continue
        text = cell_text(value)
        if not text.strip():
            continue  # only spaces: no IP given
        try:
            parsed = normalize_ip(text)
        except IPError as exc:
            errors[i] = (exc.reason, str(exc))
            continue
        ips[i], numbers[i] = parsed.text, parsed.value
        if parsed.version == 4:
            del no_v4[i]
        else:
            no_v4[i] = parsed.version
    return ips, numbers, no_v4, errors
