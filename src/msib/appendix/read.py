"""Reading appendix files: workbooks (xlsx/xls/ods via python-calamine, merged cells filled) and CSV exports."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterable
from itertools import compress, repeat
from operator import itemgetter, le
from pathlib import Path
from typing import Any, Final

from msib.appendix.headers import _EXPECTED_HEADERS, _Filled, _find_header, _scan
from msib.appendix.model import InputFile, ReadResult, SheetInfo, SkippedRow, Table
from msib.errors import InputError

XLSX_SUFFIXES: Final = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
CSV_SUFFIXES: Final = (".csv", ".txt")


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
