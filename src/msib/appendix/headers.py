"""Header row detection and column mapping: the header row, each column's field, sections, footers, other rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress
from operator import itemgetter
from typing import Any, Final

from msib.appendix.bounds import DEFAULT_LIMITS, ReadLimits, check_cells
from msib.appendix.model import DATA_FIELDS, DataField, Field, SheetInfo, SkippedRow, Table
from msib.appendix.values import _CYRILLIC_RE, _WS_RE, Cell, _fold, cell_text, column_letter
from msib.circuits import CircuitName
from msib.errors import InputError

# --- Unicode confusables ----------------------------------------------------------------------------

# Latin letters that look like Cyrillic ones (and Kazakh ones: і, һ, ә, ө), each way. Headers are typed
# by hand and copied around: `Наименованиe` with a Latin `e`, `IР-адрес` with a Cyrillic `Р`.
_LATIN: Final = "aAcCeEoOpPxXyYkKBHMTiIhəƏɵjsdqw"
_CYRILLIC: Final = "аАсСеЕоОрРхХуУкКВНМТіІһәӘөјѕԁԛԝ"
_TO_CYRILLIC: Final = str.maketrans(_LATIN, _CYRILLIC)
_TO_LATIN: Final = str.maketrans(_CYRILLIC, _LATIN)
_WORD_RE: Final = re.compile(r"[^\W\d_]++")


def _majority_script(m: re.Match[str]) -> str:
    """A word with letters of both scripts, its look-alike letters in the script most of it is in."""
    word = m.group()
    cyrillic = sum(1 for ch in word if "\u0400" <= ch <= "\u04ff")
    latin = sum(1 for ch in word if ch.isascii())
    if not cyrillic or not latin:
        return word
    return word.translate(_TO_CYRILLIC if cyrillic >= latin else _TO_LATIN)


def confusable_variants(text: str, *, whole: bool = True) -> list[str]:
    """Readings of `text` with Unicode confusables folded, most likely first (the text itself not
    included): each mixed-script word in the script most of it is in; then (`whole`) everything
    Cyrillic, everything Latin. None for a text without look-alike letters of the other script (the
    usual one: two C-level passes tell). Linear in the length of `text`."""
    cyrillic = text.translate(_TO_CYRILLIC)
    latin = text.translate(_TO_LATIN)
    has_latin, has_cyrillic = cyrillic != text, latin != text
    out: list[str] = []
    if has_latin and has_cyrillic:
        out.append(_WORD_RE.sub(_majority_script, text))
    if whole:
        out += [v for v in (cyrillic, latin) if v != text]
    return [v for k, v in enumerate(out) if v != text and v not in out[:k]]


def _first_reading[T](text: str, read: Callable[[str], T | None], *, whole: bool = False) -> T | None:
    """`read(text)`, or else `read` of the first confusable-folded reading it understands (`whole`:
    also the text all in Cyrillic, all in Latin: for the short header cells)."""
    found = read(text)
    if found is not None:
        return found
    for variant in confusable_variants(text, whole=whole):
        found = read(variant)
        if found is not None:
            return found
    return None


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
    """The appendix column a header cell names, or None (Russian, Kazakh or English, any case; Latin
    look-alike letters in a Cyrillic word, or the reverse, are read as the letters they imitate)."""
    if len(text) > 600:
        return None
    return _first_reading(text, _header_field, whole=True)


def _header_field(text: str) -> Field | None:
    folded = _fold(text)
    if not folded or len(folded) > 300:
        return None
    for name, pattern in _HEADER_PATTERNS:
        if pattern.search(folded):
            return name
    return None


def section_circuit(text: str) -> CircuitName | None:
    """The circuit a section row names (`Локальная сеть внутреннего контура` -> internal), or None
    (confusables folded as for :func:`header_field`)."""
    if len(text) > 400:
        return None
    return _first_reading(text, _section_circuit)


def _section_circuit(text: str) -> CircuitName | None:
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
    return _first_reading(title[:200], _sheet_circuit)


def _sheet_circuit(title: str) -> CircuitName | None:
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


def _unmapped(row: Sequence[object], cols: Mapping[Field, int], col_base: int) -> tuple[tuple[str, str], ...]:
    """The header row's non-empty cells that name no field (or a field an earlier column took):
    (column letter, header as typed, on one line)."""
    taken = set(cols.values())
    return tuple(
        (column_letter(col_base + i), " ".join(cell_text(v).split())[:200])
        for i, v in enumerate(row)
        if i not in taken and v not in ("", None) and cell_text(v).strip()
    )


# `?` where a letter was: a text saved in a code page without its letters (Kazakh in cp1251)
_LOSSY_RE: Final = re.compile(r"[^\W\d_]\?|\?[^\W\d_]")


def _lossy_cells(row: Sequence[object]) -> list[str]:
    """The cells of `row` with `?` inside words, when there are at least two such places."""
    cells = [v for v in row if type(v) is str and "?" in v]
    if sum(len(_LOSSY_RE.findall(v[:600])) for v in cells) < 2:
        return []
    return [v for v in cells if _LOSSY_RE.search(v[:600])]


def _lossy_error(file: str, where: str | None, row: int | None, cells: Sequence[str]) -> InputError:
    shown = ", ".join(repr(" ".join(c.split())[:60]) for c in cells[:3])
    at = f"the header row (row {row})" if row is not None else "the first rows"
    return InputError(
        file,
        f"{at} has '?' where letters were ({shown}): the file was saved in an encoding without those "
        "letters (Kazakh letters in cp1251), and what they were is lost",
        where=where,
        fix="save it again from Excel as 'CSV UTF-8 (comma delimited)', or send the .xlsx",
    )


def _is_header(found: Mapping[Field, int]) -> bool:
    return "ip" in found and "hostname" in found and len(found) >= 3


_EXPECTED_HEADERS: Final = (
    "expected a header row with at least the columns 'Сетевое имя рабочей станции/серверного оборудования' "
    "(network name) and 'IP-адрес' (IP address) of the appendix form"
)


def _find_header(rows: Sequence[Sequence[object]]) -> tuple[int, dict[Field, int]] | tuple[None, dict[Field, int]]:
    """The index of the header row and its columns; or (None, the best near-miss found)."""
    i, found = _find_header_at(rows)
    return (i, found) if i is not None and _is_header(found) else (None, found)


def _find_header_at(rows: Sequence[Sequence[object]]) -> tuple[int | None, dict[Field, int]]:
    """The header row (index, columns), or else the best near-miss (its index and columns)."""
    best: dict[Field, int] = {}
    best_i: int | None = None
    for i, row in enumerate(rows):
        if not any(type(v) is str and v for v in row):
            continue
        found = _header_map(row)
        if _is_header(found):
            return i, found
        if len(found) > len(best):
            best, best_i = found, i
    return best_i, best


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


def _footer_text(text: str) -> bool | None:
    return True if _FOOTER_RE.search(_fold(text)) else None


def _is_footer_text(own: Iterable[object]) -> bool:
    return any(type(v) is str and _first_reading(v[:2000], _footer_text) for v in own)


_TOTALS_RE: Final = re.compile(r"итог|всего|барлығы|барлыгы|жиыны|total|count|sum\b|количеств|кол-во|саны")


def _is_count(value: object) -> bool:
    """A number as a totals row holds it: an integer, or digits (`30`, `30 шт.`)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return True
    return type(value) is str and re.fullmatch(r"\s*[0-9]{1,7}\s*(?:шт\.?|pcs\.?|дана)?\s*", value) is not None


def _is_totals_row(own: set[object], host: object) -> bool:
    """A totals row: its count in the hostname column, nothing else but a totals word (`Итого`,
    `Всего`, `Total`); no IP, no OS (checked by the caller)."""
    if not _is_count(host):
        return False
    rest = own - {host}
    return all(type(v) is str and _first_reading(v[:200], lambda t: True if _TOTALS_RE.search(_fold(t)) else None)
               for v in rest)


def _hostname_like(text: str) -> bool:
    t = text.strip()
    return bool(t) and not _CYRILLIC_RE.search(t) and not _WS_RE.search(t)


# --- a sheet's rows into a table --------------------------------------------------------------------


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
    limits: ReadLimits = DEFAULT_LIMITS,
) -> tuple[Table | None, SheetInfo, list[SkippedRow]]:
    """Find the header of one sheet (or CSV) and turn the rows under it into :class:`RawRow`.

    `rows` already hold merged values in every cell of their block; `filled` says which cells got
    theirs from a merge (they do not make an otherwise empty row a data row).
    """
    title_circuit = sheet_circuit(sheet) if sheet is not None else None
    if not any(_own_values(r, filled.get(i)) for i, r in enumerate(rows)):
        return None, SheetInfo(file, sheet, "empty", circuit=title_circuit), []
    h_at, cols = _find_header_at(rows)
    where = f"sheet {sheet!r}" if sheet is not None else None
    if h_at is None or not _is_header(cols):
        lossy = _lossy_cells(rows[h_at]) if h_at is not None else []
        if not lossy:
            lossy = [c for r in rows[:30] for c in _lossy_cells(r)]
        if lossy:
            raise _lossy_error(file, where, numbers[h_at] if h_at is not None else None, lossy)
        if cols and h_at is not None:
            names = ", ".join(sorted(cols))
            missing = " and ".join(f for f in ("hostname", "ip") if f not in cols) or "enough columns"
            strange = _unmapped(rows[h_at], cols, col_base)
            msg = (f"no header row found: the best candidate, row {numbers[h_at]}, has {names} but no {missing}"
                   + (f"; not understood there: {_columns_text(strange)}" if strange else ""))
        else:
            msg = "no header row found: none of the appendix form's columns were recognised"
        raise InputError(file, msg, where=where, fix=_EXPECTED_HEADERS + "; add it, or remove the sheet")
    h_idx = h_at
    header_row = numbers[h_idx]
    lossy = _lossy_cells(rows[h_idx])
    if lossy:
        raise _lossy_error(file, where, header_row, lossy)
    unmapped = _unmapped(rows[h_idx], cols, col_base)
    if "sb" not in cols and unmapped:
        raise InputError(
            file,
            f"the header row (row {header_row}) has no state-body column, and {_columns_text(unmapped)} "
            "were not understood: one of them may hold it, and rows of another state body would be taken "
            "for this one's",
            where=where,
            fix="name the column as in the form ('Наименование государственного органа'), or delete the "
            "columns that are not part of it",
        )

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
            if (osv == "" or osv is None) and _is_totals_row(own, hv):
                footer = True
                skipped.append(SkippedRow(file, sheet, n, "footer"))
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
    check_cells({j: cells[f] for f, j in zip(DATA_FIELDS, index, strict=True) if j < width}, file, sheet,
                row_numbers, col_base, limits)
    letters: dict[Field, str] = {f: column_letter(col_base + c) for f, c in sorted(cols.items(), key=lambda x: x[1])}
    table = Table(file, sheet, header_row, letters, row_numbers, circuits, cells)
    info = SheetInfo(file, sheet, "read", header_row=header_row, circuit=top_circuit, data_rows=len(selected),
                     unmapped=unmapped)
    return table, info, skipped


def _columns_text(columns: Sequence[tuple[str, str]]) -> str:
    """`column D 'Примечание'` / `columns D 'Примечание', H 'Инв. №'` (at most five shown)."""
    shown = ", ".join(f"{letter} {header!r}" for letter, header in columns[:5])
    more = f" and {len(columns) - 5} more" if len(columns) > 5 else ""
    return f"column{'s' if len(columns) > 1 else ''} {shown}{more}"
