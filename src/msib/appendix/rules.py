"""Row rules: each data row checked against the site plan, accepted as an object or rejected with a reason."""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, compress, count, groupby, repeat
from operator import ne, not_, or_, rshift
from typing import Any, Final, cast

from msib.appendix.model import (
    OBJECT_COLUMNS,
    Appendix,
    Field,
    ReadResult,
    Reason,
    Rejection,
    Source,
    Table,
    Warning_,
)
from msib.appendix.values import (
    Cell,
    OsFamily,
    OsInfo,
    _check_hostnames,
    _check_ips,
    _fold,
    _rows_where,
    _same_host,
    cell_text,
    classify_os,
    os_table,
)
from msib.site import CircuitName, SitePlan

# --- checking rows against the site plan ------------------------------------------------------------

_Nets = tuple[tuple[int, int, int], ...]  # (version, network address, netmask) as integers


def _nets(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> _Nets:
    return tuple((n.version, int(n.network_address), int(n.netmask)) for n in networks)


_HOW: Final[dict[Reason, str]] = {
    "invalid_ip": "type one IPv4 address as four numbers 0-255 separated by dots",
    "missing_ip": "fill in the object's IP address",
    "missing_hostname": "fill in the object's network name",
    "invalid_hostname": "use the network name exactly as the computer has it (Latin letters, digits, '-', '.')",
    "duplicate_ip": "correct the IP of one of the two rows; each address belongs to one host",
    "duplicate_row": "delete the repeated row",
    "outside_circuit": "correct the IP, or move the row under the section of the circuit it belongs to",
    "excluded": "",
    "unknown_state_body": "remove rows of other state bodies (or add the spelling to the aliases of the site plan)",
    "no_circuit": "put the row under the section row of its circuit "
    "('Локальная сеть внутреннего/внешнего контура'), or name the circuit in the sheet title",
}

#: The message of every `excluded` rejection: it names nothing about the object.
EXCLUDED_MESSAGE: Final = "matches an exclusion of the site plan: out of scope, not in any inventory"


def _text_or_none(value: Cell) -> str | None:
    """A free-text cell with stray spaces and line breaks folded; empty is None."""
    text = value if type(value) is str else cell_text(value)
    return " ".join(text.split()) or None


class _Networks:
    """Networks of the site plan, matched against many addresses at once.

    An IPv4 address lies in a network when its top `prefix` bits are the network's: one set lookup
    per address and prefix length, mapped over a whole column at C speed. IPv6 addresses (rare in
    an appendix) are matched one by one with :meth:`contains`.
    """

    def __init__(self, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self.nets: _Nets = _nets(networks)
        by_shift: dict[int, set[int]] = {}
        for version, addr, mask in self.nets:
            if version == 4:
                shift = 32 - mask.bit_count()
                by_shift.setdefault(shift, set()).add(addr >> shift)
        self._v4 = tuple((shift, frozenset(tops)) for shift, tops in by_shift.items())

    def __bool__(self) -> bool:
        return bool(self.nets)

    def contains(self, version: int, number: int) -> bool:
        """Whether the address (`version` 4 or 6, 0 for none) lies in one of the networks."""
        return any(v == version and number & mask == addr for v, addr, mask in self.nets)

    def flags_v4(self, numbers: Sequence[int]) -> list[bool]:
        """Per address, taken as IPv4: does it lie in one of the IPv4 networks?"""
        flags: list[bool] | None = None
        for shift, tops in self._v4:
            hits = map(tops.__contains__, map(rshift, numbers, repeat(shift)))
            flags = list(hits) if flags is None else list(map(or_, flags, hits))
        return flags if flags is not None else [False] * len(numbers)

    def flags(self, numbers: Sequence[int], no_v4: Mapping[int, int]) -> list[bool]:
        """Per row: does its address lie in one of the networks? `no_v4` gives the version (6, or 0
        for no address) of the rows whose address is not IPv4."""
        flags = self.flags_v4(numbers)
        for i, version in no_v4.items():
            flags[i] = self.contains(version, numbers[i])
        return flags


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Pass 1 over one table, by column: folded hostnames, parsed IPs, the rows an exclusion matches.

    Problems are kept by row index: in a usual appendix few rows have one.
    """

    table: Table
    hosts: list[str]  # folded (normalised when valid); "" when missing
    bad_hosts: list[int]  # the rows whose hostname is missing or invalid, in order
    host_errors: dict[int, str]  # why a given hostname is invalid
    ips: list[str | None]  # canonical text; None when missing or invalid
    numbers: list[int]  # the address as an integer (0 when none)
    no_v4: dict[int, int]  # the rows whose address is not IPv4: 6, or 0 when missing or invalid
    ip_errors: dict[int, str]  # why a given IP is invalid
    excluded: set[int]  # the rows an exclusion matches (then: or that share an IP or hostname with one)


class _HostPatterns:
    """The site plan's hostname exclusions (shell-style patterns, as `fnmatch`), matched against a column."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
        # what every name a pattern matches starts with (and so every FQDN whose first label it matches)
        self.prefixes = tuple(re.split(r"[*?\[]", p, maxsplit=1)[0] for p in patterns)

    def rows(self, hosts: Sequence[str]) -> set[int]:
        """The rows whose hostname, or its first label, matches a pattern."""
        index: Sequence[int] = range(len(hosts))
        names = hosts
        if all(self.prefixes):  # only the names that start right can match: usually a few
            index = _rows_where(map(str.startswith, hosts, repeat(self.prefixes)))
            names = [hosts[i] for i in index]
        match = self.regex.match
        rows = {index[k] for k in compress(count(), map(match, names)) if names[k] != ""}
        for k in compress(count(), map(str.__contains__, names, repeat("."))):  # FQDNs: the first label too
            if match(names[k].split(".", 1)[0]) is not None:
                rows.add(index[k])
        return rows


def _prepare(table: Table, excl_nets: _Networks, excl_host: _HostPatterns | None) -> _Prepared:
    """Pass 1 over one table, column by column (C-level `map` where it can be: tens of thousands of rows)."""
    hosts, bad_hosts, host_errors = _check_hostnames(table.cells["hostname"])
    ips, numbers, no_v4, ip_errors = _check_ips(table.cells["ip"])
    excluded = set(compress(count(), excl_nets.flags(numbers, no_v4))) if excl_nets else set()
    if excl_host is not None:
        excluded |= excl_host.rows(hosts)
    return _Prepared(table, hosts, bad_hosts, host_errors, ips, numbers, no_v4, ip_errors, excluded)


def _spread_exclusions(prepared: Sequence[_Prepared]) -> None:
    """Exclude every row sharing its IP or hostname with an excluded row: it is about the same object
    (`arm-1` and `arm-1.mcri.local` are the same host)."""
    ips = {prep.ips[i] for prep in prepared for i in prep.excluded} - {None}
    hosts = {prep.hosts[i] for prep in prepared for i in prep.excluded} - {""}
    if not ips and not hosts:
        return
    labels = {h.split(".", 1)[0] for h in hosts} - {""}  # a name without dots: the same as one of these
    bare = {h for h in hosts if "." not in h}  # a FQDN: the same as one of these, or its first label
    for prep in prepared:
        prep.excluded.update(compress(count(), map(ips.__contains__, prep.ips)))
        prep.excluded.update(compress(count(), map(labels.__contains__, prep.hosts)))
        for i in compress(count(), map(str.__contains__, prep.hosts, repeat("."))):
            host = prep.hosts[i]
            if host in hosts or host.split(".", 1)[0] in bare:
                prep.excluded.add(i)


def _circuit_flags(prep: _Prepared, circuits: Mapping[CircuitName, _Networks]) -> list[bool]:
    """Per row: does its address lie in the networks of the circuit whose section holds the row?

    A table's rows come in runs of one circuit (its sections): each run is matched at once.
    """
    flags: list[bool] = []
    start = 0
    for circuit, run in groupby(prep.table.circuits):
        stop = start + len(list(run))
        nets = circuits.get(circuit) if circuit is not None else None
        flags += nets.flags_v4(prep.numbers[start:stop]) if nets else [False] * (stop - start)
        start = stop
    for i, version in prep.no_v4.items():
        circuit = prep.table.circuits[i]
        nets = circuits.get(circuit) if circuit is not None else None
        flags[i] = nets is not None and nets.contains(version, prep.numbers[i])
    return flags


def _unknown_rows(column: Sequence[Cell], known: Callable[[Cell], bool]) -> set[int]:
    """The rows whose cell `known` refuses, asking once per distinct text."""
    distinct = set(column)
    if all(type(v) is str for v in distinct):  # usually one or two values
        unknown = {v for v in distinct if not known(v)}
        return set(compress(count(), map(unknown.__contains__, column))) if unknown else set()
    return {i for i, v in enumerate(column) if not known(v)}


def _repeated_rows(ips: Sequence[str], rows: Sequence[int], owners: Sequence[Mapping[str, int]],
                   t_index: int) -> tuple[dict[str, int], dict[int, tuple[int, int]]]:
    """Which rows (`rows`, with their IPs `ips`) take an IP already taken.

    Returns each new IP's first row (this table's share of the owners), and per repeating row the
    (table index, row index) of the row that has its IP: in an earlier table (`owners`), else the
    first row of this one.
    """
    first = dict(zip(reversed(ips), reversed(rows), strict=True))
    taken: dict[str, tuple[int, int]] = {}
    for t_other, owned in enumerate(owners):
        for ip in owned.keys() & first.keys():
            taken[ip] = (t_other, owned[ip])
            del first[ip]
    repeats: dict[int, tuple[int, int]] = {}
    if len(first) != len(ips):
        for k in compress(count(), map(ne, map(first.get, ips), rows)):
            ip = ips[k]
            repeats[rows[k]] = taken.get(ip) or (t_index, first[ip])
    return first, repeats


def check_rows(reads: Sequence[ReadResult], plan: SitePlan, *, as_of: dt.date) -> Appendix:
    """Normalise and validate the rows of every file against the site plan.

    Every non-blank data row becomes an object or a rejection. Exclusions win over everything: a row
    that matches one — or shares its IP or hostname with a row that does — is rejected as `excluded`
    and nothing naming it is kept. Then, in this order: `unknown_state_body`, `no_circuit`,
    `missing_hostname`/`invalid_hostname`, `missing_ip`/`invalid_ip`, `outside_circuit`,
    `duplicate_row` (the same hostname and IP again), `duplicate_ip` (the IP taken by an earlier
    row with another hostname). A blank state-body cell is taken as the plan's state body.

    The checks run column by column (an appendix may have tens of thousands of rows); only rows
    that fail one are looked at one by one.

    Args:
        reads: what :func:`read_appendix` returned for each file, in the order given.
        plan: the validated site plan.
        as_of: the day that decides what is past end of life.

    Returns:
        The objects (in file/sheet/row order), the rejections and everything the report needs.
    """
    circuits = {name: _Networks(c.networks) for name, c in plan.circuits.items()}
    excl_nets = _Networks(e.network for e in plan.excluded if e.network is not None)
    patterns = [e.hostname.lower() for e in plan.excluded if e.hostname is not None]
    excl_host = _HostPatterns(patterns) if patterns else None
    sb_names = {_fold(n) for n in [plan.state_body, *plan.aliases]}

    def sb_known(value: Cell) -> bool:
        text = _text_or_none(value)
        return text is None or _fold(text) in sb_names

    # pass 1 (by column): normalise; find every row an exclusion matches
    prepared = [_prepare(t, excl_nets, excl_host) for r in reads for t in r.tables]
    _spread_exclusions(prepared)

    # pass 2 (by column): the checks that need no other row, then the IPs taken twice
    outcomes: list[tuple[int, int, Rejection]] = []  # (table index, row index, rejection): sorted at the end
    owners: list[dict[str, int]] = []  # per table: IP -> the row that has it
    accepted: list[list[bool]] = []  # per table and row
    for t_index, prep in enumerate(prepared):
        unknown_sb = _unknown_rows(prep.table.cells["sb"], sb_known)
        keep = _circuit_flags(prep, circuits)  # false for no circuit, no valid IP, outside the circuit
        bad_hosts = set(prep.bad_hosts)
        for i in sorted({*prep.excluded, *unknown_sb, *bad_hosts, *compress(count(), map(not_, keep))}):
            keep[i] = False
            outcomes.append((t_index, i, _reject_row(prep, i, i not in unknown_sb, i not in bad_hosts, plan)))
        rows = _rows_where(keep)
        first, repeats = _repeated_rows(cast("list[str]", list(compress(prep.ips, keep))), rows, owners, t_index)
        owners.append(first)
        for i, taken in repeats.items():
            keep[i] = False
            outcomes.append((t_index, i, _reject_duplicate(prep, i, taken, prepared)))
        accepted.append(keep)

    outcomes.sort(key=lambda o: (o[0], o[1]))
    columns = _object_columns(prepared, accepted, plan.state_body, as_of)
    return Appendix(
        as_of=as_of,
        inputs=tuple(r.input for r in reads),
        sheets=tuple(s for r in reads for s in r.sheets),
        columns=columns,
        rejected=tuple(o[2] for o in outcomes),
        skipped=tuple(s for r in reads for s in r.skipped),
        warnings=_several_ips_warnings(columns),
    )


def _object_columns(prepared: Sequence[_Prepared], accepted: Sequence[list[bool]], state_body: str,
                    as_of: dt.date) -> dict[str, Sequence[Any]]:
    """The accepted rows of every table, by column (:data:`OBJECT_COLUMNS`): free text folded once
    per distinct value, each OS classified once."""
    texts: dict[str, str | None] = {}
    os_infos: dict[str | None, tuple[str | None, OsFamily, bool | None, str | None]] = {}
    table_os = os_table()

    def fold_column(values: list[Cell]) -> list[str | None]:
        distinct = set(values)
        if all(type(v) is str for v in distinct):
            new = cast(set[str], distinct.difference(texts))
            texts.update(zip(new, map(_text_or_none, new), strict=True))
            return list(map(texts.__getitem__, cast(list[str], values)))
        return [texts[v] if type(v) is str and v in texts else _text_or_none(v) for v in values]

    def os_of(text: str | None) -> tuple[str | None, OsFamily, bool | None, str | None]:
        info = classify_os(text, as_of, table_os) if text else OsInfo(None, "other", None, None)
        return info.name, info.family, info.eol, info.eol_date.isoformat() if info.eol_date else None

    parts: dict[str, list[Sequence[Any]]] = {name: [] for name in OBJECT_COLUMNS}
    for prep, keep in zip(prepared, accepted, strict=True):
        n = sum(keep)
        if not n:
            continue
        table = prep.table
        cells = table.cells

        def take[T](column: Sequence[T], keep: list[bool] = keep) -> list[T]:
            return list(compress(column, keep))

        os_raw = fold_column(take(cells["os"]))
        os_infos.update((text, os_of(text)) for text in set(os_raw).difference(os_infos))
        os_names, os_families, os_eols, os_eol_dates = zip(*map(os_infos.__getitem__, os_raw), strict=True)
        for name, values in (
            ("sb", [state_body] * n),
            ("department", fold_column(take(cells["department"]))),
            ("location", fold_column(take(cells["location"]))),
            ("responsible", fold_column(take(cells["responsible"]))),
            ("hostname", take(prep.hosts)),
            ("ip", take(prep.ips)),
            ("os", os_names),
            ("os_raw", os_raw),
            ("os_family", os_families),
            ("os_eol", os_eols),
            ("os_eol_date", os_eol_dates),
            ("circuit", take(table.circuits)),
            ("file", [table.file] * n),
            ("sheet", [table.sheet] * n),
            ("row", take(table.row_numbers)),
        ):
            parts[name].append(values)
    return {name: p[0] if len(p) == 1 else list(chain.from_iterable(p)) for name, p in parts.items()}


def _several_ips_warnings(columns: Mapping[str, Sequence[Any]]) -> tuple[Warning_, ...]:
    """`hostname_on_several_ips`: one hostname on several accepted rows (fine for a host with several
    interfaces, otherwise a mistake)."""
    hosts = columns["hostname"]
    if len(set(hosts)) == len(hosts):
        return ()
    Place = tuple[str | None, str, str | None, int]  # ip, file, sheet, row
    first_ip_of: dict[str, Place] = {}
    more_ips_of: dict[str, list[Place]] = {}
    for host, ip, file, sheet, row in zip(hosts, columns["ip"], columns["file"], columns["sheet"],
                                          columns["row"], strict=True):
        place = (ip, file, sheet, row)
        first = first_ip_of.get(host)
        if first is None:
            first_ip_of[host] = place
        else:
            more_ips_of.setdefault(host, [first]).append(place)
    return tuple(
        Warning_(
            "hostname_on_several_ips",
            f"{host} is listed with {len(seen)} IP addresses ({', '.join(p[0] or '' for p in seen)}); "
            "fine for a host with several interfaces, otherwise correct the rows",
            tuple(Source(p[1], p[2], p[3]) for p in seen),
        )
        for host, seen in more_ips_of.items()
    )


def _rejection(prep: _Prepared, i: int, reason: Reason, column: Field | None, why: str,
               dup: Source | None = None) -> Rejection:
    table = prep.table
    value: Cell = None
    if column is not None and column != "no":
        value = table.cells[column][i]
    return Rejection(
        table.file,
        table.sheet,
        table.row_numbers[i],
        table.columns.get(column) if column else None,
        reason,
        f"{why}; {_HOW[reason]}",
        None if reason in ("no_circuit", "excluded") else cell_text(value),
        dup,
    )


def _reject_row(prep: _Prepared, i: int, sb_ok: bool, host_ok: bool, plan: SitePlan) -> Rejection:
    """The first reason, in the documented order, a row that failed a local check is rejected for."""
    table = prep.table
    if i in prep.excluded:
        return Rejection(table.file, table.sheet, table.row_numbers[i], None, "excluded", EXCLUDED_MESSAGE)
    if not sb_ok:
        name = _text_or_none(table.cells["sb"][i])
        return _rejection(prep, i, "unknown_state_body", "sb",
                          f"state body {name!r} is neither {plan.state_body!r} nor one of its aliases")
    circuit = table.circuits[i]
    if circuit is None:
        return _rejection(prep, i, "no_circuit", None,
                          "the row stands under no circuit section and its sheet names none")
    host = prep.hosts[i]
    if not host:
        return _rejection(prep, i, "missing_hostname", "hostname", "no network name given")
    if not host_ok:
        return _rejection(prep, i, "invalid_hostname", "hostname", f"not a valid network name: {prep.host_errors[i]}")
    ip_text = prep.ips[i]
    if ip_text is None:
        err = prep.ip_errors.get(i)
        if err is None:
            return _rejection(prep, i, "missing_ip", "ip", "no IP address given")
        return _rejection(prep, i, "invalid_ip", "ip", f"not an IP address: {err}")
    have = (
        ", ".join(str(x) for x in plan.circuits[circuit].networks)
        if circuit in plan.circuits
        else "none: the site plan has no such circuit"
    )
    return _rejection(prep, i, "outside_circuit", "ip",
                      f"{ip_text} is outside the {circuit} circuit (its networks: {have})")


def _reject_duplicate(prep: _Prepared, i: int, taken: tuple[int, int],
                      prepared: Sequence[_Prepared]) -> Rejection:
    t_index, j = taken
    other_host = prepared[t_index].hosts[j]
    other = prepared[t_index].table
    dup = Source(other.file, other.sheet, other.row_numbers[j])
    host, ip_text = prep.hosts[i], prep.ips[i]
    if _same_host(other_host, host):
        return _rejection(prep, i, "duplicate_row", "ip",
                          f"the same object ({host}, {ip_text}) is already listed at {dup.describe()}", dup)
    return _rejection(prep, i, "duplicate_ip", "ip",
                      f"{ip_text} is already taken by {other_host} at {dup.describe()}", dup)
