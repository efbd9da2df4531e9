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
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from itertools import repeat
from operator import itemgetter
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

    width = max(len(r) for r in rows)
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
    ip_cells = list(map(itemgetter(ip_i), body))
    plain = [type(v) is str and len(v) > 6 and v[0].isdigit() for v in ip_cells]
    data_idx: list[int] = []  # indexes into `rows`
    changes: list[tuple[int, CircuitName | None]] = [(first, circuit)]  # the circuit from row index on
    footer = False
    for k in [k for k, ok in enumerate(plain) if not ok]:
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
        ipv = ip_cells[k]
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
        data_idx.append(i)
    plain_idx = [first + k for k, ok in enumerate(plain) if ok]
    data_idx = sorted(plain_idx + data_idx) if data_idx else plain_idx  # two increasing runs: a merge
    # each data row takes the circuit of the last section row above it
    circuits: list[CircuitName | None] = []
    for (start, named), (stop, _) in zip(changes, [*changes[1:], (len(rows), None)], strict=True):
        circuits += [named] * (bisect_left(data_idx, stop) - bisect_left(data_idx, start))
    selected = _gather(rows, data_idx)
    # every row is at least need+1 cells long here, so the transposition cuts off nothing we read
    by_column = list(zip(*selected, strict=False)) if selected else []
    cells: dict[DataField, Sequence[Cell]] = {
        f: by_column[j] if selected else () for f, j in zip(DATA_FIELDS, index, strict=True)
    }
    row_numbers = _gather(numbers, data_idx)
    letters: dict[Field, str] = {f: column_letter(col_base + c) for f, c in sorted(cols.items(), key=lambda x: x[1])}
    table = Table(file, sheet, numbers[h_idx], letters, row_numbers, circuits, cells)
    info = SheetInfo(file, sheet, "read", header_row=numbers[h_idx], circuit=top_circuit, data_rows=len(data_idx))
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
        for row in block:
            if len(row) <= last_col:
                row.extend([""] * (last_col + 1 - len(row)))
        for cc in range(cl, last_col + 1):
            for row in block[1:] if cc == cl else block:
                if row[cc] == "" or row[cc] is None:
                    row[cc] = value
    return filled


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

_MISSING: Final = "\x00"  # not a cell value: XML cannot hold NUL and CSV with NUL is refused


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Pass 1 over one table, by column: folded hostnames, parsed IPs, exclusion hits."""

    table: Table
    hosts: list[str]  # folded (normalised when valid)
    host_ok: list[bool]  # a valid network name
    host_errors: list[str | None]  # why it is not
    ips: list[str | None]  # canonical text, None when missing or invalid
    versions: list[int]  # 4 or 6; 0 when there is no valid IP
    numbers: list[int]  # the IP as an integer (0 when none)
    errors: list[str | None]  # why the IP is invalid
    excluded: list[bool]


_NEEDS_FOLDING: Final = re.compile(r"^\s|\s$|\s\s|[^\S ]")


def _text_or_none(value: Cell) -> str | None:
    """A free-text cell with stray spaces and line breaks folded; empty is None."""
    text = value if type(value) is str else cell_text(value)
    if text and _NEEDS_FOLDING.search(text) is None:
        return text
    return " ".join(text.split()) or None


def _in_flags(nets: _Nets, versions: list[int], numbers: list[int], only: list[bool] | None = None) -> list[bool]:
    """Per row: is the address in one of `nets` (and, when given, is `only` true for the row)?"""
    flags = [False] * len(numbers)
    for version, addr, mask in nets:
        if only is None:
            flags = [f or (v == version and n & mask == addr) for f, v, n in zip(flags, versions, numbers, strict=True)]
        else:
            flags = [
                f or (o and v == version and n & mask == addr)
                for f, o, v, n in zip(flags, only, versions, numbers, strict=True)
            ]
    return flags


def _all_text(values: Sequence[Cell]) -> bool:
    return set(map(type, values)) <= {str}


def _prepare(table: Table, excl_nets: _Nets, excl_host: re.Pattern[str] | None) -> _Prepared:
    """Pass 1 over one table, column by column (C-level `map` where it can be: tens of thousands of rows)."""
    raw_hosts = table.cells["hostname"]
    if _all_text(raw_hosts):
        stripped = map(str.lower, map(str.strip, cast("Sequence[str]", raw_hosts)))
        hosts = list(map(str.rstrip, stripped, repeat(".")))
    else:
        hosts = [_fold_hostname(cell_text(h)) for h in raw_hosts]
    # the quick check: a plain lower-case DNS name that is not an IPv4 address; the rest, below
    host_ok = list(map(bool, map(_HOSTNAME_QUICK_RE.fullmatch, hosts)))
    if not _all_text(raw_hosts) or not all(map(str.isascii, cast("Sequence[str]", raw_hosts))):
        host_ok = [ok and (type(raw) is not str or raw.isascii()) for ok, raw in zip(host_ok, raw_hosts, strict=True)]
    if hosts and max(map(len, hosts)) > 253:
        host_ok = [ok and len(h) <= 253 for ok, h in zip(host_ok, hosts, strict=True)]
    host_errors: list[str | None] = [None] * len(hosts)
    for i in [i for i, ok in enumerate(host_ok) if not ok]:
        if not hosts[i]:
            continue  # missing, not invalid
        try:  # the slow, complete check: it also drops invisible characters
            hosts[i] = normalize_hostname(cell_text(raw_hosts[i]))
            host_ok[i] = True
        except ValueError as exc:
            host_errors[i] = str(exc)
    raw_ips = table.cells["ip"]
    if _all_text(raw_ips):
        matched = map(_CANONICAL_IPV4_RE.fullmatch, cast("Sequence[str]", raw_ips))
        ips: list[str | None] = [x if m else None for x, m in zip(raw_ips, matched, strict=True)]  # type: ignore[misc]
    else:
        canonical = _CANONICAL_IPV4_RE.fullmatch
        ips = [x if type(x) is str and canonical(x) else None for x in raw_ips]
    numbers = list(map(int.from_bytes, map(socket.inet_aton, [x or "0.0.0.0" for x in ips])))
    versions = [0 if x is None else 4 for x in ips]
    errors: list[str | None] = [None] * len(ips)
    # the rare rows: not a canonical IPv4 text (numbers 0), or not a host address
    for i in [i for i, n in enumerate(numbers) if n >> 24 in _NOT_HOST_FIRST_OCTET]:
        raw = raw_ips[i]
        ips[i], versions[i], numbers[i] = None, 0, 0
        if raw == "" or raw is None:
            continue
        text = raw if type(raw) is str else cell_text(raw)
        if not text.strip():
            continue  # only spaces: no IP given
        try:
            parsed = normalize_ip(text)
        except ValueError as exc:
            errors[i] = str(exc)
        else:
            ips[i], versions[i], numbers[i] = parsed.text, parsed.version, parsed.value
    excluded = _in_flags(excl_nets, versions, numbers) if excl_nets else [False] * len(ips)
    if excl_host is not None:  # the whole name, or its first label, matches a pattern
        match = excl_host.match
        whole = list(map(match, hosts))
        for i in [i for i, m in enumerate(whole) if m is not None]:
            excluded[i] = excluded[i] or hosts[i] != ""
        for i in [i for i, (m, h) in enumerate(zip(whole, hosts, strict=True)) if m is None and "." in h]:
            excluded[i] = excluded[i] or match(hosts[i].split(".", 1)[0]) is not None
    return _Prepared(table, hosts, host_ok, host_errors, ips, versions, numbers, errors, excluded)


def _v4_host_ok(value: int) -> bool:
    first = value >> 24
    return not (first == 0 or first == 127 or first >= 224)


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
    circuit_nets = {name: _nets(c.networks) for name, c in plan.circuits.items()}
    excl_nets = _nets(e.network for e in plan.excluded if e.network is not None)
    patterns = [e.hostname.lower() for e in plan.excluded if e.hostname is not None]
    excl_host = _exclusion_regex(patterns)
    sb_names = {_fold(n) for n in [plan.state_body, *plan.aliases]}
    state_body = plan.state_body

    # pass 1 (by column): normalise; find every row an exclusion matches
    prepared = [_prepare(t, excl_nets, excl_host) for r in reads for t in r.tables]
    excluded_ips: set[str] = set()
    excluded_hosts: set[str] = set()
    for prep in prepared:
        if any(prep.excluded):
            for i, hit in enumerate(prep.excluded):
                if hit:
                    ip_text = prep.ips[i]
                    if ip_text is not None:
                        excluded_ips.add(ip_text)
                    if prep.hosts[i]:
                        excluded_hosts.add(prep.hosts[i])
    # a row sharing an excluded row's IP or hostname is about the same object: excluded too
    if excluded_ips or excluded_hosts:
        excluded_short = {h.split(".", 1)[0] for h in excluded_hosts}
        excluded_bare = {h for h in excluded_hosts if "." not in h}

        excluded_short.discard("")
        for prep in prepared:
            labels = map(itemgetter(0), map(str.partition, prep.hosts, repeat(".")))
            prep.excluded[:] = [
                e or ip in excluded_ips or (h != "" and (
                    h in excluded_hosts or (label in excluded_bare if label != h else h in excluded_short)))
                for e, h, ip, label in zip(prep.excluded, prep.hosts, prep.ips, labels, strict=True)
            ]

    sb_ok: dict[str, bool] = {}

    def sb_known(value: Cell) -> bool:
        key = value if type(value) is str else cell_text(value)
        ok = sb_ok.get(key)
        if ok is None:
            text = _text_or_none(key)
            ok = sb_ok[key] = text is None or _fold(text) in sb_names
        return ok


    # pass 2 (by column): the checks that need no other row
    Outcome = tuple[int, int, Rejection]  # (table index, row index, rejection): sorted at the end
    outcomes: list[Outcome] = []
    by_ip: dict[str, tuple[int, int]] = {}  # ip -> (table index, row index) of the row that has it
    accepted: list[list[int]] = []
    for t_index, prep in enumerate(prepared):
        table = prep.table
        cells = table.cells
        sb_column = cells["sb"]
        if _all_text(sb_column):  # usually one or two distinct values: decide each once
            verdict = {v: sb_known(v) for v in set(sb_column)}
            sb_flags = list(map(verdict.__getitem__, sb_column))
        else:
            sb_flags = [sb_known(v) for v in sb_column]
        host_flags = prep.host_ok
        in_flags = [False] * len(table)
        for cname, nets in circuit_nets.items():
            mine = [c == cname for c in table.circuits]
            if any(mine):
                hits = _in_flags(nets, prep.versions, prep.numbers, mine)
                in_flags = [a or b for a, b in zip(in_flags, hits, strict=True)]
        good = [
            not e and s and h and i
            for e, s, h, i in zip(prep.excluded, sb_flags, host_flags, in_flags, strict=True)
        ]
        for i in [i for i, ok in enumerate(good) if not ok]:
            outcomes.append((t_index, i, _reject_row(prep, i, sb_flags[i], host_flags[i], plan)))
        candidates = [i for i, ok in enumerate(good) if ok]
        all_ips = prep.ips
        ips: list[Any] = _gather(all_ips, candidates)  # a good row has an IP
        if len(set(ips)) == len(ips) and by_ip.keys().isdisjoint(ips):  # no duplicate: all in at once
            by_ip.update(zip(ips, zip(repeat(t_index), candidates), strict=False))
            accepted.append(candidates)
            continue
        keep: list[int] = []
        for i, ip_text in zip(candidates, ips, strict=True):
            taken = by_ip.get(ip_text)
            if taken is None:
                by_ip[ip_text] = (t_index, i)
                keep.append(i)
            else:
                outcomes.append((t_index, i, _reject_duplicate(prep, i, taken, prepared)))
        accepted.append(keep)

    # the accepted rows, by column: free text folded once per distinct value, OS classified once
    texts: dict[str, str | None] = {}
    os_infos: dict[str | None, tuple[str | None, OsFamily, bool | None, str | None]] = {}
    table_os = os_table()

    def fold_column(column: Sequence[Cell], rows: Sequence[int]) -> list[str | None]:
        values = _gather(column, rows)
        if set(map(type, values)) == {str}:
            new = cast(set[str], set(values).difference(texts))
            texts.update(zip(new, map(_text_or_none, new), strict=True))
            return list(map(texts.__getitem__, cast(list[str], values)))
        return [texts[v] if type(v) is str and v in texts else _text_or_none(v) for v in values]

    def os_of(text: str | None) -> tuple[str | None, OsFamily, bool | None, str | None]:
        got = os_infos.get(text)
        if got is None:
            info = classify_os(text, as_of, table_os) if text else OsInfo(None, "other", None, None)
            eol_date = info.eol_date.isoformat() if info.eol_date else None
            got = os_infos[text] = (info.name, info.family, info.eol, eol_date)
        return got

    columns: dict[str, list[Any]] = {name: [] for name in OBJECT_COLUMNS}
    Place = tuple[str | None, str, str | None, int]  # ip, file, sheet, row
    first_ip_of: dict[str, Place] = {}
    more_ips_of: dict[str, list[Place]] = {}
    for prep, keep in zip(prepared, accepted, strict=True):
        if not keep:
            continue
        table = prep.table
        cells = table.cells
        os_raw = fold_column(cells["os"], keep)
        for text in set(os_raw).difference(os_infos):
            os_of(text)
        os_names, os_families, os_eols, os_eol_dates = (
            zip(*map(os_infos.__getitem__, os_raw), strict=True) if os_raw else ((), (), (), ())
        )
        hosts = _gather(prep.hosts, keep)
        ips = _gather(prep.ips, keep)
        numbers = _gather(table.row_numbers, keep)
        n = len(keep)
        for name, values in (
            ("sb", [state_body] * n),
            ("department", fold_column(cells["department"], keep)),
            ("location", fold_column(cells["location"], keep)),
            ("responsible", fold_column(cells["responsible"], keep)),
            ("hostname", hosts),
            ("ip", ips),
            ("os", os_names),
            ("os_raw", os_raw),
            ("os_family", os_families),
            ("os_eol", os_eols),
            ("os_eol_date", os_eol_dates),
            ("circuit", _gather(table.circuits, keep)),
            ("file", [table.file] * n),
            ("sheet", [table.sheet] * n),
            ("row", numbers),
        ):
            columns[name].extend(values)

    all_hosts = columns["hostname"]
    if len(set(all_hosts)) != len(all_hosts):  # a hostname on several rows (several IPs): worth a look
        for host, ip, file, sheet, row in zip(all_hosts, columns["ip"], columns["file"], columns["sheet"],
                                              columns["row"], strict=True):
            place = (ip, file, sheet, row)
            first = first_ip_of.get(host)
            if first is None:
                first_ip_of[host] = place
            else:
                more_ips_of.setdefault(host, [first]).append(place)

    outcomes.sort(key=lambda o: (o[0], o[1]))
    warnings = tuple(
        Warning_(
            "hostname_on_several_ips",
            f"{host} is listed with {len(seen)} IP addresses ({', '.join(p[0] or '' for p in seen)}); "
            "fine for a host with several interfaces, otherwise correct the rows",
            tuple(Source(p[1], p[2], p[3]) for p in seen),
        )
        for host, seen in more_ips_of.items()
    )
    return Appendix(
        as_of=as_of,
        inputs=tuple(r.input for r in reads),
        sheets=tuple(s for r in reads for s in r.sheets),
        columns=columns,
        rejected=tuple(o[2] for o in outcomes),
        skipped=tuple(s for r in reads for s in r.skipped),
        warnings=warnings,
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
    if prep.excluded[i]:
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
        err = prep.errors[i]
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


def _exclusion_regex(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One regex for the site plan's hostname patterns (shell-style, as `fnmatch`), or None."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


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
