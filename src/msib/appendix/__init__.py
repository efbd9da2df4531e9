"""The quarterly appendix ("Сведения об объекте МСИБ"): SB staff's Excel rows read, then checked, as typed records."""

# Two steps, each usable alone:
#
# * read_appendix (read.py) reads one `.xlsx` (python-calamine; merged cells filled from their
#   top-left value) or `.csv` (encoding and delimiter detected) into Table objects: the header row
#   is found by content, in Russian, Kazakh or English (headers.py); title / column-number / footer /
#   empty rows are skipped (and listed), and each data row keeps its circuit (from a section row or
#   the sheet) and its place (file, sheet, Excel row; the column letters are the table's).
# * check_rows (rules.py) normalises (values.py) and validates those rows against the site plan:
#   every non-blank data row becomes either an AppendixObject or a Rejection with a reason code of
#   `outputs.md`. Exclusions of the site plan win over everything.
#
# An unusable file (unreadable, no header row, a sheet with none of the expected columns) is an
# msib.errors.InputError. The records are in model.py.

from msib.appendix.headers import header_field, section_circuit, sheet_circuit
from msib.appendix.model import (
    DATA_FIELDS,
    OBJECT_COLUMNS,
    OBJECT_KEYS,
    REASONS,
    Appendix,
    AppendixObject,
    CellSource,
    DataField,
    Field,
    InputFile,
    ObjectRow,
    RawRow,
    ReadResult,
    Reason,
    Rejection,
    SheetInfo,
    SheetStatus,
    SkipKind,
    SkippedRow,
    Source,
    Table,
    Warning_,
    object_dicts,
)
from msib.appendix.read import CSV_SUFFIXES, XLSX_SUFFIXES, read_appendix
from msib.appendix.rules import EXCLUDED_MESSAGE, check_rows
from msib.appendix.values import (
    OS_FAMILIES,
    Cell,
    IPValue,
    OsEntry,
    OsFamily,
    OsInfo,
    OsTable,
    cell_text,
    classify_os,
    column_letter,
    normalize_hostname,
    normalize_ip,
    os_table,
    parse_os_table,
)
from msib.circuits import CIRCUITS, CircuitName

__all__ = [
    "CIRCUITS",
    "CSV_SUFFIXES",
    "DATA_FIELDS",
    "EXCLUDED_MESSAGE",
    "OBJECT_COLUMNS",
    "OBJECT_KEYS",
    "OS_FAMILIES",
    "REASONS",
    "XLSX_SUFFIXES",
    "Appendix",
    "AppendixObject",
    "Cell",
    "CellSource",
    "CircuitName",
    "DataField",
    "Field",
    "IPValue",
    "InputFile",
    "ObjectRow",
    "OsEntry",
    "OsFamily",
    "OsInfo",
    "OsTable",
    "RawRow",
    "ReadResult",
    "Reason",
    "Rejection",
    "SheetInfo",
    "SheetStatus",
    "SkipKind",
    "SkippedRow",
    "Source",
    "Table",
    "Warning_",
    "cell_text",
    "check_rows",
    "classify_os",
    "column_letter",
    "header_field",
    "normalize_hostname",
    "normalize_ip",
    "object_dicts",
    "os_table",
    "parse_os_table",
    "read_appendix",
    "section_circuit",
    "sheet_circuit",
]
