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
from typing import TYPE_CHECKING, Any, Final, cast

from msib.appendix.model import (
    OBJECT_COLUMNS,
    Appendix,
    DataField,
    Field,
    ReadResult,
    Reason,
    Rejection,
    Source,
    Table,
    Warning_,
)
from msib.appendix.scope import Masker
from msib.appendix.values import (
    _IPV4_TOKEN_RE,
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
    is_formula_error,
    normalize_ip,
    os_table,
)
from msib.circuits import CircuitName

if TYPE_CHECKING:
    from msib.site import SitePlan

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
    "network_address": "type the object's own address: the network address names the whole network, not a host",
    "broadcast_address": "type the object's own address: the broadcast address reaches every host, it is not one",
    "ip_range": "one object, one address, one row: give each host of the range a row of its own",
    "ip_network": "type the host's own address alone, without a prefix (/24) or a mask",
    "multiple_ips": "one object, one address, one row: a host with several addresses gets a row per address",
    "formula_error": "type the value itself, or correct the formula so that the cell shows it "
    "(or paste the column as values)",
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
    host_errors: dict[int, tuple[str, str]]  # why a given hostname is invalid: reason code, message
    ips: list[str | None]  # canonical text; None when missing or invalid
    numbers: list[int]  # the address as an integer (0 when none)
    no_v4: dict[int, int]  # the rows whose address is not IPv4: 6, or 0 when missing or invalid
    ip_errors: dict[int, tuple[str, str]]  # why a given IP is invalid: reason code, message
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


def _excluded_ips(prep: _Prepared, i: int) -> list[str]:
    """The addresses of an excluded row: its IP, or the addresses typed in an IP cell that is not one
    address (`10.20.5.5/24`, two addresses): they name the same excluded object."""
    ip = prep.ips[i]
    if ip is not None:
        return [ip]
    if i not in prep.ip_errors:
        return []
    found = []
    for token in _IPV4_TOKEN_RE.findall(cell_text(prep.table.cells["ip"][i])[:4096]):
        try:
            found.append(normalize_ip(token).text)
        except ValueError:
            continue
    return found


def _spread_once(prepared: Sequence[_Prepared], ips: set[str], hosts: set[str]) -> list[tuple[int, int]]:
    """Exclude the rows that share an IP in `ips` or a hostname in `hosts` (the same host: `arm-1` and
    `arm-1.mcri.local`); the rows newly excluded, as (table index, row index)."""
    labels = {h.split(".", 1)[0] for h in hosts} - {""}  # a name without dots: the same as one of these
    bare = {h for h in hosts if "." not in h}  # a FQDN: the same as one of these, or its first label
    new: list[tuple[int, int]] = []
    for t, prep in enumerate(prepared):
        found = set(compress(count(), map(ips.__contains__, prep.ips)))
        found.update(compress(count(), map(labels.__contains__, prep.hosts)))
        for i in compress(count(), map(str.__contains__, prep.hosts, repeat("."))):
            host = prep.hosts[i]
            if host in hosts or host.split(".", 1)[0] in bare:
                found.add(i)
        found -= prep.excluded
        prep.excluded.update(found)
        new += [(t, i) for i in sorted(found)]
    return new


def _close_exclusions(prepared: Sequence[_Prepared]) -> tuple[set[str], set[str]]:
    """Exclude every row linked to an excluded row by a shared IP or hostname, to a fixpoint: a row
    sharing a hostname with an excluded row is excluded, and so is a row sharing *its* IP, and so on.

    The usual appendix needs one pass over the columns (nothing shares with an excluded row, or only
    directly); chains are followed through an index of every row's IP and hostname, built then.

    Returns:
        The excluded rows' addresses and hostnames (what :class:`~msib.appendix.scope.Masker` withholds).
    """
    ips = {ip for prep in prepared for i in prep.excluded for ip in _excluded_ips(prep, i)}
    hosts = {prep.hosts[i] for prep in prepared for i in prep.excluded} - {""}
    if not ips and not hosts:
        return ips, hosts
    queue = _spread_once(prepared, ips, hosts)
    if queue:
        by_ip: dict[str, list[tuple[int, int]]] = {}
        by_host: dict[str, list[tuple[int, int]]] = {}
        by_label: dict[str, list[tuple[int, int]]] = {}  # FQDN rows by their first label
        for t, prep in enumerate(prepared):
            for i, ip in enumerate(prep.ips):
                if ip is not None:
                    by_ip.setdefault(ip, []).append((t, i))
            for i, host in enumerate(prep.hosts):
                if host:
                    by_host.setdefault(host, []).append((t, i))
                    if "." in host:
                        by_label.setdefault(host.split(".", 1)[0], []).append((t, i))
        while queue:
            t, i = queue.pop()
            prep = prepared[t]
            host = prep.hosts[i]
            row_ips = _excluded_ips(prep, i)
            ips.update(row_ips)
            linked = [pair for ip in row_ips for pair in by_ip.get(ip, ())]
            if host:
                hosts.add(host)
                linked += by_host.get(host, ())
                linked += by_label.get(host, ()) if "." not in host else by_host.get(host.split(".", 1)[0], ())
            for t2, i2 in linked:
                if i2 not in prepared[t2].excluded:
                    prepared[t2].excluded.add(i2)
                    queue.append((t2, i2))
    for prep in prepared:  # what the last rows added (their own IPs and hostnames)
        for i in prep.excluded:
            ips.update(_excluded_ips(prep, i))
            if prep.hosts[i]:
                hosts.add(prep.hosts[i])
    return ips, hosts


def _masker(plan: SitePlan, ips: set[str], hosts: set[str], excl_host: _HostPatterns | None) -> Masker | None:
    """What withholds excluded names and addresses inside other text; None when the plan excludes nothing."""
    networks = [e.network for e in plan.excluded if e.network is not None]
    if not (ips or hosts or networks or excl_host):
        return None
    match = None
    if excl_host is not None:
        regex = excl_host.regex

        def match(name: str) -> bool:
            return regex.match(name) is not None

    return Masker(ips, hosts, networks, match, excl_host.prefixes if excl_host else ())


def _special_addresses(circuits: Mapping[CircuitName, Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]]
                       ) -> tuple[dict[int, tuple[Reason, str]], dict[int, tuple[Reason, str]]]:
    """The network and broadcast addresses of the circuits' networks (IPv4, IPv6): address -> (reason,
    network). A /31 or /32 (/127, /128) has none: every address of it is a host."""
    v4: dict[int, tuple[Reason, str]] = {}
    v6: dict[int, tuple[Reason, str]] = {}
    for networks in circuits.values():
        for net in networks:
            if net.version == 4 and net.prefixlen <= 30:
                v4[int(net.network_address)] = ("network_address", str(net))
                v4[int(net.broadcast_address)] = ("broadcast_address", str(net))
            elif net.version == 6 and net.prefixlen <= 126:
                v6[int(net.network_address)] = ("network_address", str(net))
    return v4, v6


def _special_rows(prep: _Prepared, keep: Sequence[bool], v4: Mapping[int, tuple[Reason, str]],
                  v6: Mapping[int, tuple[Reason, str]]) -> dict[int, tuple[Reason, str]]:
    """The rows, in their circuit, whose address is the network or broadcast address of its network."""
    rows: dict[int, tuple[Reason, str]] = {}
    if v4:
        for i in compress(count(), map(v4.__contains__, prep.numbers)):
            if keep[i] and i not in prep.no_v4:
                rows[i] = v4[prep.numbers[i]]
    for i, version in prep.no_v4.items():
        if version == 6 and keep[i] and prep.numbers[i] in v6:
            rows[i] = v6[prep.numbers[i]]
    return rows


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

    # pass 1 (by column): normalise; find every row an exclusion matches, and every row linked to one
    prepared = [_prepare(t, excl_nets, excl_host) for r in reads for t in r.tables]
    masker = _masker(plan, *_close_exclusions(prepared), excl_host)
    special_v4, special_v6 = _special_addresses({name: c.networks for name, c in plan.circuits.items()})

    # pass 2 (by column): the checks that need no other row, then the IPs taken twice
    outcomes: list[tuple[int, int, Rejection]] = []  # (table index, row index, rejection): sorted at the end
    owners: list[dict[str, int]] = []  # per table: IP -> the row that has it
    accepted: list[list[bool]] = []  # per table and row
    for t_index, prep in enumerate(prepared):
        unknown_sb = _unknown_rows(prep.table.cells["sb"], sb_known)
        keep = _circuit_flags(prep, circuits)  # false for no circuit, no valid IP, outside the circuit
        special = _special_rows(prep, keep, special_v4, special_v6) if special_v4 or special_v6 else {}
        bad_hosts = set(prep.bad_hosts)
        for i in sorted({*prep.excluded, *unknown_sb, *bad_hosts, *special, *compress(count(), map(not_, keep))}):
            keep[i] = False
            outcomes.append((t_index, i, _reject_row(prep, i, i not in unknown_sb, i not in bad_hosts, plan,
                                                     special.get(i), masker)))
        rows = _rows_where(keep)
        first, repeats = _repeated_rows(cast("list[str]", list(compress(prep.ips, keep))), rows, owners, t_index)
        owners.append(first)
        for i, taken in repeats.items():
            keep[i] = False
            outcomes.append((t_index, i, _reject_duplicate(prep, i, taken, prepared, masker)))
        accepted.append(keep)

    outcomes.sort(key=lambda o: (o[0], o[1]))
    columns = _object_columns(prepared, accepted, plan.state_body, as_of, masker)
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
                    as_of: dt.date, masker: Masker | None = None) -> dict[str, Sequence[Any]]:
    """The accepted rows of every table, by column (:data:`OBJECT_COLUMNS`): free text folded once
    per distinct value, each OS classified once; excluded names and addresses in the free text
    withheld (`masker`)."""
    withhold = masker.column if masker is not None else (lambda column: column)
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
            ("department", withhold(fold_column(take(cells["department"])))),
            ("location", withhold(fold_column(take(cells["location"])))),
            ("responsible", withhold(fold_column(take(cells["responsible"])))),
            ("hostname", take(prep.hosts)),
            ("ip", take(prep.ips)),
            ("os", withhold(os_names)),
            ("os_raw", withhold(os_raw)),
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
               dup: Source | None = None, masker: Masker | None = None) -> Rejection:
    """A rejection of row `i`; the cell's value with excluded names and addresses withheld (a `why` that
    quotes the cell is withheld by the caller)."""
    table = prep.table
    value: Cell = None
    if column is not None and column != "no":
        value = table.cells[column][i]
    text = None if reason in ("no_circuit", "excluded") else cell_text(value)
    message = f"{why}; {_HOW[reason]}"
    if masker is not None:
        text = masker.optional(text)
    return Rejection(
        table.file,
        table.sheet,
        table.row_numbers[i],
        table.columns.get(column) if column else None,
        reason,
        message,
        text,
        dup,
    )


def _reject_row(prep: _Prepared, i: int, sb_ok: bool, host_ok: bool, plan: SitePlan,
                special: tuple[Reason, str] | None = None, masker: Masker | None = None) -> Rejection:
    """The first reason, in the documented order, a row that failed a local check is rejected for."""
    table = prep.table
    if i in prep.excluded:
        return Rejection(table.file, table.sheet, table.row_numbers[i], None, "excluded", EXCLUDED_MESSAGE)
    sb_cell = table.cells["sb"][i]
    checks: tuple[tuple[DataField, bool], ...] = (
        ("sb", is_formula_error(sb_cell)),
        ("hostname", prep.host_errors.get(i, ("",))[0] == "formula_error"),
        ("ip", prep.ip_errors.get(i, ("",))[0] == "formula_error"),
    )
    for field, bad in checks:
        if bad:
            shown = cell_text(table.cells[field][i]).strip()
            return _rejection(prep, i, "formula_error", field,
                              f"the cell shows the spreadsheet error {shown}, not a value", masker=masker)
    if not sb_ok:
        name = _text_or_none(sb_cell)
        if masker is not None and name is not None:
            name = masker.text(name)
        return _rejection(prep, i, "unknown_state_body", "sb",
                          f"state body {name!r} is neither {plan.state_body!r} nor one of its aliases", masker=masker)
    circuit = table.circuits[i]
    if circuit is None:
        return _rejection(prep, i, "no_circuit", None,
                          "the row stands under no circuit section and its sheet names none", masker=masker)
    host = prep.hosts[i]
    if not host:
        return _rejection(prep, i, "missing_hostname", "hostname", "no network name given", masker=masker)
    if not host_ok:
        return _rejection(prep, i, "invalid_hostname", "hostname",
                          f"not a valid network name: {prep.host_errors[i][1]}", masker=masker)
    ip_text = prep.ips[i]
    if ip_text is None:
        err = prep.ip_errors.get(i)
        if err is None:
            return _rejection(prep, i, "missing_ip", "ip", "no IP address given", masker=masker)
        reason, why = err
        if masker is not None:  # the message may quote the cell
            why = masker.text(why)
        return _rejection(prep, i, cast(Reason, reason), "ip", f"not one IP address: {why}", masker=masker)
    if special is not None:
        kind, network = special
        what = "network" if kind == "network_address" else "broadcast"
        return _rejection(prep, i, kind, "ip", f"{ip_text} is the {what} address of {network}", masker=masker)
    have = (
        ", ".join(str(x) for x in plan.circuits[circuit].networks)
        if circuit in plan.circuits
        else "none: the site plan has no such circuit"
    )
    why = f"{ip_text} is outside the {circuit} circuit (its networks: {have})"
    other = next((name for name, c in plan.circuits.items()
                  if name != circuit and c.contains(ipaddress.ip_address(ip_text))), None)
    if other is not None:
        why += f", but in the {other} circuit's networks"
    return _rejection(prep, i, "outside_circuit", "ip", why, masker=masker)


def _reject_duplicate(prep: _Prepared, i: int, taken: tuple[int, int],
                      prepared: Sequence[_Prepared], masker: Masker | None = None) -> Rejection:
    t_index, j = taken
    other_host = prepared[t_index].hosts[j]
    other = prepared[t_index].table
    dup = Source(other.file, other.sheet, other.row_numbers[j])
    host, ip_text = prep.hosts[i], prep.ips[i]
    if _same_host(other_host, host):
        return _rejection(prep, i, "duplicate_row", "ip",
                          f"the same object ({host}, {ip_text}) is already listed at {dup.describe()}", dup, masker)
    return _rejection(prep, i, "duplicate_ip", "ip",
                      f"{ip_text} is already taken by {other_host} at {dup.describe()}", dup, masker)
