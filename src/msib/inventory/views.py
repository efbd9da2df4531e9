"""Views of the model and the appendix: hosts.yml, pyinfra_inventory.py, objects.json, report.json/.md, site.json."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import compress, repeat
from operator import is_, itemgetter
from pathlib import Path
from typing import Any, Final

import orjson
import yaml

from msib.appendix import OS_FAMILIES, REASONS, Appendix
from msib.escape import md_cell, md_code, md_text
from msib.escape import md_cell as _md
from msib.inventory.model import SshSettings, _has_ipv6, inventory_model
from msib.site import SitePlan


class _Dumper(yaml.CSafeDumper):
    """Plain YAML: no anchors/aliases, block style, Unicode kept."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_SENDERS_MARK: Final = "__msib_senders_{}__"


def _yaml_scalar(ip: str) -> str:
    return ip if ":" not in ip else json.dumps(ip)


def render_hosts_yml(model: Mapping[str, Any]) -> bytes:
    """``hosts.yml`` text of the model.

    The circuits' `senders` lists (one line per object address, possibly tens of thousands) are
    written directly rather than through the YAML representer; the result is the same YAML.
    """
    head = (
        "# Ansible inventory written by `msib inventory build`: do not edit, build again.\n"
        "# pyinfra reads the same hosts through pyinfra_inventory.py beside this file.\n"
    )
    circuits = model["all"]["vars"]["msib_circuits"]
    shallow = {**model["all"], "vars": {**model["all"]["vars"], "msib_circuits": {
        name: {**c, "senders": _SENDERS_MARK.format(name)} for name, c in circuits.items()
    }}}
    body = yaml.dump(
        {"all": shallow}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
        width=4096,
    )
    for name, circuit in circuits.items():
        mark = f"senders: {_SENDERS_MARK.format(name)}\n"
        at = body.index(mark)
        indent = body[body.rindex("\n", 0, at) + 1 : at]
        if circuit["senders"]:
            items = circuit["senders"] if not _has_ipv6(circuit["senders"]) else map(_yaml_scalar, circuit["senders"])
            text = f"senders:\n{indent}- " + f"\n{indent}- ".join(items) + "\n"
        else:
            text = "senders: []\n"
        body = body[:at] + text + body[at + len(mark) :]
    return (head + body).encode("utf-8")


PYINFRA_INVENTORY: Final = '''\
"""pyinfra inventory written by `msib inventory build`: do not edit, build again.

A view of this directory (the one model): the same hosts, groups and data as hosts.yml, read by
msib.contract, msib's one reader of an inventory (msib must be importable where pyinfra runs).
Linux appliances only; vendor firewalls (group `netdev`) are driven with netmiko, not pyinfra.

    pyinfra DIR/pyinfra_inventory.py deploy/collector.py
"""

import os as _os

from msib.contract import load as _load

for _name, _hosts in _load(_os.path.dirname(_os.path.abspath(__file__))).pyinfra_groups().items():
    globals()[_name] = _hosts
'''


def _json_bytes(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"


_OBJECTS_BATCH: Final = 2000  # rows per piece written: ~1.4 MB, reused memory rather than fresh pages
_COLUMN_CHUNK: Final = 26_000  # rows whose columns are encoded at once (a 50,000-row appendix: two)

#: The keys of an ``objects.json`` entry after ``ip``, whose values are few and are encoded together:
#: the five OS fields (they follow from the OS as typed), the circuit, the source's file and sheet.
_OS_KEYS: Final = ("os", "os_raw", "os_family", "os_eol", "os_eol_date")
_TAIL_KEYS: Final = (*_OS_KEYS, "circuit", "file", "sheet")


def _json_values(values: Sequence[Any], prefix: bytes = b"", suffix: bytes = b"") -> list[bytes]:
    """Each value as ``prefix + JSON + suffix`` (the JSON as orjson writes it), encoded once per distinct value.

    The distinct strings are encoded in one orjson call (see :func:`_json_strings`); a column holding
    other values than strings and None is encoded value by value (``1 == True`` in a dict).
    """
    distinct = set(values)
    strings = [v for v in distinct if type(v) is str]
    if len(strings) + (None in distinct) < len(distinct):
        return [prefix + orjson.dumps(v) + suffix for v in values]
    texts: dict[str | None, bytes] = {None: prefix + b"null" + suffix}
    texts.update(zip(strings, [b'%b"%b"%b' % (prefix, p, suffix) for p in _json_strings(strings)], strict=True))
    return list(map(texts.__getitem__, values))


def _json_strings(values: Sequence[str]) -> list[bytes]:
    """The JSON text of each string without its quotes, all encoded in one orjson call.

    ``orjson.dumps(values)`` is split at ``","``, which never occurs inside a JSON string (its
    quotes are escaped). A value that is not a string makes fewer pieces than values (or, alone,
    has no quotes around it): a TypeError.
    """
    if not values:
        return []
    data = orjson.dumps(values)
    pieces = data[2:-2].split(b'","')
    if len(pieces) != len(values) or data[1:2] != b'"' or data[-2:-1] != b'"':
        raise TypeError(f"not a string: {next(v for v in values if type(v) is not str)!r}")
    return pieces


def _json_tails(columns: Sequence[Sequence[Any]]) -> list[bytes]:
    """The end of each entry from ``ip``'s closing quote to the row number (the columns of
    :data:`_TAIL_KEYS`), encoded once per distinct combination of values.

    A column holding one value throughout (usually the file and the sheet) is left out of the
    combinations: fewer values to hash per row.
    """
    n = len(columns[0])
    varying = [k for k, column in enumerate(columns) if column.count(column[0]) != n]
    rows = list(zip(*(columns[k] for k in varying), strict=True)) if varying else []

    def encode(combo: tuple[Any, ...]) -> bytes:
        values = [column[0] for column in columns]
        for k, value in zip(varying, combo, strict=True):
            values[k] = value
        *os_values, circuit, file, sheet = values
        os_part = b",".join(b"%b:%b" % (orjson.dumps(k), orjson.dumps(v)) for k, v in zip(_OS_KEYS, os_values,
                                                                                        strict=True))
        return b'",%b,"circuit":%b,"source":{"file":%b,"sheet":%b,"row":' % (
            os_part, orjson.dumps(circuit), orjson.dumps(file), orjson.dumps(sheet))

    if not varying:
        return [encode(())] * n
    texts = {combo: encode(combo) for combo in set(rows)}
    return list(map(texts.__getitem__, rows))


def _json_ints(values: Sequence[int]) -> list[bytes]:
    """Each integer as JSON text, all encoded in one orjson call."""
    return orjson.dumps(values)[1:-1].split(b",") if values else []


def iter_objects_json(appendix: Appendix) -> Iterator[bytes]:
    """``objects.json`` in pieces: a JSON array with one object per line (greppable, diffable).

    Each entry is byte for byte ``orjson.dumps(AppendixObject.to_json())`` (a test holds it to
    that). The columns are encoded :data:`_COLUMN_CHUNK` rows at a time (each distinct value of a
    chunk once), then the lines are assembled by interleaving the columns with the constant text
    between them and joined a batch at a time: no Python code runs per row, and neither the JSON nor
    its encoded columns are ever held whole (200,000 rows stay within the memory of 50,000).
    """
    n = appendix.object_count
    if not n:
        yield b"[]\n"
        return
    yield b"[\n"
    for chunk in range(0, n, _COLUMN_CHUNK):
        end = min(chunk + _COLUMN_CHUNK, n)

        def col(name: str, chunk: int = chunk, end: int = end) -> Sequence[Any]:
            return appendix.column(name)[chunk:end]

        parts: list[list[bytes] | bytes] = [  # a column of texts, or a constant text
            _json_values(col("sb"), b'{"sb":', b',"department":'),
            _json_values(col("department")),
            b',"location":',
            _json_values(col("location")),
            b',"responsible":',
            _json_values(col("responsible")),
            b',"hostname":"',
            _json_strings(col("hostname")),
            b'","ip":"',
            _json_strings(col("ip")),
            _json_tails([col(k) for k in _TAIL_KEYS]),
            _json_ints(col("row")),
            b"}},\n",
        ]
        width = len(parts)
        for start in range(0, end - chunk, _OBJECTS_BATCH):
            stop = min(start + _OBJECTS_BATCH, end - chunk)
            pieces: list[bytes] = [b""] * (width * (stop - start))
            for k, part in enumerate(parts):
                pieces[k::width] = [part] * (stop - start) if isinstance(part, bytes) else part[start:stop]
            if chunk + stop == n:
                pieces[-1] = b"}}\n"
            yield b"".join(pieces)
        del parts
    yield b"]\n"


def render_objects_json(appendix: Appendix) -> bytes:
    """``objects.json`` as one piece of bytes (see :func:`iter_objects_json`)."""
    return b"".join(iter_objects_json(appendix))


def _counts(plan: SitePlan, appendix: Appendix) -> dict[str, Any]:
    by_reason: Counter[str] = Counter(r.reason for r in appendix.rejected)
    by_circuit: Counter[str] = Counter()
    by_family: Counter[str] = Counter()
    by_eol: Counter[bool | None] = Counter()
    for (circuit, family, eol, _, _), n in appendix.stats.items():
        by_circuit[circuit] += n
        by_family[family] += n
        by_eol[eol] += n
    skipped: Counter[str] = Counter(s.kind for s in appendix.skipped)
    return {
        "data_rows": appendix.data_rows,
        "objects": appendix.object_count,
        "rejected": len(appendix.rejected),
        "excluded": by_reason["excluded"],
        "by_reason": {r: by_reason[r] for r in REASONS},
        "by_circuit": {c: by_circuit[c] for c in plan.circuits},
        "by_os_family": {f: by_family[f] for f in OS_FAMILIES},
        "os_eol": by_eol[True],
        "os_eol_unknown": by_eol[None],
        "appliances": sum(1 for _ in plan.appliances()),
        "skipped_rows": {k: skipped[k] for k in sorted(skipped)},
    }


def _eol_groups(appendix: Appendix) -> list[dict[str, Any]]:
    groups: Counter[tuple[str, str | None]] = Counter()
    for (_, _, eol, name, date), n in appendix.stats.items():
        if eol is True:
            groups[name or "", date] += n
    return [
        {"os": name, "eol_date": date, "objects": n}
        for (name, date), n in sorted(groups.items(), key=lambda kv: (kv[0][1] or "", kv[0][0]))
    ]


def report_data(plan: SitePlan, appendix: Appendix) -> dict[str, Any]:
    """The content of ``report.json``."""
    return {
        "sb": {"code": plan.code, "state_body": plan.state_body},
        "as_of": appendix.as_of.isoformat(),
        "inputs": [i.to_json() for i in appendix.inputs],
        "sheets": [s.to_json() for s in appendix.sheets],
        "counts": _counts(plan, appendix),
        "os_eol": _eol_groups(appendix),
        "rejected": [r.to_json() for r in appendix.rejected],
        "warnings": [w.to_json() for w in appendix.warnings],
        "skipped": [s.to_json() for s in appendix.skipped],
    }


def _where(file: str, sheet: str | None, row: int) -> str:
    if sheet is None:
        return f"{file}, line {row}"
    return f"{file}, sheet {sheet}, row {row}"


def _gather[T](seq: Sequence[T], indexes: Sequence[int]) -> list[T]:
    """`[seq[i] for i in indexes]`, at C speed (tens of thousands of rows)."""
    if len(indexes) == len(seq):
        return list(seq)  # the indexes are always increasing: all of them means every item
    if len(indexes) < 2:
        return [seq[i] for i in indexes]
    return list(itemgetter(*indexes)(seq))


def _eol_object_lines(appendix: Appendix) -> list[str]:
    """The table rows of ``report.md`` naming each object past end of life (OS text and place made
    Markdown once per distinct value)."""
    col = appendix.column
    past = list(compress(range(appendix.object_count), map(is_, col("os_eol"), repeat(True))))
    if not past:
        return []
    raw_md = {raw: _md(raw) for raw in set(_gather(col("os_raw"), past))}
    where_md: dict[tuple[str, str | None], str] = {}
    for file, sheet in set(zip(_gather(col("file"), past), _gather(col("sheet"), past), strict=True)):
        where_md[file, sheet] = _md(_where(file, sheet, 0)).removesuffix(" 0")
    return [
        f"| {host} | {ip} | {circuit} | {raw_md[raw]} | {where_md[file, sheet]} {row} |"
        for host, ip, circuit, raw, file, sheet, row in zip(
            *(_gather(col(name), past) for name in ("hostname", "ip", "circuit", "os_raw", "file", "sheet", "row")),
            strict=True,
        )
    ]


def render_report_md(plan: SitePlan, appendix: Appendix, data: Mapping[str, Any]) -> bytes:
    """``report.md``: the report for a person."""
    counts = data["counts"]
    out: list[str] = [
        f"# Inventory report: {md_text(plan.state_body)} ({md_code(plan.code)})",
        "",
        f"As of {appendix.as_of.isoformat()} (decides which operating systems are past end of life).",
        "",
    ]
    if appendix.inputs:
        out += ["Read:", ""]
        for inp in appendix.inputs:
            extra = f", {inp.encoding}, delimiter {inp.delimiter!r}" if inp.format == "csv" else ""
            out.append(f"- {md_code(inp.file)} ({inp.format}{extra}; sha256 {inp.sha256[:12]})")
        out.append("")
    else:
        out += ["No appendix given: the inventory holds the site plan's appliances only.", ""]
    out += [
        f"**{counts['objects']} objects** accepted of {counts['data_rows']} data rows; "
        f"**{counts['rejected'] - counts['excluded']} rejected**, {counts['excluded']} excluded by the site plan; "
        f"{counts['appliances']} appliances.",
        "",
        "## Objects per circuit",
        "",
        "| circuit | objects | " + " | ".join(OS_FAMILIES) + " | past end of life | end of life unknown |",
        "|---|---:|" + "---:|" * len(OS_FAMILIES) + "---:|---:|",
    ]
    fam_by: Counter[tuple[str, str]] = Counter()
    eol_by: Counter[tuple[str, bool | None]] = Counter()
    for (circ, family, past, _, _), n in appendix.stats.items():
        fam_by[circ, family] += n
        eol_by[circ, past] += n
    for cname in plan.circuits:
        fam = {f: fam_by[cname, f] for f in OS_FAMILIES}
        objs = sum(fam.values())
        n_eol, n_unknown = eol_by[cname, True], eol_by[cname, None]
        out.append(
            f"| {cname} | {objs} | " + " | ".join(str(fam[f]) for f in OS_FAMILIES) + f" | {n_eol} | {n_unknown} |"
        )
    fam_all = counts["by_os_family"]
    out.append(
        f"| **all** | {counts['objects']} | " + " | ".join(str(fam_all[f]) for f in OS_FAMILIES)
        + f" | {counts['os_eol']} | {counts['os_eol_unknown']} |"
    )
    out += ["", "## Operating systems past end of life", ""]
    if not counts["os_eol"]:
        out += ["None.", ""]
    else:
        out += ["| OS | end of life | objects |", "|---|---|---:|"]
        for g in data["os_eol"]:
            out.append(f"| {_md(g['os'])} | {g['eol_date']} | {g['objects']} |")
        out += ["", "| hostname | IP | circuit | OS as typed | where |", "|---|---|---|---|---|"]
        out += _eol_object_lines(appendix)
        out.append("")
    out += ["## Rejected rows", ""]
    if not appendix.rejected:
        out += ["None: every data row became an object.", ""]
    else:
        by_reason = counts["by_reason"]
        out.append(", ".join(f"`{r}` {n}" for r, n in by_reason.items() if n) + ".")
        out += ["", "| where | column | reason | value | what is wrong and what to do |", "|---|---|---|---|---|"]
        for r in appendix.rejected:
            value = "" if r.reason == "excluded" else _md(r.value)
            out.append(
                f"| {_md(_where(r.file, r.sheet, r.row))} | {r.column or ''} | `{r.reason}` | {value} | "
                f"{_md(r.message)} |"
            )
        out.append("")
    if appendix.warnings:
        out += ["## Worth a look", ""]
        for w in appendix.warnings:
            rows = "; ".join(_where(s.file, s.sheet, s.row) for s in w.rows)
            out.append(f"- `{w.code}`: {_md(w.message)} ({_md(rows)})")
        out.append("")
    skipped = counts["skipped_rows"]
    if skipped:
        out += [
            "## Rows skipped on purpose",
            "",
            "Not objects: " + ", ".join(f"{k} {n}" for k, n in skipped.items())
            + " (each listed in report.json under `skipped`).",
            "",
        ]
    unmapped = [s for s in appendix.sheets if s.unmapped]
    if unmapped:
        out += ["## Columns not understood", "",
                "Read as no field of the form (their cells are in no output); rename them as in the form if they "
                "hold one:", ""]
        for s in unmapped:
            place = md_cell(s.file if s.sheet is None else f"{s.file}, sheet {s.sheet}")
            cols = "; ".join(f"{letter} {md_code(header)}" for letter, header in s.unmapped)
            out.append(f"- {place}, header row {s.header_row}: {cols}")
        out.append("")
    hidden = [s for s in appendix.sheets if s.status in ("hidden", "not_a_worksheet")]
    if hidden:
        out.append("Sheets not read: " + ", ".join(f"{_md(s.sheet)} ({s.status})" for s in hidden) + ".")
        out.append("")
    return ("\n".join(out).rstrip("\n") + "\n").encode("utf-8")


def render_site_json(plan: SitePlan) -> bytes:
    """``site.json``: the validated site plan without `excluded`."""
    data = plan.model_dump(mode="json", exclude={"excluded"})
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def iter_inventory_files(
    plan: SitePlan, appendix: Appendix, *, ssh: SshSettings | None = None, site_dir: Path | None = None
) -> Iterator[tuple[str, bytes | Iterable[bytes]]]:
    """Render the inventory files one by one, the largest (objects.json, itself in pieces) first.

    A generator, so that :func:`write_atomically` can write one file while the next is rendered.
    """
    yield "objects.json", iter_objects_json(appendix)
    yield "hosts.yml", render_hosts_yml(inventory_model(plan, appendix, ssh=ssh, site_dir=site_dir))
    yield "pyinfra_inventory.py", PYINFRA_INVENTORY.encode("utf-8")
    report = report_data(plan, appendix)
    yield "report.json", _json_bytes(report)
    yield "report.md", render_report_md(plan, appendix, report)
    yield "site.json", render_site_json(plan)

