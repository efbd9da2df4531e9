"""The quarterly appendix ("Сведения об объекте МСИБ"): what SB staff type into Excel, as typed records.

Two steps, each usable alone:

* :func:`read_appendix` reads one `.xlsx` (python-calamine; merged cells filled from their top-left
  value) or `.csv` (encoding and delimiter detected) into :class:`Table` objects: the header row is
  found by content (Russian, Kazakh or English), title / column-number / footer / empty rows are
  skipped (and listed), and each data row keeps its circuit (from a section row or the sheet) and
  its place (file, sheet, Excel row; the column letters are the table's).
* :func:`check_rows` normalises and validates those rows against the site plan: every non-blank
  data row becomes either an :class:`AppendixObject` or a :class:`Rejection` with a reason code of
  ``outputs.md``. Exclusions of the site plan win over everything.

:func:`load_appendices` does both for a list of files. An unusable file (unreadable, no header row,
a sheet with none of the expected columns) is an :class:`~msib.errors.InputError`.

Example:
    >>> plan = load_site("inventories/lab/site.yml")                         # doctest: +SKIP
    >>> app = load_appendices(["inventories/lab/appendix.xlsx"], plan)       # doctest: +SKIP
    >>> len(app.objects), {r.reason for r in app.rejected}                   # doctest: +SKIP
    (33, {'invalid_ip', 'duplicate_ip', ...})
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import fnmatch
import hashlib
import io
import ipaddress
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from itertools import chain, compress, count, groupby, repeat
from operator import itemgetter, le, ne, not_, or_, rshift
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, cast, get_args

import yaml

from msib.errors import InputError
from msib.site import CIRCUITS, CircuitName, SitePlan

# --- closed sets ------------------------------------------------------------------------------------

Field = Literal["no", "sb", "department", "location", "responsible", "hostname", "ip", "os"]
DataField = Literal["sb", "department", "location", "responsible", "hostname", "ip", "os"]
DATA_FIELDS: Final[tuple[DataField, ...]] = get_args(DataField)

Reason = Literal[
    "invalid_ip",
    "missing_ip",
    "missing_hostname",
    "invalid_hostname",
    "duplicate_ip",
    "duplicate_row",
    "outside_circuit",
    "excluded",
    "unknown_state_body",
    "no_circuit",
]
#: Every reason code, in the order of ``outputs.md`` (stable: add new ones, never rename).
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)

OsFamily = Literal["windows", "linux", "network", "other"]
OS_FAMILIES: Final[tuple[OsFamily, ...]] = get_args(OsFamily)

#: Rows that are not objects and are skipped on purpose (listed in the report, never silent).
SkipKind = Literal["title", "header", "column_numbers", "section", "footer", "no_data"]
SheetStatus = Literal["read", "empty", "hidden", "not_a_worksheet"]

XLSX_SUFFIXES: Final = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
CSV_SUFFIXES: Final = (".csv", ".txt")

# --- records ----------------------------------------------------------------------------------------

#: A cell as the readers give it: text, or (xlsx) a number, bool, date or time.
Cell = str | int | float | bool | dt.date | dt.datetime | dt.time | dt.timedelta | None


@dataclass(frozen=True, slots=True)
class Source:
    """Where a row came from: the file, the sheet (None for CSV) and the row as Excel shows it."""

    file: str
    sheet: str | None
    row: int

    def describe(self) -> str:
        """`row 12 of sheet 'Лист1' in a.xlsx` / `line 12 of a.csv`."""
        if self.sheet is None:
            return f"line {self.row} of {self.file}"
        return f"row {self.row} of sheet {self.sheet!r} in {self.file}"

    def to_json(self) -> dict[str, Any]:
        """The JSON form: `{file, sheet, row}`."""
        return {"file": self.file, "sheet": self.sheet, "row": self.row}


@dataclass(frozen=True, slots=True)
class CellSource:
    """One cell's place: file, sheet (None for CSV), Excel row (CSV line) and column letter."""

    file: str
    sheet: str | None
    row: int
    column: str


@dataclass(frozen=True, slots=True)
class OsInfo:
    """An OS as classified by the OS table (``msib/data/os_families.yml``)."""

    name: str | None  # the table's name ("Windows 10"), or the text as typed when unknown
    family: OsFamily
    eol_date: dt.date | None  # the vendor's last day of support, when known
    eol: bool | None  # past end of life on the `as_of` date; None when unknown


@dataclass(frozen=True, slots=True)
class AppendixObject:
    """One accepted object of the appendix (an entry of ``objects.json``)."""

    sb: str
    department: str | None
    location: str | None
    responsible: str | None
    hostname: str
    ip: str
    os: str | None
    os_raw: str | None
    os_family: OsFamily
    os_eol: bool | None
    os_eol_date: str | None
    circuit: CircuitName
    source: Source

    def to_json(self) -> dict[str, Any]:
        """The ``objects.json`` entry (fixed key order)."""
        return {
            "sb": self.sb,
            "department": self.department,
            "location": self.location,
            "responsible": self.responsible,
            "hostname": self.hostname,
            "ip": self.ip,
            "os": self.os,
            "os_raw": self.os_raw,
            "os_family": self.os_family,
            "os_eol": self.os_eol,
            "os_eol_date": self.os_eol_date,
            "circuit": self.circuit,
            "source": {"file": self.source.file, "sheet": self.source.sheet, "row": self.source.row},
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that did not become an object: where it is, why, and (unless excluded) what it held."""

    file: str
    sheet: str | None
    row: int
    column: str | None
    reason: Reason
    message: str
    value: str | None = None
    duplicate_of: Source | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``report.json`` entry; an excluded row carries no value and nothing that names it."""
        out: dict[str, Any] = {
            "file": self.file,
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "reason": self.reason,
            "message": self.message,
        }
        if self.reason != "excluded":
            out["value"] = self.value
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of.to_json()
        return out


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A non-empty row that is not an object on purpose (title, section, footer, ...)."""

    file: str
    sheet: str | None
    row: int
    kind: SkipKind

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sheet": self.sheet, "row": self.row, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class SheetInfo:
    """What the reader made of one sheet (or of a CSV file: sheet None)."""

    file: str
    sheet: str | None
    status: SheetStatus
    header_row: int | None = None
    circuit: CircuitName | None = None  # named by the sheet title or a section row above the header
    data_rows: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sheet": self.sheet,
            "status": self.status,
            "header_row": self.header_row,
            "circuit": self.circuit,
            "data_rows": self.data_rows,
        }


@dataclass(frozen=True, slots=True)
class InputFile:
    """One appendix file as read: format, detected encoding/delimiter (CSV) and content hash."""

    file: str
    format: Literal["xlsx", "csv"]
    sha256: str
    encoding: str | None = None
    delimiter: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "sha256": self.sha256,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
        }


@dataclass(frozen=True, slots=True)
class Warning_:
    """Not an error, but worth a look (accepted objects only: never names an excluded one)."""

    code: Literal["hostname_on_several_ips"]
    message: str
    rows: tuple[Source, ...]

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "rows": [s.to_json() for s in self.rows]}


class RawRow(NamedTuple):
    """One data row as read: Excel row (CSV line), circuit, then the seven field cells as the reader
    gave them (text, or a number/date from Excel: see :func:`cell_text`; ``""`` when empty)."""

    row: int
    circuit: CircuitName | None
    sb: Cell
    department: Cell
    location: Cell
    responsible: Cell
    hostname: Cell
    ip: Cell
    os: Cell

    def text(self, name: DataField) -> str:
        """One field cell as text."""
        return cell_text(getattr(self, name))


@dataclass(frozen=True)
class Table:
    """One header row and the data rows under it (a sheet of a workbook, or a CSV file).

    Stored by column (fast to check in bulk): `row_numbers[i]`, `circuits[i]` and
    `cells[field][i]` describe data row `i`; :attr:`rows` gives the same as :class:`RawRow`.
    """

    file: str
    sheet: str | None
    header_row: int
    columns: Mapping[Field, str]  # field -> column letter, for the fields the header has
    row_numbers: Sequence[int]
    circuits: Sequence[CircuitName | None]
    cells: Mapping[DataField, Sequence[Cell]]

    def __len__(self) -> int:
        return len(self.row_numbers)

    @cached_property
    def rows(self) -> tuple[RawRow, ...]:
        """The data rows, one :class:`RawRow` each."""
        cols = [self.cells[f] for f in DATA_FIELDS]
        return tuple(RawRow(*values) for values in zip(self.row_numbers, self.circuits, *cols, strict=True))

    def column(self, name: Field) -> str | None:
        """The column letter of field `name`, or None when the header has no such column."""
        return self.columns.get(name)

    def source(self, row: RawRow) -> Source:
        """Where `row` is."""
        return Source(self.file, self.sheet, row.row)

    def cell(self, row: RawRow, name: Field) -> CellSource | None:
        """Where one cell of `row` is (None when the header has no such column)."""
        col = self.columns.get(name)
        return None if col is None else CellSource(self.file, self.sheet, row.row, col)


@dataclass(frozen=True)
class ReadResult:
    """Everything read from one file."""

    input: InputFile
    tables: tuple[Table, ...]
    sheets: tuple[SheetInfo, ...]
    skipped: tuple[SkippedRow, ...]


#: One accepted object, compact: the fields of :class:`AppendixObject` in order, then the source's
#: file, sheet and row.
ObjectRow = tuple[
    str, str | None, str | None, str | None, str, str, str | None, str | None, OsFamily, bool | None,
    str | None, CircuitName, str, str | None, int,
]

#: The keys of an ``objects.json`` entry (then ``source``: file, sheet, row).
OBJECT_KEYS: Final = (
    "sb", "department", "location", "responsible", "hostname", "ip", "os", "os_raw", "os_family",
    "os_eol", "os_eol_date", "circuit",
)
#: The columns of :attr:`Appendix.columns`: the object keys, then the source's.
OBJECT_COLUMNS: Final = (*OBJECT_KEYS, "file", "sheet", "row")


def object_dicts(rows: Iterable[ObjectRow]) -> list[dict[str, Any]]:
    """``objects.json`` entries of compact rows (the same as :meth:`AppendixObject.to_json`)."""
    return [
        {
            "sb": sb, "department": dep, "location": loc, "responsible": resp, "hostname": host,
            "ip": ip, "os": os_, "os_raw": raw, "os_family": fam, "os_eol": eol, "os_eol_date": eol_date,
            "circuit": circuit, "source": {"file": file, "sheet": sheet, "row": row},
        }
        for sb, dep, loc, resp, host, ip, os_, raw, fam, eol, eol_date, circuit, file, sheet, row in rows
    ]


@dataclass(frozen=True)
class Appendix:
    """All appendix files of one build, checked against the site plan.

    The accepted objects are kept by column (:attr:`columns`, keys :data:`OBJECT_COLUMNS`), which
    is what a 50,000-row appendix can afford; :attr:`objects` gives them as records.
    """

    as_of: dt.date
    inputs: tuple[InputFile, ...]
    sheets: tuple[SheetInfo, ...]
    columns: Mapping[str, Sequence[Any]]
    rejected: tuple[Rejection, ...]
    skipped: tuple[SkippedRow, ...]
    warnings: tuple[Warning_, ...] = field(default=())

    def column(self, name: str) -> Sequence[Any]:
        """One column of the accepted objects (a key of :data:`OBJECT_COLUMNS`)."""
        return self.columns[name]

    @property
    def object_count(self) -> int:
        """How many objects were accepted."""
        return len(self.columns["ip"])

    @cached_property
    def object_rows(self) -> tuple[ObjectRow, ...]:
        """The accepted objects as compact tuples (see :data:`ObjectRow`)."""
        return tuple(zip(*(self.columns[c] for c in OBJECT_COLUMNS), strict=True))

    @cached_property
    def objects(self) -> tuple[AppendixObject, ...]:
        """The accepted objects, in file/sheet/row order."""
        return tuple(
            AppendixObject(*row[:12], Source(row[12], row[13], row[14]))
            for row in self.object_rows
        )

    def object_dicts(self) -> list[dict[str, Any]]:
        """The ``objects.json`` entries (the same as ``[o.to_json() for o in objects]``, faster)."""
        return object_dicts(self.object_rows)

    @property
    def data_rows(self) -> int:
        """Non-blank data rows seen: each is an object or a rejection."""
        return self.object_count + len(self.rejected)

    @cached_property
    def stats(self) -> Counter[tuple[CircuitName, OsFamily, bool | None, str | None, str | None]]:
        """Objects counted by (circuit, OS family, past end of life, OS name, end-of-life date)."""
        c = self.columns
        return Counter(zip(c["circuit"], c["os_family"], c["os_eol"], c["os"], c["os_eol_date"], strict=True))


# --- text helpers -----------------------------------------------------------------------------------

_WS_RE: Final = re.compile(r"\s+")
_CYRILLIC_RE: Final = re.compile(r"[\u0400-\u04ff]")


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


# --- header, section and footer recognition ---------------------------------------------------------

# Tried in this order on each folded header cell; the first that matches names the column.
_HEADER_PATTERNS: Final[tuple[tuple[Field, re.Pattern[str]], ...]] = (
    ("ip", re.compile(r"(?<![a-zа-яәіңғүұқөһ])ip(?![a-zа-яәіңғүұқөһ])|ip-?адрес")),
    ("os", re.compile(r"операционн|операциялық|operating system|\bос\b|\bos\b")),
    (
        "hostname",
        re.compile(
            r"сетев\w* им|им\w* (компьютера|хоста|пк|устройства)|желілік атау|network name|host ?name"
            r"|computer name|dns[- ]им|dns name"
        ),
    ),
    (
        "responsible",
        re.compile(r"\bфио\b|ф\. ?и\. ?о|т\. ?а\. ?ә|\bтаә\b|responsible|full name|ответственн|жауапты"
                   r"|пользовател|пайдаланушы"),
    ),
    ("location", re.compile(r"месторасположен|местоположен|расположен|орналасқан|location")),
    ("department", re.compile(r"подразделен|бөлімше|department|structural unit|департамент|отдел")),
    (
        "sb",
        re.compile(r"государственн\w* орган|мемлекеттік орган|state body|госорган|government body"
                   r"|наименование организации|организация|ұйым"),
    ),
    ("no", re.compile(r"^(№|n|no|#)\.?( п/п)?$|п/п|р/с|^№")),
)

_INTERNAL: Final = r"внутренн|внутр\.|ішкі|ишки|internal|inner"
_EXTERNAL: Final = r"внешн|внеш\.|сыртқы|сырткы|external|outer"
_SECTION_CONTEXT: Final = re.compile(r"контур|сет[ьи]|желі|жели|circuit|network|\blan\b|сегмент|segment")
_INTERNAL_RE: Final = re.compile(_INTERNAL)
_EXTERNAL_RE: Final = re.compile(_EXTERNAL)
_SHEET_INTERNAL_RE: Final = re.compile(_INTERNAL + r"|^внутр|^int\b|\bвн\.? ?контур")
_SHEET_EXTERNAL_RE: Final = re.compile(_EXTERNAL + r"|^внеш|^ext\b|\bвнеш\.? ?контур")

_FOOTER_RE: Final = re.compile(
    r"подпис|руководител|исполнител|м\.\s?п\.|итого|всего|примечани|дата заполн|телефон|тел\.|"
    r"қолы|басшы|орындаушы|барлығы|ескерту|signature|signed|head of|prepared by|executed by|"
    r"\btotal\b|\bnote\b|\bphone\b|^\*"
)


def header_field(text: str) -> Field | None:
    """The appendix column a header cell names, or None (Russian, Kazakh or English, any case)."""
    folded = _fold(text)
    if not folded or len(folded) > 300:
        return None
    for name, pattern in _HEADER_PATTERNS:
        if pattern.search(folded):
            return name
    return None


def section_circuit(text: str) -> CircuitName | None:
    """The circuit a section row names (`Локальная сеть внутреннего контура` -> internal), or None."""
    folded = _fold(text)
    if len(folded) > 200 or not _SECTION_CONTEXT.search(folded):
        return None
    internal = bool(_INTERNAL_RE.search(folded))
    external = bool(_EXTERNAL_RE.search(folded))
    if internal == external:  # neither, or both (ambiguous): not a section row
        return None
    return "internal" if internal else "external"


def sheet_circuit(title: str) -> CircuitName | None:
    """The circuit a sheet title names (`Внутренний контур`, `Ішкі`, `External`), or None."""
    folded = _fold(title)
    internal = bool(_SHEET_INTERNAL_RE.search(folded))
    external = bool(_SHEET_EXTERNAL_RE.search(folded))
    if internal == external:
        return None
    return "internal" if internal else "external"


def _header_map(row: Sequence[object]) -> dict[Field, int]:
    found: dict[Field, int] = {}
    for i, value in enumerate(row):
        if type(value) is str and value:
            name = header_field(value)
            if name is not None and name not in found:
                found[name] = i
    return found


def _is_header(found: Mapping[Field, int]) -> bool:
    return "ip" in found and "hostname" in found and len(found) >= 3


_EXPECTED_HEADERS: Final = (
    "expected a header row with at least the columns 'Сетевое имя рабочей станции/серверного оборудования' "
    "(network name) and 'IP-адрес' (IP address) of the appendix form"
)


def _find_header(rows: Sequence[Sequence[object]]) -> tuple[int, dict[Field, int]] | tuple[None, dict[Field, int]]:
    """The index of the header row and its columns; or (None, the best near-miss found)."""
    best: dict[Field, int] = {}
    for i, row in enumerate(rows):
        if not any(type(v) is str and v for v in row):
            continue
        found = _header_map(row)
        if _is_header(found):
            return i, found
        if len(found) > len(best):
            best = found
    return None, best


def _is_column_numbers(own: set[object]) -> bool:
    """True for the row of column numbers `1 2 3 … 8` under the header."""
    numbers: list[int] = []
    for value in own:
        if isinstance(value, bool):
            return False
        if isinstance(value, str):
            text = value.strip()
            value = int(text) if text.isascii() and text.isdigit() and len(text) <= 3 else -1
        if isinstance(value, (int, float)) and 0 < value < 100 and float(value).is_integer():
            numbers.append(int(value))
        else:
            return False
    return len(numbers) >= 3 and sorted(numbers) == list(range(1, len(numbers) + 1))


def _is_footer_text(own: Iterable[object]) -> bool:
    return any(type(v) is str and _FOOTER_RE.search(_fold(v)) for v in own)


def _hostname_like(text: str) -> bool:
    t = text.strip()
    return bool(t) and not _CYRILLIC_RE.search(t) and not _WS_RE.search(t)


# --- reading ----------------------------------------------------------------------------------------

def _gather[T](seq: Sequence[T], indexes: Sequence[int]) -> list[T]:
    """`[seq[i] for i in indexes]`, at C speed (tens of thousands of rows)."""
    if len(indexes) == len(seq):
        return list(seq)  # the indexes are always increasing: all of them means every item
    if len(indexes) < 2:
        return [seq[i] for i in indexes]
    return list(itemgetter(*indexes)(seq))


class _Filled:
    """Which cells of a sheet hold a value copied in from a merged block (not typed in that row).

    Looked up only for the few rows that are not plainly data rows, so it stores the blocks, bucketed
    by row, rather than one entry per filled cell.
    """

    _BUCKET: Final = 256

    def __init__(self) -> None:
        self._blocks: list[tuple[int, int, int, int]] = []  # top, bottom, left, right (inclusive)
        self._buckets: dict[int, list[int]] = {}

    def add(self, top: int, bottom: int, left: int, right: int) -> None:
        k = len(self._blocks)
        self._blocks.append((top, bottom, left, right))
        for bucket in range(top // self._BUCKET, bottom // self._BUCKET + 1):
            self._buckets.setdefault(bucket, []).append(k)

    def get(self, row: int) -> set[int] | None:
        """The columns of `row` whose value came from a merge, or None."""
        ks = self._buckets.get(row // self._BUCKET)
        if not ks:
            return None
        cols: set[int] = set()
        for k in ks:
            top, bottom, left, right = self._blocks[k]
            if top <= row <= bottom:
                cols.update(range(left, right + 1))
                if row == top:
                    cols.discard(left)
        return cols or None


def _own_values(row: Sequence[object], filled: set[int] | None) -> set[object]:
    """The non-empty values typed in the row itself (not copied in from a merged block)."""
    if filled is None:
        own = set(row)
        own.discard("")
        own.discard(None)
        return own
    return {v for j, v in enumerate(row) if j not in filled and v != "" and v is not None}


def _scan(
    rows: list[list[Any]],
    numbers: Sequence[int],
    *,
    file: str,
    sheet: str | None,
    col_base: int,
    filled: _Filled,
) -> tuple[Table | None, SheetInfo, list[SkippedRow]]:
    """Find the header of one sheet (or CSV) and turn the rows under it into :class:`RawRow`.

    `rows` already hold merged values in every cell of their block; `filled` says which cells got
    theirs from a merge (they do not make an otherwise empty row a data row).
    """
    title_circuit = sheet_circuit(sheet) if sheet is not None else None
    if not any(_own_values(r, filled.get(i)) for i, r in enumerate(rows)):
        return None, SheetInfo(file, sheet, "empty", circuit=title_circuit), []
    h_idx, cols = _find_header(rows)
    where = f"sheet {sheet!r}" if sheet is not None else None
    if h_idx is None:
        if cols:
            names = ", ".join(sorted(cols))
            missing = " and ".join(f for f in ("hostname", "ip") if f not in cols) or "enough columns"
            msg = f"no header row found: the best candidate has {names} but no {missing}"
        else:
            msg = "no header row found: none of the appendix form's columns were recognised"
        raise InputError(file, msg, where=where, fix=_EXPECTED_HEADERS + "; add it, or remove the sheet")

    skipped: list[SkippedRow] = []
    circuit: CircuitName | None = title_circuit
    for i in range(h_idx):
        own = _own_values(rows[i], filled.get(i))
        if not own:
            continue
        only = next(iter(own))
        named = section_circuit(only) if len(own) == 1 and type(only) is str else None
        if named is not None:
            circuit = named
            skipped.append(SkippedRow(file, sheet, numbers[i], "section"))
        else:
            skipped.append(SkippedRow(file, sheet, numbers[i], "title"))
    top_circuit = circuit

    width = max(map(len, rows))
    # a column the header lacks reads as a sentinel "" cell appended past the widest row
    index = [cols.get(f, width) for f in DATA_FIELDS]
    need = max(index)
    ip_i = cols["ip"]
    host_i = cols["hostname"]
    os_i = cols.get("os", width)
    first = h_idx + 1
    body = rows[first:]
    if body and min(map(len, body)) <= need:
        for r in body:
            if len(r) <= need:
                r.extend([""] * (need + 1 - len(r)))
    # the common row, found for all rows at once: an IP-looking cell makes a data row, whatever else
    # it holds; only the other rows (sections, footers, empty, broken) are looked at one by one
    odd = [k for k, v in enumerate(map(itemgetter(ip_i), body))
           if not (type(v) is str and len(v) > 6 and v[0].isdigit())]
    is_data = [True] * len(body)
    changes: list[tuple[int, CircuitName | None]] = [(first, circuit)]  # the circuit from row index on
    footer = False
    for k in odd:
        is_data[k] = False  # until it is found to be one
        i = first + k
        r = rows[i]
        own = _own_values(r, filled.get(i))
        if not own:
            continue
        n = numbers[i]
        if len(own) == 1:
            only = next(iter(own))
            if type(only) is str:
                named = section_circuit(only)
                if named is not None:
                    changes.append((i, named))
                    footer = False
                    skipped.append(SkippedRow(file, sheet, n, "section"))
                    continue
        if _is_column_numbers(own):
            skipped.append(SkippedRow(file, sheet, n, "column_numbers"))
            continue
        ipv = r[ip_i]
        hv = r[host_i]
        if type(ipv) is str and type(hv) is str and header_field(ipv) == "ip" and header_field(hv) == "hostname":
            footer = False
            skipped.append(SkippedRow(file, sheet, n, "header"))
            continue
        if ipv == "" or ipv is None:
            osv = r[os_i]
            if (osv == "" or osv is None) and (hv == "" or hv is None or not _hostname_like(cell_text(hv))):
                if footer or _is_footer_text(own):
                    footer = True
                    skipped.append(SkippedRow(file, sheet, n, "footer"))
                    continue
                if all(r[j] == "" or r[j] is None for j in index):
                    skipped.append(SkippedRow(file, sheet, n, "no_data"))
                    continue
        is_data[k] = True
    # each data row takes the circuit of the last section row above it
    circuits: list[CircuitName | None] = []
    for (start, named), (stop, _) in zip(changes, [*changes[1:], (len(rows), None)], strict=True):
        circuits += [named] * is_data[start - first : stop - first].count(True)
    selected = list(compress(body, is_data))
    # every row is at least need+1 cells long here, so the transposition cuts off nothing we read
    by_column = list(zip(*selected, strict=False)) if selected else []
    cells: dict[DataField, Sequence[Cell]] = {
        f: by_column[j] if selected else () for f, j in zip(DATA_FIELDS, index, strict=True)
    }
    row_numbers = list(compress(numbers[first:], is_data))
    letters: dict[Field, str] = {f: column_letter(col_base + c) for f, c in sorted(cols.items(), key=lambda x: x[1])}
    table = Table(file, sheet, numbers[h_idx], letters, row_numbers, circuits, cells)
    info = SheetInfo(file, sheet, "read", header_row=numbers[h_idx], circuit=top_circuit, data_rows=len(selected))
    return table, info, skipped


def _fill_merged(data: list[list[Any]], ranges: Iterable[tuple[tuple[int, int], tuple[int, int]]],
                 origin: tuple[int, int]) -> _Filled:
    """Copy each merged block's top-left value into every empty cell of the block (in place)."""
    r0, c0 = origin
    filled = _Filled()
    for (top, left), (bottom, right) in ranges:
        rt, cl = top - r0, left - c0
        if not (0 <= rt < len(data)) or cl < 0 or cl >= len(data[rt]):
            continue
        value = data[rt][cl]
        if value == "" or value is None:
            continue
        last_row = min(bottom - r0, len(data) - 1)
        last_col = right - c0
        filled.add(rt, last_row, cl, last_col)
        block = data[rt : last_row + 1]
        for row in compress(block, map(le, map(len, block), repeat(last_col))):
            row.extend([""] * (last_col + 1 - len(row)))
        for cc in range(cl, last_col + 1):
            rows = block[1:] if cc == cl else block
            for row in compress(rows, map(_EMPTY_CELL.__contains__, map(itemgetter(cc), rows))):
                row[cc] = value
    return filled


_EMPTY_CELL: Final = ("", None)  # `cell in _EMPTY_CELL`: the cell is empty (== "" or is None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_xlsx(path: Path, name: str) -> ReadResult:
    from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    fix = "open it in Excel and save it again as .xlsx"
    try:
        sha = _sha256(path)
        wb = CalamineWorkbook.from_path(str(path))
    except OSError as exc:
        raise InputError(name, f"cannot read the file: {exc.strerror or exc}", fix="check the path") from None
    except BaseException as exc:  # calamine raises its own errors, and a pyo3 PanicException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise InputError(name, f"not a readable workbook ({_short(exc)})", fix=fix) from None
    tables: list[Table] = []
    sheets: list[SheetInfo] = []
    skipped: list[SkippedRow] = []
    sheet_name = None
    try:
        with wb:
            for meta in wb.sheets_metadata:
                sheet_name = meta.name
                if meta.typ != SheetTypeEnum.WorkSheet:
                    sheets.append(SheetInfo(name, meta.name, "not_a_worksheet"))
                    continue
                if meta.visible != SheetVisibleEnum.Visible:
                    sheets.append(SheetInfo(name, meta.name, "hidden"))
                    continue
                sheet = wb.get_sheet_by_name(meta.name)
                data: list[list[Any]] = sheet.to_python(skip_empty_area=True)
                r0, c0 = sheet.start or (0, 0)
                merged = sheet.merged_cell_ranges or ()
                del sheet  # the parsed sheet: only the Python lists are needed from here on
                filled = _fill_merged(data, merged, (r0, c0))
                numbers = range(r0 + 1, r0 + 1 + len(data))
                table, info, skip = _scan(data, numbers, file=name, sheet=meta.name, col_base=c0, filled=filled)
                del data
                sheets.append(info)
                skipped.extend(skip)
                if table is not None:
                    tables.append(table)
    except InputError:
        raise
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        where = f"sheet {sheet_name!r}" if sheet_name is not None else None
        raise InputError(name, f"not a readable workbook ({_short(exc)})", where=where, fix=fix) from None
    if not tables:
        raise InputError(name, "no sheet with the appendix table was found (every visible sheet is empty)",
                         fix="fill in the appendix form, or check that this is the right file")
    return ReadResult(InputFile(name, "xlsx", sha), tuple(tables), tuple(sheets), tuple(skipped))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text[:160] + "…" if len(text) > 160 else text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_CSV_DELIMITERS: Final = (";", ",", "\t", "|")
_CSV_FALLBACK_ENCODINGS: Final = ("cp1251", "cp866", "koi8_r")
_CSV_SAMPLE_LINES: Final = 200


def _csv_rows(text: str, delimiter: str, name: str) -> tuple[list[list[Any]], list[int]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=False)
    rows: list[list[Any]] = []
    numbers: list[int] = []
    last = 0
    try:
        for row in reader:
            rows.append(row)
            numbers.append(last + 1)
            last = reader.line_num
    except csv.Error as exc:
        raise InputError(name, f"not a readable CSV file ({exc})", where=f"line {last + 1}",
                         fix="export the appendix again from Excel as CSV") from None
    return rows, numbers


def _decodings(raw: bytes) -> list[tuple[str, str]]:
    """Candidate (text, encoding) pairs: a BOM decides; else UTF-8 if valid; else Cyrillic code pages."""
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return [(raw.decode(enc), enc)]
            except UnicodeDecodeError:
                return []
    try:
        return [(raw.decode("utf-8"), "utf-8")]
    except UnicodeDecodeError:
        pass
    out = []
    for enc in _CSV_FALLBACK_ENCODINGS:
        try:
            out.append((raw.decode(enc), enc))
        except UnicodeDecodeError:
            continue
    return out


def _read_csv(path: Path, name: str) -> ReadResult:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(name, f"cannot read the file: {exc.strerror or exc}", fix="check the path") from None
    if not raw.strip():
        raise InputError(name, "the file is empty", fix="export the filled-in appendix again")
    if b"\x00" in raw and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(name, "not a text (CSV) file: it holds NUL bytes",
                         fix="send the appendix as .xlsx, or export it from Excel as CSV")
    best: tuple[int, str, str, str] | None = None  # (fields found, text, encoding, delimiter)
    for text, encoding in _decodings(raw):
        sample = "\n".join(text.splitlines()[:_CSV_SAMPLE_LINES])
        for delimiter in _CSV_DELIMITERS:
            if delimiter not in sample:
                continue
            rows, _ = _csv_rows(sample, delimiter, name)
            h_idx, cols = _find_header(rows)
            if h_idx is not None and (best is None or len(cols) > best[0]):
                best = (len(cols), text, encoding, delimiter)
        if best is not None:
            break
    if best is None:
        tried = ", ".join(enc for _, enc in _decodings(raw)) or "UTF-8, cp1251, cp866, koi8-r"
        raise InputError(
            name,
            f"no header row found (tried encodings {tried}; delimiters ; , tab |)",
            fix=_EXPECTED_HEADERS + "; export the appendix from Excel as CSV",
        )
    _, text, encoding, delimiter = best
    rows, numbers = _csv_rows(text, delimiter, name)
    table, info, skipped = _scan(rows, numbers, file=name, sheet=None, col_base=0, filled=_Filled())
    sha = hashlib.sha256(raw).hexdigest()
    tables = (table,) if table is not None else ()
    return ReadResult(InputFile(name, "csv", sha, encoding, delimiter), tables, (info,), tuple(skipped))


def read_appendix(path: str | Path, *, name: str | None = None) -> ReadResult:
    """Read one appendix file into tables of raw rows (no site plan needed).

    Args:
        path: an `.xlsx` workbook (also `.xlsm`, `.xls`, `.xlsb`, `.ods`) or a `.csv` export.
        name: how reports name the file (default: `path` as given).

    Returns:
        The tables (one per sheet with a header, or one for a CSV), what each sheet was, and the
        rows skipped on purpose.

    Raises:
        InputError: unreadable file, unknown type, no header row, a sheet without the form's columns.

    Example:
        >>> read_appendix("appendix.csv").tables[0].columns["ip"]     # doctest: +SKIP
        'G'
    """
    path = Path(path)
    label = name if name is not None else str(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise InputError(label, "is a directory, not an appendix file", fix="name the .xlsx or .csv file")
    if not path.exists():
        raise InputError(label, "no such file", fix="check the path")
    if suffix in XLSX_SUFFIXES:
        return _read_xlsx(path, label)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, label)
    raise InputError(label, f"unsupported file type {suffix or '(none)'!r}",
                     fix="send the appendix as .xlsx or .csv")


# --- the OS table -----------------------------------------------------------------------------------


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
        """The first system whose pattern is found in the folded `text`."""
        folded = _fold(text).replace("_", " ")
        for entry in self.systems:
            if any(p.search(folded) for p in entry.patterns):
                return entry
        return None

    def family(self, text: str) -> OsFamily:
        """The family of `text` from the fallback patterns (`other` when none matches)."""
        folded = _fold(text).replace("_", " ")
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
_IP_SEP_RE: Final = re.compile(r"\s*([.,])\s*")
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


def _v4_host(value: int) -> None:
    first = value >> 24
    if first == 0 or first == 127 or first >= 224:
        raise ValueError("not a host address (0.x, loopback, multicast or reserved)")


def normalize_ip(text: str) -> IPValue:
    """Normalise an IP cell: stray spaces, zero-padded octets, commas for dots.

    Returns:
        The canonical address (`010.020.001.005` -> `10.20.1.5`, `10,20,1,77` -> `10.20.1.77`).

    Raises:
        ValueError: not one IPv4/IPv6 host address even after normalising (message says why).

    Example:
        >>> normalize_ip(" 010.020.001.005 ").text
        '10.20.1.5'
    """
    if _CANONICAL_IPV4_RE.fullmatch(text):  # the common case: already canonical
        value = int.from_bytes(socket.inet_aton(text), "big")
        _v4_host(value)
        return IPValue(text, value, 4)
    t = text.translate(_INVISIBLE).strip()
    if ":" in t:
        return _normalize_ipv6(t)
    m = _IPV4_RE.fullmatch(t)  # zero-padded octets: nothing else to fix
    if m is None:
        t = _IP_SEP_RE.sub(r"\1", t).replace(",", ".")
        m = _IPV4_RE.fullmatch(t)
    if m is None:
        if "/" in t:
            raise ValueError("a network or mask, not one host address")
        parts = t.split(".")
        if len(parts) != 4 and all(p.isascii() and p.isdigit() for p in parts):
            raise ValueError(f"{len(parts)} numbers instead of 4")
        raise ValueError("not an IPv4/IPv6 address")
    a, b, c, d = int(m[1]), int(m[2]), int(m[3]), int(m[4])
    if a > 255 or b > 255 or c > 255 or d > 255:
        raise ValueError("a number is greater than 255")
    value = (a << 24) | (b << 16) | (c << 8) | d
    _v4_host(value)
    return IPValue(f"{a}.{b}.{c}.{d}", value, 4)


def _normalize_ipv6(text: str) -> IPValue:
    t = text.strip("[]").split("%", 1)[0]
    if not t.isascii():
        raise ValueError("not an IPv4/IPv6 address")
    try:
        addr = ipaddress.IPv6Address(t)
    except ValueError:
        raise ValueError("not an IPv4/IPv6 address") from None
    if addr.ipv4_mapped is not None:
        return normalize_ip(str(addr.ipv4_mapped))
    if addr.is_unspecified or addr.is_loopback or addr.is_multicast:
        raise ValueError("not a host address (unspecified, loopback or multicast)")
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


def _rows_where(flags: Iterable[object]) -> list[int]:
    """The indexes of the true items of `flags` (at C speed)."""
    return list(compress(count(), flags))


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


def _check_hostnames(raw: Sequence[Cell]) -> tuple[list[str], list[int], dict[int, str]]:
    """Fold and validate a hostname column: (hostnames, rows missing or invalid, why invalid).

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
    errors: dict[int, str] = {}
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
            errors[i] = str(exc)
    return hosts, bad, errors


def _check_ips(raw: Sequence[Cell]) -> tuple[list[str | None], list[int], dict[int, int], dict[int, str]]:
    """Normalise and validate an IP column: (canonical texts, integers, rows without an IPv4 address
    and their version, why invalid).

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
    errors: dict[int, str] = {}
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
        except ValueError as exc:
            errors[i] = str(exc)
            continue
        ips[i], numbers[i] = parsed.text, parsed.value
        if parsed.version == 4:
            del no_v4[i]
        else:
            no_v4[i] = parsed.version
    return ips, numbers, no_v4, errors


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


def load_appendices(
    paths: Sequence[str | Path], plan: SitePlan, *, as_of: dt.date | None = None
) -> Appendix:
    """Read and check every appendix file of one SB.

    Args:
        paths: `.xlsx`/`.csv` files, any mix, in the order their rows should be taken (the first
            row of a duplicate keeps the object); may be empty.
        plan: the validated site plan.
        as_of: the day that decides what is past end of life (default: today).

    Returns:
        The :class:`Appendix`: objects, rejections, skipped rows, sheets and inputs.

    Raises:
        InputError: an unusable file (exit status 2 at the command line).
    """
    day = as_of or dt.date.today()
    reads = [read_appendix(p) for p in paths]
    return check_rows(reads, plan, as_of=day)


__all__ = [
    "CIRCUITS",
    "DATA_FIELDS",
    "OS_FAMILIES",
    "REASONS",
    "Appendix",
    "AppendixObject",
    "CellSource",
    "InputFile",
    "OsInfo",
    "RawRow",
    "ReadResult",
    "Rejection",
    "SheetInfo",
    "SkippedRow",
    "Source",
    "Table",
    "check_rows",
    "classify_os",
    "header_field",
    "load_appendices",
    "normalize_hostname",
    "normalize_ip",
    "read_appendix",
    "section_circuit",
    "sheet_circuit",
]
