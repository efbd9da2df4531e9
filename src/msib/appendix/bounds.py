"""Bounds on what an appendix file may make the reader spend, checked before the memory is spent.

A workbook is a zip of XML: a 6 MB `.xlsx` can unpack to gigabytes, or hold two cells a million
rows apart, which python-calamine turns into one dense range of every cell between them (and the
process aborts when that allocation fails). So, before calamine parses anything:

* the file's size (:attr:`ReadLimits.max_file_bytes`);
* the zip's declared sizes: every part and the whole at most :attr:`ReadLimits.max_unpacked_bytes`
  (the zip reader under calamine refuses a part larger than it declares, so the declared size
  bounds what it will unpack);
* every worksheet's XML, unpacked as a stream (never whole), for a cell or row reference beyond
  :attr:`ReadLimits.max_rows` / :attr:`ReadLimits.max_columns` (the sheet's `<dimension>` is only a
  claim; the references are what calamine uses), and for cells and rows without a reference
  (calamine counts those on from the last one: then the extent is counted exactly, with expat).

The stream check runs beside calamine (:class:`WorkbookGate`): calamine reads a private copy of
the workbook in which a worksheet's compressed bytes appear only once they have been checked; until
then they are zeros, which no zip reader accepts. calamine therefore never acts on unchecked data,
and the check (about twice as fast as calamine's parse) costs little time. Then, after calamine
has parsed a sheet and before its cells become Python objects, the sheet's height and width are
checked again (for the formats not streamed: `.xls`, `.xlsb`, `.ods`), and every cell's length
(:attr:`ReadLimits.max_cell_chars`).

Each bound has a default, documented in docs/inventory.md, and a flag of `msib inventory build` to
raise it. A file over a bound is unusable input: :class:`~msib.errors.InputError`, exit status 2,
naming the file, the sheet and the flag.
"""

from __future__ import annotations

import os
import re
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

from msib.errors import InputError

_MB: Final = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """How much one appendix file may hold (each raised by a flag of `msib inventory build`).

    Args:
        max_file_bytes: the file's size on disk (`--max-file-mb`).
        max_rows: rows of one sheet or CSV file, counted to the last used one (`--max-rows`).
        max_columns: columns of one sheet or CSV row, counted to the last used one (`--max-columns`).
        max_cell_chars: characters in one cell (`--max-cell-chars`; Excel's own limit by default).
    """

    max_file_bytes: int = 64 * _MB
    max_rows: int = 250_000
    max_columns: int = 256
    max_cell_chars: int = 32_767

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_rows", "max_columns", "max_cell_chars"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-').replace('-bytes', '-mb')}", "must be at least 1")

    @property
    def max_unpacked_bytes(self) -> int:
        """What a workbook's XML may unpack to: 2 KiB per allowed row (at least 64 MiB)."""
        return max(64 * _MB, self.max_rows * 2048)


#: The defaults: what `msib inventory build` allows without a flag.
DEFAULT_LIMITS: Final = ReadLimits()


def _mb(n: int) -> str:
    return f"{n / _MB:.1f} MB" if n < 10 * _MB else f"{n / _MB:,.0f} MB"


def check_file_size(path: Path, name: str, limits: ReadLimits) -> int:
    """The file's size; InputError when it is over :attr:`ReadLimits.max_file_bytes`."""
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise InputError(name, f"the file is {_mb(size)}: more than the {_mb(limits.max_file_bytes)} an appendix "
                         "may be", fix="check that this is the appendix; to read it anyway, raise --max-file-mb")
    return size


def over_rows(name: str, where: str | None, rows: int, limits: ReadLimits, *, at_least: bool = False) -> InputError:
    count = f"at least {rows:,}" if at_least else f"{rows:,}"
    return InputError(name, f"{count} rows: more than the {limits.max_rows:,} an appendix may have", where=where,
                      fix="remove the empty or stray rows far below the table; to read it anyway, raise --max-rows")


def over_columns(name: str, where: str | None, columns: int, limits: ReadLimits, *,
                 at_least: bool = False) -> InputError:
    count = f"at least {columns:,}" if at_least else f"{columns:,}"
    return InputError(name, f"{count} columns: more than the {limits.max_columns:,} an appendix may have",
                      where=where, fix="remove the stray cells far right of the table; to read it anyway, raise "
                      "--max-columns")


def over_cell(name: str, where: str | None, chars: int | None, limits: ReadLimits) -> InputError:
    held = f"{chars:,} characters" if chars is not None else "more characters"
    return InputError(name, f"a cell holds {held}: more than the {limits.max_cell_chars:,} a cell may hold",
                      where=where, fix="correct the cell; to read it anyway, raise --max-cell-chars")


def check_cells(columns: Mapping[int, Sequence[Any]], name: str, sheet: str | None, numbers: Sequence[int],
                col_base: int, limits: ReadLimits) -> None:
    """Every cell of `columns` (column index -> its cells) at most :attr:`ReadLimits.max_cell_chars` long.

    One C-level pass per column (a number's text is short: `str` of it is measured).
    """
    from msib.appendix.values import column_letter

    limit = limits.max_cell_chars
    for j, column in columns.items():
        try:
            longest = max(map(len, column), default=0)
        except TypeError:  # numbers, dates among the texts
            longest = max(map(len, map(str, column)), default=0)
        if longest > limit:
            k = next(k for k, v in enumerate(column) if len(str(v)) == longest)
            where = f"{'line' if sheet is None else 'row'} {numbers[k]}, column {column_letter(col_base + j)}"
            raise over_cell(name, f"sheet {sheet!r}, {where}" if sheet is not None else where, longest, limits)


# --- numbers and column letters beyond a bound, as regular expressions -----------------------------


def _digits_above(n: int) -> str:
    """A regex for the decimal numbers (leading zeros allowed) greater than `n`."""
    s = str(n)
    alts = [rf"[1-9][0-9]{{{len(s)},}}"]  # more digits
    for i, ch in enumerate(s):
        if ch != "9":
            rest = len(s) - i - 1
            alts.append(f"{s[:i]}[{int(ch) + 1}-9][0-9]{{{rest}}}")
    return "0*(?:" + "|".join(alts) + ")"


def column_number(letters: str) -> int:
    """1-based column number of Excel letters (A -> 1, AA -> 27)."""
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _letters_above(n: int) -> str:
    """A regex for the column letters whose column number is greater than `n`."""
    from msib.appendix.values import column_letter

    s = column_letter(n - 1)
    alts = [f"[A-Z]{{{len(s) + 1},}}"]
    for i, ch in enumerate(s):
        if ch != "Z":
            rest = len(s) - i - 1
            alts.append(f"{s[:i]}[{chr(ord(ch) + 1)}-Z][A-Z]{{{rest}}}")
    return "(?:" + "|".join(alts) + ")"


def _suspicious_tags(limits: ReadLimits, prefix: bytes) -> re.Pattern[bytes]:
    """A cell or row start tag that lacks `r` as its first attribute (after one space, as every
    writer puts it), or references a row or column beyond the bounds; or a cell or row tag with
    another namespace prefix than the sheet's (`prefix`): calamine reads those as cells too.

    One pass of one regex whose every branch starts at `<`, factored by tag name (much faster than
    an alternation of whole patterns)."""
    rows = _digits_above(limits.max_rows).encode()
    cols = _letters_above(limits.max_columns).encode()
    p = re.escape(prefix)
    bad_start = rb'(?:>|/>|[\t\n\r]| (?!r=")'
    other = (rb"|(?!" + p + rb"(?:c|row)[\s>/])(?:[A-Za-z_][\w.-]{0,30}:)?(?:c|row)[\s>/]") if prefix else \
        rb"|[A-Za-z_][\w.-]{0,30}:(?:c|row)[\s>/]"
    return re.compile(
        rb"<(?:" + p + rb"c" + bad_start + rb'| r="(?:[A-Z]{0,4}' + rows + rb'"|' + cols + rb"[0-9]))"
        + rb"|" + p + rb"row" + bad_start + rb'| r="' + rows + rb'")' + other + rb")"
    )


# --- the stream check of a worksheet ----------------------------------------------------------------

_CHUNK: Final = 128 * 1024  # compressed bytes checked (and released to calamine) at a time
_CARRY: Final = 64  # bytes of unpacked XML kept from one piece to the next: a tag cut in two is seen whole


@dataclass
class _Part:
    """One worksheet part of the zip: where its compressed bytes are, and what the check found."""

    member: str
    sheet: str  # the sheet's name in the workbook
    data_offset: int
    compress_size: int
    file_size: int
    compressed: bool
    checked: threading.Event = field(default_factory=threading.Event)
    released: int = 0  # compressed bytes released to calamine's copy so far
    progress: threading.Condition = field(default_factory=threading.Condition)
    problem: InputError | None = None
    exact: bool = False  # cells or rows without a reference: the extent is counted with expat
    errors: bool = False  # it holds formula-error cells (t="e"), which calamine reads as empty


def _data_offset(f: BinaryIO, info: zipfile.ZipInfo) -> int:
    f.seek(info.header_offset)
    header = f.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local header")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return int(info.header_offset) + 30 + int(name_len) + int(extra_len)


def _sheet_parts(z: zipfile.ZipFile) -> dict[str, str]:
    """Worksheet part -> sheet name, from the workbook and its relationships (small XML files)."""
    import xml.etree.ElementTree as ET

    try:
        workbook = ET.fromstring(z.read("xl/workbook.xml"))
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ET.ParseError, zipfile.BadZipFile, zlib.error, EOFError, OSError):
        return {}
    targets = {}
    for rel in rels:
        target = rel.get("Target") or ""
        target = target.lstrip("/") if target.startswith("/") else "xl/" + target
        targets[rel.get("Id")] = os.path.normpath(target)
    out = {}
    for el in workbook.iter():
        if el.tag.rsplit("}", 1)[-1] == "sheet":
            rid = next((v for k, v in el.attrib.items() if k.rsplit("}", 1)[-1] == "id"), None)
            if rid in targets:
                out[targets[rid]] = el.get("name") or ""
    return out


class WorkbookGate:
    """The bounds of a zip workbook (`.xlsx`, `.xlsm`): checked beside calamine's parse.

    Usage: ``gate = WorkbookGate(path, name, limits)`` (declared sizes checked, the stream check
    started); give calamine :attr:`path`; after calamine failed on a sheet, :meth:`failed` says
    whether to try again (the check had not reached the bytes calamine read) or raises the bound it
    broke; :meth:`error_cells` gives the formula errors of a sheet; :meth:`close` at the end.
    """

    def __init__(self, path: Path, name: str, limits: ReadLimits) -> None:
        self.name = name
        self.limits = limits
        self.source = path
        self.parts: dict[str, _Part] = {}
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.path = str(path)
        try:
            z = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
            return  # not a zip (or not one Python reads): calamine says what is wrong with it
        with z:
            self._check_declared(z.infolist())
            sheets = _sheet_parts(z)
            with path.open("rb") as f:
                for info in z.infolist():
                    member = os.path.normpath(info.filename)
                    if member.startswith("xl/worksheets/") and member.endswith(".xml") and not info.is_dir():
                        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                            raise InputError(name, f"{info.filename} is compressed with method {info.compress_type}, "
                                             "which Excel and LibreOffice never use",
                                             fix="open it in Excel and save it again as .xlsx")
                        try:
                            offset = _data_offset(f, info)
                        except zipfile.BadZipFile:
                            continue  # calamine will not read it either
                        self.parts[member] = _Part(member, sheets.get(member, member), offset, info.compress_size,
                                                   info.file_size, info.compress_type == zipfile.ZIP_DEFLATED)
        if not self.parts:
            return
        self._start()

    def _check_declared(self, infos: Sequence[zipfile.ZipInfo]) -> None:
        cap = self.limits.max_unpacked_bytes
        total = 0
        for info in infos:
            total += info.file_size
            if info.file_size > cap or total > cap:
                biggest = max(infos, key=lambda i: i.file_size)
                raise InputError(
                    self.name,
                    f"the workbook unpacks to {_mb(sum(i.file_size for i in infos))} of XML ({biggest.filename} "
                    f"alone {_mb(biggest.file_size)}): more than the {_mb(cap)} allowed for "
                    f"{self.limits.max_rows:,} rows",
                    fix="check that this is the appendix (a table of a few thousand rows unpacks to a few MB); "
                    "to read it anyway, raise --max-rows",
                )

    # --- the private copy calamine reads ------------------------------------------------------------

    def _start(self) -> None:
        try:
            fd = os.memfd_create("msib-appendix", os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            fd = None
        if fd is None or not os.path.exists(f"/proc/self/fd/{fd}"):  # no private copy: check first, then read
            if fd is not None:
                os.close(fd)
            self._check_all(None)
            return
        self._fd = fd
        size = self.source.stat().st_size
        os.ftruncate(fd, size)
        gated = sorted((p.data_offset, p.data_offset + p.compress_size) for p in self.parts.values())
        with self.source.open("rb") as f:
            pos = 0
            for start, stop in [*gated, (size, size)]:
                self._copy(f, fd, pos, start)
                pos = max(pos, stop)
        self.path = f"/proc/self/fd/{fd}"
        self._thread = threading.Thread(target=self._check_all, args=(fd,), name="msib-bounds", daemon=True)
        self._thread.start()

    @staticmethod
    def _copy(f: BinaryIO, fd: int, start: int, stop: int) -> None:
        f.seek(start)
        while start < stop:
            chunk = f.read(min(_MB, stop - start))
            if not chunk:
                break
            os.pwrite(fd, chunk, start)
            start += len(chunk)

    def _check_all(self, fd: int | None) -> None:
        try:
            with self.source.open("rb") as f:
                for part in sorted(self.parts.values(), key=lambda p: p.data_offset):
                    if self._stop.is_set():
                        break
                    try:
                        self._check_part(f, part, fd)
                    except InputError as exc:
                        part.problem = exc
                    except (zlib.error, OSError, EOFError, ValueError):
                        pass  # a damaged part: left as zeros, calamine reports the workbook unreadable
                    finally:
                        part.checked.set()
                        with part.progress:
                            part.progress.notify_all()
        finally:
            for part in self.parts.values():
                part.checked.set()
                with part.progress:
                    part.progress.notify_all()

    def _check_part(self, f: BinaryIO, part: _Part, fd: int | None) -> None:
        """Unpack one worksheet as a stream and check it; each compressed piece is released to
        calamine's copy once the XML it unpacks to has been checked."""
        where = f"sheet {part.sheet!r}"
        f.seek(part.data_offset)
        decompressor = zlib.decompressobj(-zlib.MAX_WBITS) if part.compressed else None
        pattern: re.Pattern[bytes] | None = None
        head = carry = b""
        held: list[tuple[int, bytes]] = []  # compressed pieces checked-to-be, not yet released
        offset, left, unpacked = part.data_offset, part.compress_size, 0
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise EOFError
            left -= len(chunk)
            out = decompressor.decompress(chunk) if decompressor is not None else chunk
            unpacked += len(out)
            if unpacked > part.file_size:
                return  # more than declared: calamine's zip reader refuses it; the rest stays zeros
            held.append((offset, chunk))
            offset += len(chunk)
            start = 0
            if pattern is None:  # the root element first: the namespace prefix of the sheet's elements
                head += out
                if len(head) < 4096 and left > 0:
                    continue
                prefix, start = self._prefix(head)
                pattern = _suspicious_tags(self.limits, prefix)
                out, head = head, b""
            text = carry + out
            if not part.exact:
                m = pattern.search(text, start)
                if m is not None:
                    self._suspicious(part, m.group(), where)
            if not part.errors and text.find(b't="e"') != -1:
                part.errors = True
            carry = text[-_CARRY:]
            if fd is not None and not part.exact:
                for at, data in held:
                    os.pwrite(fd, data, at)
                held = []
                with part.progress:
                    part.released = offset - part.data_offset
                    part.progress.notify_all()
        if part.exact:
            self._count_exactly(part, where)
            if fd is not None:  # now checked: release the whole part
                self._copy(f, fd, part.data_offset, part.data_offset + part.compress_size)

    @staticmethod
    def _prefix(head: bytes) -> tuple[bytes, int]:
        """The namespace prefix of the sheet's elements (`x:` in `<x:worksheet ...>`, usually none),
        and where the root's start tag ends (its namespace declarations are before)."""
        m = re.search(rb"<([A-Za-z_][\w.-]*:)?worksheet[\s>]", head)
        if m is None:
            return b"", 0
        end = head.find(b">", m.start())
        return m.group(1) or b"", end if end != -1 else len(head)

    def _suspicious(self, part: _Part, tag: bytes, where: str) -> None:
        m = re.search(rb'r="([A-Z]*)([0-9]+)', tag)
        if m is None:  # a cell or row without a reference first: count the extent exactly
            part.exact = True
            return
        letters, digits = m.group(1).decode(), int(m.group(2))
        if digits > self.limits.max_rows:
            raise over_rows(self.name, f"{where}, row {digits:,}", digits, self.limits, at_least=True)
        if letters and column_number(letters) > self.limits.max_columns:
            raise over_columns(self.name, f"{where}, column {letters}", column_number(letters), self.limits,
                               at_least=True)
        part.exact = True  # `r` not first among the attributes: count exactly

    def _count_exactly(self, part: _Part, where: str) -> None:
        rows, columns, _ = scan_sheet_xml(self._unpacked(part))
        if rows > self.limits.max_rows:
            raise over_rows(self.name, where, rows, self.limits)
        if columns > self.limits.max_columns:
            raise over_columns(self.name, where, columns, self.limits)

    def _unpacked(self, part: _Part) -> Iterator[bytes]:
        with self.source.open("rb") as f:
            f.seek(part.data_offset)
            decompressor = zlib.decompressobj(-zlib.MAX_WBITS) if part.compressed else None
            left, total = part.compress_size, 0
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                out = decompressor.decompress(chunk) if decompressor is not None else chunk
                total += len(out)
                if total > part.file_size:
                    return
                yield out

    # --- what the reader asks -----------------------------------------------------------------------

    def part_of(self, sheet: str) -> _Part | None:
        return next((p for p in self.parts.values() if p.sheet == sheet), None)

    def ready(self, sheet: str) -> None:
        """Raise the bound the sheet broke, if the check found one by now (it need not be done)."""
        part = self.part_of(sheet)
        if part is not None and part.problem is not None:
            raise part.problem

    def head_start(self, sheet: str) -> None:
        """Wait until the check of `sheet` is ahead (half of it, at least a few pieces), so
        that calamine, about half as fast, does not reach bytes the check has not released yet (it
        would fail on them, and parse the sheet again once all of it is checked)."""
        part = self.part_of(sheet)
        if part is None or self._fd is None:
            return
        want = min(part.compress_size, max(3 * _CHUNK, part.compress_size // 2))
        with part.progress:
            part.progress.wait_for(lambda: part.released >= want or part.checked.is_set() or part.exact)
        if part.problem is not None:
            raise part.problem

    def failed(self, sheet: str) -> bool:
        """calamine failed on `sheet`: wait for its check; raise the bound it broke; True when calamine
        may try again (it read bytes the check had not released yet), False when the sheet is broken."""
        part = self.part_of(sheet)
        if part is None or self._fd is None:
            return False
        part.checked.wait()
        if part.problem is not None:
            raise part.problem
        return True

    def error_cells(self, sheet: str) -> dict[tuple[int, int], str]:
        """The formula-error cells of `sheet`: (0-based row, column) -> the error text (`#REF!`)."""
        part = self.part_of(sheet)
        if part is None:
            return {}
        part.checked.wait()
        if not part.errors:
            return {}
        return scan_sheet_xml(self._unpacked(part))[2]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _SheetCounter:
    """expat handlers that place cells as calamine does (a reference, else one past the last)."""

    _REF: Final = re.compile(r"([A-Z]*)([0-9]*)")

    def __init__(self) -> None:
        self.row = self.col = -1
        self.rows = self.columns = 0
        self.error_at: tuple[int, int] | None = None
        self.text: list[str] = []
        self.errors: dict[tuple[int, int], str] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        local = tag.rsplit(" ", 1)[-1]
        if local == "row":
            r = attrs.get("r") or ""
            self.row = int(r) - 1 if r.isdigit() else self.row + 1
            self.col = -1
            self.rows = max(self.rows, self.row + 1)
        elif local == "c":
            m = self._REF.fullmatch(attrs.get("r") or "")
            if m is not None and m.group(1):
                self.col = column_number(m.group(1)) - 1
                if m.group(2):
                    self.row = int(m.group(2)) - 1
                    self.rows = max(self.rows, self.row + 1)
            else:
                self.col += 1
            self.columns = max(self.columns, self.col + 1)
            self.error_at = (self.row, self.col) if attrs.get("t") == "e" else None
        elif local == "v" and self.error_at is not None:
            self.text = []

    def chars(self, data: str) -> None:
        if self.error_at is not None:
            self.text.append(data)

    def end(self, tag: str) -> None:
        if tag.rsplit(" ", 1)[-1] == "v" and self.error_at is not None:
            from msib.appendix.values import is_formula_error

            value = "".join(self.text).strip()
            if is_formula_error(value):
                self.errors[self.error_at] = value
            self.error_at = None


def scan_sheet_xml(pieces: Iterator[bytes]) -> tuple[int, int, dict[tuple[int, int], str]]:
    """Count a worksheet's extent exactly, as calamine places its cells, and find its formula-error
    cells: (rows, columns, {(0-based row, column): error text}).

    Streaming (expat): for the rare sheets the quick check cannot vouch for, and for error cells.
    """
    from xml.parsers import expat

    counter = _SheetCounter()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = counter.start
    parser.CharacterDataHandler = counter.chars
    parser.EndElementHandler = counter.end
    try:
        for piece in pieces:
            parser.Parse(piece, False)
        parser.Parse(b"", True)
    except expat.ExpatError:
        pass  # broken XML: calamine reports it
    return counter.rows, counter.columns, counter.errors
