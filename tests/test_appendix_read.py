"""Reading appendix files (msib.appendix.read): merged cells, hidden sheets, Excel numbers and dates,
CSV encodings and delimiters, and what is refused.

Workbooks are written with openpyxl (merged cells, several sheets, hidden sheets), CSV files in
the encodings SBs really send (tests/data/appendix_forms.py).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from data.appendix_forms import HEADERS, SAMPLE_ROWS, SB, SITE_YAML, write_csv, write_grid, write_xlsx_sheets
from msib.appendix import check_rows, read_appendix
from msib.errors import InputError
from msib.site import parse_site

PLAN = parse_site(yaml.safe_load(SITE_YAML), "site.yml")
AS_OF = dt.date(2025, 11, 1)
ROWS = list(SAMPLE_ROWS)


# --- workbooks: merged cells, sheets, cell types ----------------------------------------------------


def test_merged_sb_name_fills_every_row_of_its_block(tmp_path: Path) -> None:
    rows: list[list[object]] = [HEADERS["ru"], ["Локальная сеть внутреннего контура"]]
    for i in range(4):
        rows.append([i + 1, None, "ИТ", "каб. 1", "Иванов", f"mf-{i}", f"10.20.2.{i + 1}", "Windows 10"])
    rows[2][1] = "Министерство финансов РК"  # B3, merged down to B6
    rows.append([5, SB, "ИТ", "каб. 2", "Петров", "arm-5", "10.20.2.5", "Windows 10"])
    path = write_grid(tmp_path / "merged.xlsx", {None: rows}, merges={None: ["B3:B6"]})
    table = read_appendix(path).tables[0]
    assert [r.sb for r in table.rows] == ["Министерство финансов РК"] * 4 + [SB]
    appendix = check_rows([read_appendix(path)], PLAN, as_of=AS_OF)
    assert [(r.row, r.reason, r.column) for r in appendix.rejected] == [
        (3, "unknown_state_body", "B"), (4, "unknown_state_body", "B"), (5, "unknown_state_body", "B"),
        (6, "unknown_state_body", "B"),
    ]
    assert [o.hostname for o in appendix.objects] == ["arm-5"]


def test_merged_block_over_empty_rows_makes_no_data_rows(tmp_path: Path) -> None:
    path = write_grid(tmp_path / "long-merge.xlsx", {None: [
        HEADERS["ru"],
        ["Локальная сеть внутреннего контура"],
        [1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10"],
    ]}, merges={None: ["B3:B9"]})  # merged down far below the last filled row
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
    path = write_grid(tmp_path / "numbers.xlsx", {"Внутренний": [
        HEADERS["ru"],
        [1.0, SB, 2024, dt.date(2024, 1, 2), "Иванов", 12345, 10.2, 7],
    ]})
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


def test_large_sheets_read_row_by_row_give_the_same_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from msib.appendix import read as read_module

    rows: list[list[object]] = [[], [None, "Сведения об объекте МСИБ"], [None, *HEADERS["ru"]],
                                [None, "Локальная сеть внутреннего контура"]]
    for i in range(6):
        rows.append([None, i + 1, None if i else SB, "ИТ", "каб. 1", "Иванов", f"arm-{i}", f"10.20.1.{i + 1}", 7.0])
    path = write_grid(tmp_path / "a.xlsx", {None: rows}, merges={None: ["C5:C10", "B4:I4"]})
    usual = read_appendix(path)
    monkeypatch.setattr(read_module, "_LEAN_CELLS", 0)  # every sheet counts as large
    lean = read_appendix(path)
    assert [t.rows for t in lean.tables] == [t.rows for t in usual.tables]
    assert lean.skipped == usual.skipped and lean.sheets == usual.sheets
