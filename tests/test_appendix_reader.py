"""The appendix readers: what they find in real .xlsx and .csv files, and what they refuse.

Workbooks are written with openpyxl (merged cells, several sheets, hidden sheets), CSV files in
the encodings SBs really send.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from data.appendix_forms import (
    FORMS,
    HEADERS,
    SB,
    SITE_YAML,
    Form,
    Lang,
    Row,
    write_csv,
    write_form,
    write_xlsx_sections,
    write_xlsx_sheets,
)
from msib.appendix import (
    CellSource,
    check_rows,
    classify_os,
    header_field,
    normalize_hostname,
    normalize_ip,
    os_table,
    read_appendix,
    section_circuit,
    sheet_circuit,
)
from msib.errors import InputError
from msib.site import parse_site

PLAN = parse_site(yaml.safe_load(SITE_YAML), "site.yml")
AS_OF = dt.date(2025, 11, 1)
ROWS = [
    Row(host="arm-0001", ip="10.20.1.1"),
    Row(host="arm-0002", ip="10.20.1.2", os="Astra Linux SE 1.7"),
    Row(host="web-01", ip="192.0.2.10", circuit="external", os="Debian 12"),
]


# --- header, sections, sheets: recognised by content ------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "form"),
    [(lang, form) for lang in ("ru", "kk", "en") for form in FORMS if not (lang == "kk" and form == "csv_cp1251")],
)
def test_header_found_in_every_language_and_form(lang: Lang, form: Form, tmp_path: Path) -> None:
    path, places = write_form(form, tmp_path, ROWS, lang=lang)
    read = read_appendix(path)
    tables = read.tables
    assert sum(len(t) for t in tables) == len(ROWS)
    assert {t.columns["hostname"] for t in tables} == {"F"}
    assert {t.columns["ip"] for t in tables} == {"G"}
    by_row = {(t.sheet, n): c for t in tables for n, c in zip(t.row_numbers, t.circuits, strict=True)}
    assert [by_row[p.sheet, p.row] for p in places] == ["internal", "internal", "external"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("СЕТЕВОЕ  ИМЯ\nрабочей станции", "hostname"),
        ("ip-АДРЕС", "ip"),
        ("Наименование\r\nоперационной системы", "os"),
        ("Жұмыс станциясының/серверлік жабдықтың желілік атауы", "hostname"),
        ("Пайдаланушының/жауапты тұлғаның Т.А.Ә.", "responsible"),
        ("Name of the state body", "sb"),
        ("Full name of the user/responsible person", "responsible"),
        ("Physical location (floor, office)", "location"),
        ("Structural unit (department)", "department"),
        ("Р/с №", "no"),
        ("Сведения об объекте МСИБ", None),
        ("Description", None),
    ],
)
def test_header_cell_names_its_column(text: str, field: str | None) -> None:
    assert header_field(text) == field


@pytest.mark.parametrize(
    ("text", "circuit"),
    [
        ("Локальная сеть внутреннего контура", "internal"),
        ("ЛОКАЛЬНАЯ СЕТЬ  ВНЕШНЕГО КОНТУРА", "external"),
        ("Ішкі контурдың жергілікті желісі", "internal"),
        ("Сыртқы контурдың жергілікті желісі", "external"),
        ("Local network of the internal circuit", "internal"),
        ("Local network of the external circuit", "external"),
        ("Сведения об объекте МСИБ", None),
        ("Локальная сеть внутреннего и внешнего контура", None),  # ambiguous: not a section
    ],
)
def test_section_row_names_its_circuit(text: str, circuit: str | None) -> None:
    assert section_circuit(text) == circuit


@pytest.mark.parametrize(
    ("title", "circuit"),
    [("Внутренний контур", "internal"), ("Внешний", "external"), ("Ішкі", "internal"), ("External", "external"),
     ("Лист1", None)],
)
def test_sheet_title_names_its_circuit(title: str, circuit: str | None) -> None:
    assert sheet_circuit(title) == circuit


def test_header_anywhere_keeps_excel_column_letters(tmp_path: Path) -> None:
    path = tmp_path / "offset.xlsx"
    places = write_xlsx_sections(path, ROWS, start_col=3)
    table = read_appendix(path).tables[0]
    assert table.columns["hostname"] == "H"
    assert table.columns["ip"] == "I"
    first = table.rows[0]
    assert first.row == places[0].row
    assert table.cell(first, "ip") == CellSource(str(path), "Лист1", places[0].row, "I")


def test_circuit_named_by_a_row_above_the_header_of_each_sheet(tmp_path: Path) -> None:
    path = tmp_path / "sheets.xlsx"
    places = write_xlsx_sheets(path, ROWS, title_in_row=True)
    read = read_appendix(path)
    assert [s.circuit for s in read.sheets] == ["internal", "external"]
    assert [s.sheet for s in read.sheets] == ["Лист1", "Лист2"]
    appendix = check_rows([read], PLAN, as_of=AS_OF)
    assert [(o.source.sheet, o.source.row, o.circuit) for o in appendix.objects] == [
        (p.sheet, p.row, r.circuit) for p, r in zip(places, ROWS, strict=True)
    ]


def test_rows_that_are_not_objects_are_skipped_and_listed(tmp_path: Path) -> None:
    path = tmp_path / "a.xlsx"
    write_xlsx_sections(path, ROWS)
    read = read_appendix(path)
    kinds = [(s.row, s.kind) for s in read.skipped]
    # rows 1-3 titles, 4 empty, 5 header, 6 column numbers, 7 section, 8-9 data, 10 empty,
    # 11 section, 12 data, 13-14 empty, 15-16 signature
    assert kinds == [(1, "title"), (2, "title"), (3, "title"), (6, "column_numbers"), (7, "section"),
                     (11, "section"), (15, "footer"), (16, "footer")]
    assert read.sheets[0].header_row == 5


def test_repeated_header_and_number_only_rows_are_not_objects(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADERS["ru"])
    ws.append(["Локальная сеть внутреннего контура"])
    ws.append([1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10"])
    ws.append(HEADERS["ru"])  # the header printed again on the next page
    ws.append([2, SB, "ИТ", "каб. 1", "Петров", "arm-2", "10.20.1.2", "Windows 10"])
    ws.append([3])  # a pre-numbered, unfilled row of the form
    ws.append([4])
    path = tmp_path / "pages.xlsx"
    wb.save(path)
    read = read_appendix(path)
    assert [r.hostname for r in read.tables[0].rows] == ["arm-1", "arm-2"]
    assert [(s.row, s.kind) for s in read.skipped] == [(2, "section"), (4, "header"), (6, "no_data"),
                                                      (7, "no_data")]


def test_merged_sb_name_fills_every_row_of_its_block(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADERS["ru"])
    ws.append(["Локальная сеть внутреннего контура"])
    for i in range(4):
        ws.append([i + 1, None, "ИТ", "каб. 1", "Иванов", f"mf-{i}", f"10.20.2.{i + 1}", "Windows 10"])
    ws["B3"] = "Министерство финансов РК"
    ws.merge_cells("B3:B6")
    ws.append([5, SB, "ИТ", "каб. 2", "Петров", "arm-5", "10.20.2.5", "Windows 10"])
    path = tmp_path / "merged.xlsx"
    wb.save(path)
    table = read_appendix(path).tables[0]
    assert [r.sb for r in table.rows] == ["Министерство финансов РК"] * 4 + [SB]
    appendix = check_rows([read_appendix(path)], PLAN, as_of=AS_OF)
    assert [(r.row, r.reason, r.column) for r in appendix.rejected] == [
        (3, "unknown_state_body", "B"), (4, "unknown_state_body", "B"), (5, "unknown_state_body", "B"),
        (6, "unknown_state_body", "B"),
    ]
    assert [o.hostname for o in appendix.objects] == ["arm-5"]


def test_merged_block_over_empty_rows_makes_no_data_rows(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADERS["ru"])
    ws.append(["Локальная сеть внутреннего контура"])
    ws.append([1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10"])
    ws.merge_cells("B3:B9")  # merged down far below the last filled row
    path = tmp_path / "long-merge.xlsx"
    wb.save(path)
    appendix = check_rows([read_appendix(path)], PLAN, as_of=AS_OF)
    assert len(appendix.objects) == 1
    assert appendix.rejected == ()


def test_hidden_and_empty_sheets_are_not_read(tmp_path: Path) -> None:
    path = tmp_path / "hidden.xlsx"
    write_xlsx_sheets(path, ROWS)
    from openpyxl import load_workbook

    wb = load_workbook(path)
    lists = wb.create_sheet("Списки")
    lists["A1"] = "Windows 10"  # a lookup list for a drop-down: no header, hidden
    lists.sheet_state = "hidden"
    wb.create_sheet("Пусто")
    wb.save(path)
    read = read_appendix(path)
    assert [(s.sheet, s.status) for s in read.sheets] == [
        ("Внутренний контур", "read"), ("Внешний контур", "read"), ("Списки", "hidden"), ("Пусто", "empty"),
    ]


def test_numbers_and_dates_from_excel_read_as_text(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Внутренний"
    ws.append(HEADERS["ru"])
    ws.append([1.0, SB, 2024, dt.date(2024, 1, 2), "Иванов", 12345, 10.2, 7])
    path = tmp_path / "numbers.xlsx"
    wb.save(path)
    row = read_appendix(path).tables[0].rows[0]
    assert (row.text("department"), row.text("location"), row.text("hostname"), row.text("ip"),
            row.text("os")) == ("2024", "2024-01-02", "12345", "10.2", "7")
    rejected = check_rows([read_appendix(path)], PLAN, as_of=AS_OF).rejected
    assert [(r.reason, r.value) for r in rejected] == [("invalid_ip", "10.2")]


# --- CSV: encodings and delimiters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "delimiter", "bom", "want_encoding"),
    [
        ("cp1251", ";", False, "cp1251"),
        ("utf-8", ",", True, "utf-8-sig"),
        ("utf-8", ",", False, "utf-8"),
        ("utf-8", ";", False, "utf-8"),
        ("cp1251", ",", False, "cp1251"),
        ("utf-8", "\t", False, "utf-8"),
        ("utf-16", "\t", False, "utf-16"),  # Excel's "Unicode text"
    ],
)
def test_csv_encoding_and_delimiter_detected(encoding: str, delimiter: str, bom: bool, want_encoding: str,
                                             tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    places = write_csv(path, ROWS, encoding=encoding, delimiter=delimiter, bom=bom)
    read = read_appendix(path)
    assert (read.input.encoding, read.input.delimiter) == (want_encoding, delimiter)
    table = read.tables[0]
    assert table.sheet is None
    assert [r.hostname for r in table.rows] == ["arm-0001", "arm-0002", "web-01"]
    assert list(table.row_numbers) == [p.row for p in places]
    assert table.rows[0].sb == SB


def test_csv_line_numbers_count_line_breaks_inside_cells(tmp_path: Path) -> None:
    # the header's "Структурное подразделение\n(департамент)" takes two lines
    path = tmp_path / "a.csv"
    places = write_csv(path, ROWS)
    text = re.split(r"\r\n|\n", path.read_bytes().decode("cp1251"))
    for place, row in zip(places, ROWS, strict=True):
        assert str(row.host) in text[place.row - 1]


# --- what is refused: one clear error, never a traceback --------------------------------------------


def _error(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        read_appendix(path)
    return info.value


def test_no_header_in_a_sheet_names_the_sheet(tmp_path: Path) -> None:
    path = tmp_path / "notes.xlsx"
    write_xlsx_sheets(path, ROWS)
    from openpyxl import load_workbook

    wb = load_workbook(path)
    wb.create_sheet("Инструкция")["A1"] = "Заполните таблицу до 5 числа"
    wb.save(path)
    err = _error(path)
    assert err.where == "sheet 'Инструкция'"
    assert "no header row found" in err.message
    assert err.exit_code == 2


def test_header_without_hostname_or_ip_says_which_is_missing(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["№ п/п", "Наименование государственного органа", "Структурное подразделение", "IP-адрес"])
    ws.append([1, SB, "ИТ", "10.20.1.1"])
    path = tmp_path / "partial.xlsx"
    wb.save(path)
    err = _error(path)
    assert "no hostname" in err.message
    assert "Сетевое имя" in (err.fix or "")


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("broken.xlsx", b"PK\x03\x04 this is not really a zip", "not a readable workbook"),
        ("text.xlsx", "IP-адрес;Сетевое имя\n".encode(), "not a readable workbook"),
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\r\n  \r\n", "empty"),
        ("binary.csv", b"\x00\x01\x02PK\x03\x04", "NUL"),
        ("noheader.csv", b"a;b;c\n1;2;3\n", "no header row found"),
        ("appendix.docx", b"whatever", "unsupported file type"),
    ],
)
def test_unusable_files_are_input_errors(name: str, content: bytes, words: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    err = _error(path)
    assert words in str(err)
    assert str(path) in str(err)
    assert "\n" not in str(err)


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    assert "no such file" in str(_error(tmp_path / "nope.xlsx"))
    assert "directory" in str(_error(tmp_path))


# --- values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("10.20.1.5", "10.20.1.5"), (" 010.020.001.005 ", "10.20.1.5"), ("10,20,1,77", "10.20.1.77"),
     ("10 . 20 . 1 . 7", "10.20.1.7"), ("2001:DB8::0001", "2001:db8::1"), ("::ffff:10.20.1.9", "10.20.1.9")],
)
def test_ip_normalised(text: str, canonical: str) -> None:
    assert normalize_ip(text).text == canonical


@pytest.mark.parametrize(
    "text", ["10.20.1.256", "10.20.1", "10.20.1.1.1", "0.1.2.3", "127.0.0.1", "224.0.0.5", "10.2 0.1.5",
             "10.20.1.5/24", "١٠.٢٠.١.٥", "::1", "dhcp", ""],
)
def test_ip_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        normalize_ip(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("ARM-0003.MCRI.LOCAL", "arm-0003.mcri.local"), (" srv_db-1 ", "srv_db-1"), ("host.", "host"),
     ("a", "a"), ("x\u200b1", "x1")],
)
def test_hostname_normalised(text: str, canonical: str) -> None:
    assert normalize_hostname(text) == canonical


@pytest.mark.parametrize(
    ("text", "why"),
    [("АРМ-1", "Cyrillic"), ("arm 1", "spaces"), ("_arm", "starts or ends"), ("arm-", "starts or ends"),
     ("a..b", "empty part"), ("\u212aelvin", "characters other than"), ("10.20.1.5", "an IP address"),
     ("a" * 64, "longer than 63")],
)
def test_hostname_rejected_with_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalize_hostname(text)


def _os_examples() -> list[tuple[str, str]]:
    return [(example, entry.name) for entry in os_table().systems for example in entry.examples]


@pytest.mark.parametrize(("spelling", "name"), _os_examples())
def test_os_table_examples_classify_as_their_entry(spelling: str, name: str) -> None:
    assert classify_os(spelling, AS_OF).name == name


@pytest.mark.parametrize(
    ("spelling", "as_of", "family", "eol"),
    [
        ("Win 10 Корп.", dt.date(2025, 10, 14), "windows", False),
        ("Win 10 Корп.", dt.date(2025, 10, 15), "windows", True),
        ("Windows 7 Профессиональная", dt.date(2019, 1, 1), "windows", False),
        ("Windows 11 Pro", dt.date(2030, 1, 1), "windows", False),
        ("Astra Linux SE 1.7", dt.date(2030, 1, 1), "linux", None),
        ("Gentoo", dt.date(2030, 1, 1), "linux", None),
        ("MikroTik RouterOS 7", dt.date(2030, 1, 1), "network", None),
        ("macOS 14", dt.date(2030, 1, 1), "other", None),
        ("", dt.date(2030, 1, 1), "other", None),
    ],
)
def test_os_family_and_end_of_life_on_a_date(spelling: str, as_of: dt.date, family: str, eol: bool | None) -> None:
    info = classify_os(spelling, as_of)
    assert (info.family, info.eol) == (family, eol)


# --- the exclusion matcher agrees with the site plan's own ------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.from_regex(r"[a-zA-Z0-9.*?\[\]-]{1,12}", fullmatch=True),
       st.from_regex(r"[a-zA-Z0-9.-]{0,16}", fullmatch=True))
def test_hostname_exclusion_is_the_site_plans(pattern: str, host: str) -> None:
    from msib.appendix import InputFile, ReadResult, Table

    data = yaml.safe_load(SITE_YAML)
    data["excluded"] = [{"hostname": pattern, "reason": "classified_system"}]
    plan = parse_site(data, "site.yml")
    table = Table("a.csv", None, 1, {"hostname": "F", "ip": "G"}, [2], ["internal"],
                  {"sb": [""], "department": [""], "location": [""], "responsible": [""], "hostname": [host],
                   "ip": ["10.20.1.1"], "os": [""]})
    read = ReadResult(InputFile("a.csv", "csv", ""), (table,), (), ())
    appendix = check_rows([read], plan, as_of=AS_OF)
    excluded = [r for r in appendix.rejected if r.reason == "excluded"]
    folded = host.strip().lower().rstrip(".")
    assert bool(excluded) == (bool(folded) and plan.exclusion_for(folded, None) is not None)
