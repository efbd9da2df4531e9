"""Write appendix files the way state bodies send them, for the appendix and inventory tests.

Each writer takes rows (one :class:`Row` per object row) and returns where each row landed
(`Place`: sheet and row as Excel shows it, or the CSV line), so a test can say "the rejection is at
row 12 of sheet 'Внутренний контур'" without counting by hand.

Forms (see ``FORMS``):
- ``xlsx_sections``: one sheet, title rows, header, the 1..8 row, both circuit sections as rows
  merged across, the SB name typed once and merged down each section, a signature footer;
- ``xlsx_sheets``: one sheet per circuit named after it (rows of no circuit on a third sheet);
- ``csv_cp1251``: Russian-locale Excel export, cp1251 and ``;``;
- ``csv_utf8_bom``: UTF-8 with BOM and ``,``; ``csv_utf8``: UTF-8 without BOM and ``,``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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


@dataclass(frozen=True)
class Place:
    """Where a row landed: sheet (None for CSV) and row as Excel shows it (CSV: line number)."""

    sheet: str | None
    row: int


def _cells(n: int, row: Row, sb: object) -> list[object]:
    return [n, sb, row.dept, row.loc, row.resp, row.host, row.ip, row.os]


def _text(value: object) -> str:
    return "" if value is None else str(value)


def write_xlsx_sections(path: Path, rows: Sequence[Row], lang: Lang = "ru", *, start_col: int = 1) -> list[Place]:
    """One sheet, sections as merged rows, the SB merged down each section, title and footer rows."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Лист1"
    c0 = start_col
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    ws.cell(row=1, column=c0 + 5, value="Приложение к Правилам мониторинга обеспечения информационной безопасности")
    ws.cell(row=2, column=c0, value="Сведения об объекте МСИБ").font = Font(bold=True)
    ws.merge_cells(start_row=2, start_column=c0, end_row=2, end_column=c0 + 7)
    ws.cell(row=3, column=c0, value=dt.date(2025, 7, 1))
    for i, text in enumerate(HEADERS[lang]):
        cell = ws.cell(row=5, column=c0 + i, value=text)
        cell.alignment = Alignment(wrap_text=True)
        cell.border = border
    for i in range(8):
        ws.cell(row=6, column=c0 + i, value=i + 1)
    r = 7
    n = 0
    places: list[Place] = [Place(None, 0)] * len(rows)
    # rows of no circuit first: above every section row, so no section holds them
    order = [(None, None), ("internal", SECTIONS["internal"][lang]), ("external", SECTIONS["external"][lang])]
    for circuit, title in order:
        members = [(k, row) for k, row in enumerate(rows) if row.circuit == circuit]
        if not members:
            continue
        if title is not None:
            ws.cell(row=r, column=c0, value=title)
            ws.merge_cells(start_row=r, start_column=c0, end_row=r, end_column=c0 + 7)
            r += 1
        first = r
        merged_sb = all(row.sb is None for _, row in members)
        for k, row in members:
            n += 1
            for i, value in enumerate(_cells(n, row, row.sb)):
                if value is not None:
                    ws.cell(row=r, column=c0 + i, value=value).border = border
            places[k] = Place("Лист1", r)
            r += 1
        if merged_sb:  # the SB name typed once and merged down the section
            ws.cell(row=first, column=c0 + 1, value=SB)
            if r - 1 > first:
                ws.merge_cells(start_row=first, start_column=c0 + 1, end_row=r - 1, end_column=c0 + 1)
        r += 1  # an empty row between sections
    ws.cell(row=r + 1, column=c0 + 1, value="Руководитель департамента ____________ Е. Ахметов")
    ws.cell(row=r + 2, column=c0 + 1, value="М.П.")
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
