"""The one writer of synthetic appendix files, as state bodies send them: for tests, benches and examples.

Each writer takes rows (one :class:`Row` per object row) and returns where each row landed
(`Place`: sheet and row as Excel shows it, or the CSV line), so a test can say "the rejection is at
row 12 of sheet 'Внутренний контур'" without counting by hand.

Forms (see ``FORMS``):
- ``xlsx_sections``: one sheet, title rows, header, the 1..8 row, both circuit sections as rows
  merged across, the SB name typed once and merged down each run of rows that leave it blank, a
  signature footer;
- ``xlsx_sheets``: one sheet per circuit named after it (rows of no circuit on a third sheet);
- ``csv_cp1251``: Russian-locale Excel export, cp1251 and ``;``;
- ``csv_utf8_bom``: UTF-8 with BOM and ``,``; ``csv_utf8``: UTF-8 without BOM and ``,``.

:func:`write_grid` writes a workbook cell by cell, for the odd layouts a test builds by hand.

Who uses it: the appendix and inventory tests (``from data.appendix_forms import ...``, tests/ is on
pytest's path), and, with ``tests/`` put on ``sys.path``, ``bench/bench_inventory.py`` (the 50,000-row
workbook), ``inventories/lab/make_appendix.py`` (the lab's appendix) and
``inventories/examples/make_examples.py``. The product never imports it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import IO, Literal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side

Lang = Literal["ru", "kk", "en"]
Form = Literal["xlsx_sections", "xlsx_sheets", "csv_cp1251", "csv_utf8_bom", "csv_utf8"]
FORMS: tuple[Form, ...] = ("xlsx_sections", "xlsx_sheets", "csv_cp1251", "csv_utf8_bom", "csv_utf8")

SB = "Министерство цифрового развития, инноваций и аэрокосмической промышленности РК"
ALIAS = "МЦРИАП РК"

SITE_YAML = f"""\
state_body: "{SB}"
aliases: ["{ALIAS}"]
code: mcri
siem:
  syslog: {{host: siem.example, port: 6514, transport: tls}}
  api: {{url: "https://siem.example:8443", driver: wazuh}}
circuits:
  internal:
    networks: [10.20.0.0/16]
    appliances:
      - {{name: col-int-1, role: collector, address: 10.20.250.10}}
      - {{name: ids-int-1, role: ids_sensor, address: 10.20.250.11, capture_interface: eth1}}
      - {{name: fw-int-1, role: firewall, address: 10.20.250.1, platform: nftables}}
  external:
    networks: [192.0.2.0/24]
    appliances:
      - {{name: col-ext-1, role: collector, address: 192.0.2.250}}
      - {{name: fw-ext-1, role: firewall, address: 192.0.2.1, platform: cisco_ios}}
excluded:
  - {{network: 10.20.99.0/24, reason: state_secrets}}
  - {{hostname: "kgs-*", reason: classified_system}}
management:
  package_proxy: "http://10.20.250.5:3142"
  ssh_user: msib
  controllers: [10.20.250.100/32]
"""

HEADERS: dict[Lang, list[str]] = {
    "ru": [
        "№ п/п",
        "Наименование государственного органа",
        "Структурное подразделение\n(департамент)",
        "Физическое  месторасположение (этаж, кабинет)",
        "ФИО пользователя/ответственного лица",
        "СЕТЕВОЕ ИМЯ рабочей станции/серверного оборудования",
        "IP-адрес",
        "Наименование операционной\nсистемы",
    ],
    "kk": [
        "Р/с №",
        "Мемлекеттік органның атауы",
        "Құрылымдық бөлімше (департамент)",
        "Физикалық орналасқан жері (қабат, кабинет)",
        "Пайдаланушының/жауапты тұлғаның Т.А.Ә.",
        "Жұмыс станциясының/серверлік жабдықтың желілік атауы",
        "IP-мекенжайы",
        "Операциялық жүйенің атауы",
    ],
    "en": [
        "No.",
        "Name of the state body",
        "Structural unit (department)",
        "Physical location (floor, office)",
        "Full name of the user/responsible person",
        "Network name of the workstation/server equipment",
        "IP address",
        "Name of the operating system",
    ],
}
SECTIONS: dict[str, dict[Lang, str]] = {
    "internal": {
        "ru": "Локальная сеть внутреннего контура",
        "kk": "Ішкі контурдың жергілікті желісі",
        "en": "Local network of the internal circuit",
    },
    "external": {
        "ru": "Локальная сеть внешнего контура",
        "kk": "Сыртқы контурдың жергілікті желісі",
        "en": "Local network of the external circuit",
    },
}
SHEET_TITLES = {"internal": "Внутренний контур", "external": "Внешний контур", None: "Лист3"}
#: The signature block under the table of ``xlsx_sections``.
FOOTER = ("Руководитель департамента ____________ Е. Ахметов", "М.П.")


@dataclass(frozen=True)
class Row:
    """One object row as typed; `sb` None means the merged SB cell (or an empty one in CSV)."""

    host: object = "arm-0001"
    ip: object = "10.20.1.1"
    os: object = "Windows 10 Pro"
    circuit: str | None = "internal"
    sb: object = None
    dept: object = "Департамент цифровизации"
    loc: object = "этаж 2, каб. 201"
    resp: object = "Иванов Иван Иванович"


#: Three plain rows: two internal objects, one external.
SAMPLE_ROWS = (
    Row(host="arm-0001", ip="10.20.1.1"),
    Row(host="arm-0002", ip="10.20.1.2", os="Astra Linux SE 1.7"),
    Row(host="web-01", ip="192.0.2.10", circuit="external", os="Debian 12"),
)


@dataclass(frozen=True)
class Place:
    """Where a row landed: sheet (None for CSV) and row as Excel shows it (CSV: line number)."""

    sheet: str | None
    row: int


def _cells(n: int, row: Row, sb: object) -> list[object]:
    return [n, sb, row.dept, row.loc, row.resp, row.host, row.ip, row.os]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def sections_workbook(rows: Sequence[Row], lang: Lang = "ru", *, start_col: int = 1, sb: str = SB,
                      sheet: str = "Лист1", footer: Sequence[str] = FOOTER,
                      footer_gap: int = 2) -> tuple[Workbook, list[Place]]:
    """The ``xlsx_sections`` workbook (not saved) and where each row landed.

    One sheet `sheet`: title rows, the header at row 5, the 1..8 row, then rows of no circuit (above
    every section row, so none holds them), the internal section, the external one, each section
    row merged across and followed by an empty row; the SB name `sb` typed once and merged down
    each run of rows whose `sb` is None (a row with its own `sb` has it typed); `footer_gap` rows
    below the last row, the `footer` lines.
    """
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet
    c0 = start_col
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    ws.cell(row=1, column=c0 + 5, value="Приложение к Правилам мониторинга обеспечения информационной безопасности")
    ws.cell(row=2, column=c0, value="Сведения об объекте МСИБ").font = bold
    ws.merge_cells(start_row=2, start_column=c0, end_row=2, end_column=c0 + 7)
    ws.cell(row=3, column=c0, value=dt.date(2025, 7, 1))
    for i, text in enumerate(HEADERS[lang]):
        cell = ws.cell(row=5, column=c0 + i, value=text)
        cell.font, cell.alignment, cell.border = bold, wrap, border
    for i in range(8):
        ws.cell(row=6, column=c0 + i, value=i + 1).border = border
    r = 7
    n = 0
    places: list[Place] = [Place(None, 0)] * len(rows)
    order = [(None, None), ("internal", SECTIONS["internal"][lang]), ("external", SECTIONS["external"][lang])]
    for circuit, title in order:
        members = [(k, row) for k, row in enumerate(rows) if row.circuit == circuit]
        if not members:
            continue
        if title is not None:
            ws.cell(row=r, column=c0, value=title).font = bold
            ws.merge_cells(start_row=r, start_column=c0, end_row=r, end_column=c0 + 7)
            r += 1
        first = r
        for k, row in members:
            n += 1
            for i, value in enumerate(_cells(n, row, row.sb)):
                if value is not None:
                    ws.cell(row=r, column=c0 + i, value=value).border = border
            places[k] = Place(sheet, r)
            r += 1
        at = first
        for blank, run in groupby(row.sb is None for _, row in members):
            size = len(list(run))
            if blank:  # the SB name typed once and merged down the run
                ws.cell(row=at, column=c0 + 1, value=sb).alignment = wrap
                if size > 1:
                    ws.merge_cells(start_row=at, start_column=c0 + 1, end_row=at + size - 1, end_column=c0 + 1)
            at += size
        r += 1  # an empty row after each section
    for i, line in enumerate(footer):
        ws.cell(row=r - 1 + footer_gap + i, column=c0 + 1, value=line)
    return wb, places


def write_xlsx_sections(path: Path, rows: Sequence[Row], lang: Lang = "ru", *, start_col: int = 1, sb: str = SB,
                        sheet: str = "Лист1") -> list[Place]:
    """One sheet, sections as merged rows, the SB merged down each section, title and footer rows
    (see :func:`sections_workbook`)."""
    wb, places = sections_workbook(rows, lang, start_col=start_col, sb=sb, sheet=sheet)
    wb.save(path)
    return places


def write_xlsx_sheets(path: Path, rows: Sequence[Row], lang: Lang = "ru", *, title_in_row: bool = False) -> list[Place]:
    """One sheet per circuit; the circuit named by the sheet title, or (`title_in_row`) by a row on top."""
    wb = Workbook()
    first_ws = wb.active
    assert first_ws is not None
    wb.remove(first_ws)
    places: list[Place] = [Place(None, 0)] * len(rows)
    for circuit in ("internal", "external", None):
        members = [(k, row) for k, row in enumerate(rows) if row.circuit == circuit]
        if not members and circuit is None:
            continue
        title = f"Лист{len(wb.sheetnames) + 1}" if title_in_row and circuit else SHEET_TITLES[circuit]
        ws = wb.create_sheet(title)
        r = 1
        if title_in_row and circuit:
            ws.cell(row=1, column=1, value=SECTIONS[circuit][lang])
            ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=8)
            r = 3
        for i, text in enumerate(HEADERS[lang]):
            ws.cell(row=r, column=i + 1, value=text)
        r += 1
        for n, (k, row) in enumerate(members, start=1):
            for i, value in enumerate(_cells(n, row, row.sb if row.sb is not None else SB)):
                if value is not None:
                    ws.cell(row=r, column=i + 1, value=value)
            places[k] = Place(title, r)
            r += 1
    wb.save(path)
    return places


def write_csv(path: Path, rows: Sequence[Row], *, encoding: str = "cp1251", delimiter: str = ";", bom: bool = False,
              lang: Lang = "ru") -> list[Place]:
    """A CSV export: title line, header, the 1..8 line, section lines, rows, a signature line."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    line = 0
    places: list[Place] = [Place(None, 0)] * len(rows)

    def put(cells: list[object]) -> int:
        nonlocal line
        start = line + 1
        writer.writerow([_text(c) for c in cells])
        line += 1 + sum(_text(c).count("\n") for c in cells)
        return start

    put(["Сведения об объекте МСИБ"] + [""] * 7)
    put([""] * 8)
    put(list(HEADERS[lang]))
    put(list(range(1, 9)))
    n = 0
    for circuit in (None, "internal", "external"):  # rows of no circuit above every section line
        members = [(k, row) for k, row in enumerate(rows) if row.circuit == circuit]
        if not members:
            continue
        if circuit is not None:
            put([SECTIONS[circuit][lang]] + [""] * 7)
        for k, row in members:
            n += 1
            places[k] = Place(None, put(_cells(n, row, row.sb if row.sb is not None else SB)))
    put([""] * 8)
    put(["", "Руководитель ____________ Е. Ахметов"] + [""] * 6)
    data = buf.getvalue().encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return places


def write_form(form: Form, directory: Path, rows: Sequence[Row], name: str = "appendix",
               lang: Lang = "ru") -> tuple[Path, list[Place]]:
    """Write `rows` in `form` into `directory`; the file and where each row landed."""
    if form == "xlsx_sections":
        path = directory / f"{name}.xlsx"
        return path, write_xlsx_sections(path, rows, lang)
    if form == "xlsx_sheets":
        path = directory / f"{name}.xlsx"
        return path, write_xlsx_sheets(path, rows, lang)
    path = directory / f"{name}.csv"
    if form == "csv_cp1251":
        return path, write_csv(path, rows, encoding="cp1251", delimiter=";", lang=lang)
    if form == "csv_utf8_bom":
        return path, write_csv(path, rows, encoding="utf-8", delimiter=",", bom=True, lang=lang)
    return path, write_csv(path, rows, encoding="utf-8", delimiter=",", lang=lang)


#: A merged range: Excel's "B3:B6", or (top, left, bottom, right) as 1-based numbers.
Merge = str | tuple[int, int, int, int]


def write_grid[T: (Path, IO[bytes])](target: T, sheets: Mapping[str | None, Iterable[Sequence[object]]], *,
                                     merges: Mapping[str | None, Iterable[Merge]] | None = None,
                                     hidden: Iterable[str] = ()) -> T:
    """A workbook written cell by cell, for the odd layouts a test builds by hand; returns `target`.

    `sheets`: per sheet title (None: the workbook's first sheet, named as openpyxl names it) its
    rows, from A1 down (a None cell stays empty). `merges`: per sheet, the ranges to merge.
    `hidden`: the sheets to hide.
    """
    wb = Workbook()
    first = wb.active
    assert first is not None
    if None not in sheets:
        wb.remove(first)
    hide = set(hidden)
    for title, rows in sheets.items():
        ws = first if title is None else wb.create_sheet(title)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    ws.cell(row=r, column=c, value=value)
        for cells in (merges or {}).get(title, ()):
            if isinstance(cells, str):
                ws.merge_cells(cells)
            else:
                top, left, bottom, right = cells
                ws.merge_cells(start_row=top, start_column=left, end_row=bottom, end_column=right)
        if title in hide:
            ws.sheet_state = "hidden"
    wb.save(target)
    return target
