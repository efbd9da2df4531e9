"""The appendix's typed records: closed sets, places, tables of raw rows, objects, rejections, the Appendix."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final, Literal, NamedTuple, get_args

from msib.appendix.values import Cell, OsFamily, cell_text
from msib.circuits import CircuitName

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
    "network_address",
    "broadcast_address",
    "ip_range",
    "ip_network",
    "multiple_ips",
    "formula_error",
]
#: Every reason code, in the order of ``outputs.md`` (stable: add new ones, never rename).
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)

#: Rows that are not objects and are skipped on purpose (listed in the report, never silent).
SkipKind = Literal["title", "header", "column_numbers", "section", "footer", "no_data"]
SheetStatus = Literal["read", "empty", "hidden", "not_a_worksheet"]
#: What an input file really is (from its content, not its name).
WorkbookFormat = Literal["xlsx", "xlsm", "xlsb", "xls", "ods"]

# --- records ----------------------------------------------------------------------------------------


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
    unmapped: tuple[tuple[str, str], ...] = ()  # header cells naming no field: (column letter, header)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sheet": self.sheet,
            "status": self.status,
            "header_row": self.header_row,
            "circuit": self.circuit,
            "data_rows": self.data_rows,
            "unmapped_columns": [{"column": c, "header": h} for c, h in self.unmapped],
        }


@dataclass(frozen=True, slots=True)
class InputFile:
    """One appendix file as read: format, detected encoding/delimiter (CSV) and content hash."""

    file: str
    format: WorkbookFormat | Literal["csv"]
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
