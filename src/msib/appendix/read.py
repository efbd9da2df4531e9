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

from msib.appendix.bounds import (
    DEFAULT_LIMITS,
    ReadLimits,
    WorkbookGate,
    check_file_size,
    over_columns,
    over_rows,
)
from msib.appendix.headers import _EXPECTED_HEADERS, _Filled, _find_header, _scan
from msib.appendix.model import InputFile, ReadResult, SheetInfo, SkippedRow, Table, WorkbookFormat
from msib.errors import InputError

XLSX_SUFFIXES: Final = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
CSV_SUFFIXES: Final = (".csv", ".txt")


def _fill_merged(data: list[list[Any]], ranges: Iterable[tuple[tuple[int, int], tuple[int, int]]],
                 origin: tuple[int, int]) -> _Filled:
    """Copy each merged block's top-left value into every empty cell of the block (in place)."""
    r0, c0 = origin
    filled = _Filled()
    width = max(map(len, data), default=0)
    for (top, left), (bottom, right) in ranges:
        rt, cl = top - r0, left - c0
        if not (0 <= rt < len(data)) or cl < 0 or cl >= len(data[rt]):
            continue
        value = data[rt][cl]
        if value == "" or value is None:
            continue
        last_row = min(bottom - r0, len(data) - 1)
        last_col = min(right - c0, width - 1)  # a block reaching past the widest row fills nothing more
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


def workbook_format(path: Path) -> WorkbookFormat:
    """What a workbook really is, from its first bytes and (for a zip) its parts, whatever its name
    says: `xls` (OLE2), `ods`, `xlsb`, `xlsm` or `xlsx`."""
    try:
        with path.open("rb") as f:
            magic = f.read(8)
    except OSError:
        magic = b""
    if magic.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "xls"
    if magic.startswith(b"PK"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                if "mimetype" in names and b"opendocument.spreadsheet" in z.read("mimetype")[:100]:
                    return "ods"
                if "xl/workbook.bin" in names:
                    return "xlsb"
                types = z.read("[Content_Types].xml")[:65536] if "[Content_Types].xml" in names else b""
                return "xlsm" if b"macroEnabled" in types else "xlsx"
        except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError, NotImplementedError):
            pass
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in ("xls", "ods", "xlsb", "xlsm") else "xlsx"  # type: ignore[return-value]


#: A sheet of more cells than this is turned into Python lists row by row, each text kept once:
#: slower (about twice the time of calamine's own conversion), but the parsed sheet and its lists,
#: which exist together at that moment, take about 25 % less memory at 200,000 rows.
_LEAN_CELLS: Final = 1_000_000


def _rows(sheet: Any) -> list[list[Any]]:
    """The sheet's rows as Python lists, from its first used row and column (calamine's
    ``to_python(skip_empty_area=True)``); a large sheet with each distinct text held once."""
    if sheet.height * sheet.width <= _LEAN_CELLS:
        rows: list[list[Any]] = sheet.to_python(skip_empty_area=True)
        return rows
    texts: dict[str, str] = {}
    keep = texts.setdefault
    skip = sheet.start[0] if sheet.start else 0  # iter_rows starts at the sheet's first row
    out = []
    for k, row in enumerate(sheet.iter_rows()):
        if k >= skip:
            out.append([keep(v, v) if type(v) is str else v for v in row])
    return out


def _release_freed_memory() -> None:
    """Give the memory calamine's parsed sheet held back to the system (glibc keeps freed blocks for
    reuse otherwise): a few milliseconds, and the peak of a 200,000-row build stays lower."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


def _error_cells(data: list[list[Any]], errors: dict[tuple[int, int], str], origin: tuple[int, int]) -> None:
    """Put the formula errors (`#REF!`) back into the cells calamine read as empty (in place)."""
    r0, c0 = origin
    for (r, c), text in errors.items():
        i, j = r - r0, c - c0
        if 0 <= i < len(data) and 0 <= j < len(data[i]) and data[i][j] in _EMPTY_CELL:
            data[i][j] = text


def _read_xlsx(path: Path, name: str, limits: ReadLimits = DEFAULT_LIMITS) -> ReadResult:
    from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

    fix = "open it in Excel and save it again as .xlsx"
    gate: WorkbookGate | None = None
    try:
        check_file_size(path, name, limits)
        sha = _sha256(path)
        fmt = workbook_format(path)
        source = str(path)
        if fmt in ("xlsx", "xlsm"):
            gate = WorkbookGate(path, name, limits)
            source = gate.path
        elif fmt == "ods":
            _check_ods(path, name, limits)
        wb = CalamineWorkbook.from_path(source)
    except OSError as exc:
        if gate is not None:
            gate.close()
        raise InputError(name, f"cannot read the file: {exc.strerror or exc}", fix="check the path") from None
    except BaseException as exc:  # calamine raises its own errors, and a pyo3 PanicException
        if gate is not None:
            gate.close()
        if isinstance(exc, (KeyboardInterrupt, SystemExit, InputError)):
            raise
        raise InputError(name, f"not a readable workbook ({_short(exc)})", fix=fix) from None
    tables: list[Table] = []
    sheets: list[SheetInfo] = []
    skipped: list[SkippedRow] = []
    sheet_name = None
    rows_read = 0
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
                at_sheet = f"sheet {meta.name!r}"
                if gate is not None:
                    gate.head_start(meta.name)
                try:
                    sheet = wb.get_sheet_by_name(meta.name)
                except Exception:
                    if gate is None or not gate.failed(meta.name):
                        raise
                    sheet = wb.get_sheet_by_name(meta.name)  # it read bytes not yet checked: again, all checked
                if sheet.height > limits.max_rows - rows_read:
                    raise over_rows(name, at_sheet, rows_read + sheet.height, limits)
                if sheet.width > limits.max_columns:
                    raise over_columns(name, at_sheet, sheet.width, limits)
                data = _rows(sheet)
                rows_read += len(data)
                r0, c0 = sheet.start or (0, 0)
                merged = sheet.merged_cell_ranges or ()
                del sheet  # the parsed sheet: only the Python lists are needed from here on
                _release_freed_memory()
                if gate is not None:
                    _error_cells(data, gate.error_cells(meta.name), (r0, c0))
                filled = _fill_merged(data, merged, (r0, c0))
                numbers = range(r0 + 1, r0 + 1 + len(data))
                table, info, skip = _scan(data, numbers, file=name, sheet=meta.name, col_base=c0, filled=filled,
                                          limits=limits)
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
    finally:
        if gate is not None:
            gate.close()
    if not tables:
        raise InputError(name, "no sheet with the appendix table was found (every visible sheet is empty)",
                         fix="fill in the appendix form, or check that this is the right file")
    return ReadResult(InputFile(name, fmt, sha), tuple(tables), tuple(sheets), tuple(skipped))


class _OdsCounter:
    """expat handlers counting an OpenDocument sheet's rows and columns as calamine expands them."""

    _TABLE: Final = "urn:oasis:names:tc:opendocument:xmlns:table:1.0 "
    _OFFICE: Final = "urn:oasis:names:tc:opendocument:xmlns:office:1.0 "

    def __init__(self, name: str, limits: ReadLimits) -> None:
        self.name, self.limits = name, limits
        self.sheet = ""
        self.rows = self.pending_rows = 0  # rows up to the last with a value; empty rows since
        self.row_repeat = 1
        self.col = 0
        self.row_has = False

    def _repeat(self, attrs: dict[str, str], key: str) -> int:
        value = attrs.get(self._TABLE + key, "1")
        return int(value) if value.isdigit() else 1

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        t = self._TABLE
        if tag == t + "table":
            self.rows = self.pending_rows = 0
            self.sheet = attrs.get(t + "name", "")
        elif tag == t + "table-row":
            self.row_repeat = self._repeat(attrs, "number-rows-repeated")
            self.col, self.row_has = 0, False
        elif tag in (t + "table-cell", t + "covered-table-cell"):
            self.col += self._repeat(attrs, "number-columns-repeated")
            if self._OFFICE + "value-type" in attrs or self._OFFICE + "value" in attrs:
                self.row_has = True
                if self.col > self.limits.max_columns:
                    raise over_columns(self.name, f"sheet {self.sheet!r}", self.col, self.limits)

    def end(self, tag: str) -> None:
        if tag != self._TABLE + "table-row":
            return
        if not self.row_has:
            self.pending_rows += self.row_repeat
            return
        self.rows += self.pending_rows + self.row_repeat
        self.pending_rows = 0
        if self.rows > self.limits.max_rows:
            raise over_rows(self.name, f"sheet {self.sheet!r}", self.rows, self.limits)


def _check_ods(path: Path, name: str, limits: ReadLimits) -> None:
    """The bounds of an OpenDocument spreadsheet, before calamine: declared sizes, and the rows and
    columns its `number-rows-repeated` / `number-columns-repeated` make (counted with expat, as a
    stream; a repeated run of empty cells or rows counts only when a value follows it)."""
    import zipfile
    import zlib
    from xml.parsers import expat

    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return
    with z:
        cap = limits.max_unpacked_bytes
        if sum(i.file_size for i in z.infolist()) > cap:
            raise InputError(name, f"the workbook unpacks to more than the {cap >> 20:,} MB of XML allowed for "
                             f"{limits.max_rows:,} rows", fix="check that this is the appendix; to read it "
                             "anyway, raise --max-rows")
        try:
            member = z.open("content.xml")
        except (KeyError, zipfile.BadZipFile, NotImplementedError, zlib.error, OSError):
            return
        counter = _OdsCounter(name, limits)
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.StartElementHandler = counter.start
        parser.EndElementHandler = counter.end
        try:
            with member:
                while piece := member.read(1 << 20):
                    parser.Parse(piece, False)
            parser.Parse(b"", True)
        except (expat.ExpatError, zipfile.BadZipFile, zlib.error, EOFError, OSError):
            return  # broken: calamine says so


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text[:160] + "…" if len(text) > 160 else text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_CSV_DELIMITERS: Final = (";", ",", "\t", "|")
_CSV_FALLBACK_ENCODINGS: Final = ("cp1251", "cp866", "koi8_r")
_CSV_SAMPLE_LINES: Final = 200


def _csv_rows(text: str, delimiter: str, name: str, max_cell: int = DEFAULT_LIMITS.max_cell_chars
              ) -> tuple[list[list[Any]], list[int]]:
    if csv.field_size_limit() < max_cell:  # the csv module's own bound (131,072 by default): ours decides
        csv.field_size_limit(max_cell)
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
        if "field larger than field limit" in str(exc):
            from msib.appendix.bounds import over_cell

            raise over_cell(name, f"line {last + 1}", None, ReadLimits(max_cell_chars=max_cell)) from None
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


def _read_csv(path: Path, name: str, limits: ReadLimits = DEFAULT_LIMITS) -> ReadResult:
    try:
        check_file_size(path, name, limits)
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
            try:
                rows, _ = _csv_rows(sample, delimiter, name, limits.max_cell_chars)
            except InputError:
                continue  # not this delimiter (or a cell too long: the full read says so)
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
    if raw.count(b"\n") + 1 > limits.max_rows:
        raise over_rows(name, None, raw.count(b"\n") + 1, limits)
    rows, numbers = _csv_rows(text, delimiter, name, limits.max_cell_chars)
    width = max(map(len, rows), default=0)
    if width > limits.max_columns:
        raise over_columns(name, f"line {numbers[next(k for k, r in enumerate(rows) if len(r) == width)]}", width,
                           limits)
    table, info, skipped = _scan(rows, numbers, file=name, sheet=None, col_base=0, filled=_Filled(), limits=limits)
    sha = hashlib.sha256(raw).hexdigest()
    tables = (table,) if table is not None else ()
    return ReadResult(InputFile(name, "csv", sha, encoding, delimiter), tables, (info,), tuple(skipped))


def read_appendix(path: str | Path, *, name: str | None = None, limits: ReadLimits = DEFAULT_LIMITS) -> ReadResult:
    """Read one appendix file into tables of raw rows (no site plan needed).

    Args:
        path: an `.xlsx` workbook (also `.xlsm`, `.xls`, `.xlsb`, `.ods`) or a `.csv` export.
        name: how reports name the file (default: `path` as given).
        limits: how much the file may hold (size, rows, columns, cell length): over one, it is
            refused before the memory is spent.

    Returns:
        The tables (one per sheet with a header, or one for a CSV), what each sheet was, and the
        rows skipped on purpose.

    Raises:
        InputError: unreadable file, unknown type, no header row, a sheet without the form's columns,
            a file over one of `limits`.

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
        return _read_xlsx(path, label, limits)
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, label, limits)
    raise InputError(label, f"unsupported file type {suffix or '(none)'!r}",
                     fix="send the appendix as .xlsx or .csv")
