"""Header row detection and column mapping (msib.appendix.headers): the header in three languages and anywhere,
section rows, sheet titles, rows skipped on purpose, a sheet without the form's columns."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from data.appendix_forms import (
    FORMS,
    HEADERS,
    SAMPLE_ROWS,
    SB,
    SITE_YAML,
    Form,
    Lang,
    write_form,
    write_grid,
    write_xlsx_sections,
    write_xlsx_sheets,
)
from msib.appendix import CellSource, check_rows, header_field, read_appendix, section_circuit, sheet_circuit
from msib.errors import InputError
from msib.site import parse_site

PLAN = parse_site(yaml.safe_load(SITE_YAML), "site.yml")
AS_OF = dt.date(2025, 11, 1)
ROWS = list(SAMPLE_ROWS)


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
    path = write_grid(tmp_path / "pages.xlsx", {None: [
        HEADERS["ru"],
        ["Локальная сеть внутреннего контура"],
        [1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10"],
        HEADERS["ru"],  # the header printed again on the next page
        [2, SB, "ИТ", "каб. 1", "Петров", "arm-2", "10.20.1.2", "Windows 10"],
        [3],  # a pre-numbered, unfilled row of the form
        [4],
    ]})
    read = read_appendix(path)
    assert [r.hostname for r in read.tables[0].rows] == ["arm-1", "arm-2"]
    assert [(s.row, s.kind) for s in read.skipped] == [(2, "section"), (4, "header"), (6, "no_data"),
                                                      (7, "no_data")]


# --- a sheet without the form's columns: one clear error -------------------------------------------


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
    path = write_grid(tmp_path / "partial.xlsx", {None: [
        ["№ п/п", "Наименование государственного органа", "Структурное подразделение", "IP-адрес"],
        [1, SB, "ИТ", "10.20.1.1"],
    ]})
    err = _error(path)
    assert "no hostname" in err.message
    assert "Сетевое имя" in (err.fix or "")


# --- every header cell mapped or reported (#14) --------------------------------------------------------

def _look_alike(text: str, letters: str) -> str:
    """`text` with each of `letters` (Cyrillic) typed as its Latin look-alike (or the reverse)."""
    swap = dict(zip("аеорсхуіАЕОРСХУКМНТВ", "aeopcxyiAEOPCXYKMHTB", strict=True))
    swap |= {v: k for k, v in swap.items()}
    return "".join(swap[ch] if ch in letters else ch for ch in text)


LATIN_SB = _look_alike("Наименование государственного органа", "а")  # every `а` Latin
assert "государственного" not in LATIN_SB


@pytest.mark.parametrize(("text", "field"), [
    (LATIN_SB, "sb"),
    (_look_alike("IP-адрес", "P"), "ip"),  # a Cyrillic Р in IP
    (_look_alike("Сетевое имя рабочей станции", "ео"), "hostname"),
    (_look_alike("Наименование операционной системы", "ео"), "os"),
    (_look_alike("Физикалық орналасқан жері", "о"), "location"),
    (_look_alike("Структурное подразделение", "ру"), "department"),
    ("ОС", "os"), (_look_alike("ОС", "ОС"), "os"),  # Cyrillic, then all in Latin look-alikes
])
def test_confusables_are_folded_before_matching(text: str, field: str) -> None:
    assert header_field(text) == field


def test_section_row_with_confusables_is_recognised(tmp_path: Path) -> None:
    header = list(HEADERS["ru"])
    path = write_grid(tmp_path / "a.xlsx", {None: [
        header,
        [_look_alike("Локальная сеть внутреннего контура", "ру")],
        [1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10"],
        [_look_alike("Локальная сеть внешнего контура", "ео")],
        [2, SB, "ИТ", "каб. 2", "Петров", "web-1", "192.0.2.10", "Debian 12"],
    ]})
    appendix = check_rows([read_appendix(path)], PLAN, as_of=AS_OF)
    assert appendix.rejected == ()  # not `outside_circuit`: the external section was read
    assert [(o.hostname, o.circuit) for o in appendix.objects] == [("arm-1", "internal"), ("web-1", "external")]


def test_another_sb_is_rejected_when_its_column_is_typed_with_a_latin_letter(tmp_path: Path) -> None:
    header = list(HEADERS["ru"])
    header[1] = LATIN_SB
    path = write_grid(tmp_path / "a.xlsx", {"Внутренний контур": [
        header,
        [1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10"],
        [2, "Министерство финансов РК", "ИТ", "каб. 2", "Петров", "mf-1", "10.20.1.2", "Windows 10"],
    ]})
    appendix = check_rows([read_appendix(path)], PLAN, as_of=AS_OF)
    assert [o.hostname for o in appendix.objects] == ["arm-1"]
    assert [(r.reason, r.column) for r in appendix.rejected] == [("unknown_state_body", "B")]


def test_an_unmapped_column_is_named_in_the_summary_and_the_report(tmp_path: Path) -> None:
    from msib.inventory import build_inventory

    header = [*HEADERS["ru"], "Инвентарный номер", "Примечание"]
    path = write_grid(tmp_path / "a.xlsx", {"Внутренний контур": [
        header, [1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10", "123", "ok"],
    ]})
    (tmp_path / "site.yml").write_text(SITE_YAML)
    result = build_inventory(tmp_path / "site.yml", [path], tmp_path / "inv", as_of=AS_OF)
    assert result.unmapped_columns == (f"{path} [Внутренний контур] I 'Инвентарный номер'",
                                       f"{path} [Внутренний контур] J 'Примечание'")
    assert "columns not understood: " in result.summary() and "'Примечание'" in result.summary()
    import json

    sheet = json.loads((tmp_path / "inv" / "report.json").read_text())["sheets"][0]
    assert sheet["unmapped_columns"] == [{"column": "I", "header": "Инвентарный номер"},
                                         {"column": "J", "header": "Примечание"}]
    md = (tmp_path / "inv" / "report.md").read_text()
    assert "## Columns not understood" in md and "J `Примечание`" in md


def test_a_missing_state_body_column_with_an_unmapped_one_is_unusable(tmp_path: Path) -> None:
    header = list(HEADERS["ru"])
    header[1] = "Госорг. (наим.)"  # understood by no pattern: the SB column cannot be told
    path = write_grid(tmp_path / "a.xlsx", {"Внутренний контур": [
        ["Сведения об объекте МСИБ"], [], header,
        [1, "Министерство финансов РК", "ИТ", "каб. 1", "Иванов", "mf-1", "10.20.1.1", "Windows 10"],
    ]})
    with pytest.raises(InputError) as info:
        read_appendix(path)
    err = info.value
    assert (err.file, err.where, err.exit_code) == (str(path), "sheet 'Внутренний контур'", 2)
    assert "header row (row 3) has no state-body column" in err.message and "B 'Госорг. (наим.)'" in err.message


def test_a_missing_ip_column_names_the_header_row(tmp_path: Path) -> None:
    header = list(HEADERS["ru"])
    header[6] = "Адрес узла"
    path = write_grid(tmp_path / "a.xlsx", {"Лист1": [["Сведения"], header, [1, SB, "ИТ", "к", "И", "a-1", "x", "y"]]})
    with pytest.raises(InputError) as info:
        read_appendix(path)
    assert info.value.where == "sheet 'Лист1'"
    assert "best candidate, row 2, has" in info.value.message and "but no ip" in info.value.message
    assert "G 'Адрес узла'" in info.value.message


def test_lossy_cp1251_kazakh_headers_are_named_with_a_fix(tmp_path: Path) -> None:
    lines = [";".join(HEADERS["kk"]), ";".join(["1", SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Win 10"])]
    path = tmp_path / "kk.csv"
    path.write_bytes("\r\n".join(lines).encode("cp1251", errors="replace"))
    assert b"?" in path.read_bytes()  # what Excel's cp1251 export makes of ә, ң, қ, ұ ...
    with pytest.raises(InputError) as info:
        read_appendix(path)
    assert "'?' where letters were" in info.value.message and "CSV UTF-8" in (info.value.fix or "")
    assert info.value.exit_code == 2


def test_totals_rows_are_footers_not_rejections(tmp_path: Path) -> None:
    path = write_grid(tmp_path / "a.xlsx", {"Внутренний контур": [
        HEADERS["ru"],
        [1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10"],
        [None, None, None, None, None, 1],  # a count alone in the hostname column
        [None, "Итого:", None, None, None, 1],
        [None, None, None, None, "Всего", "1 шт."],
        [None, None, None, None, None, "Итого: 30"],
    ]})
    read = read_appendix(path)
    assert [s.kind for s in read.skipped] == ["footer"] * 4
    appendix = check_rows([read], PLAN, as_of=AS_OF)
    assert appendix.rejected == () and [o.hostname for o in appendix.objects] == ["arm-1"]
