"""Write the example state body's appendix in every input form, and the inventory built from it.

    .venv/bin/python inventories/examples/make_examples.py

The example SB is the one of docs/site plan spec (`site.yml` here). Its quarterly appendix is
written as SBs send it (tests/data/appendix_forms.py makes the same forms for the tests):

- appendix-sections.xlsx  one sheet, title rows, the 1..8 row, both circuit sections, SB merged down
- appendix-sheets.xlsx    one sheet per circuit, named after it
- appendix-kk.xlsx        the same, with the form's Kazakh headers
- appendix-cp1251.csv     Russian-locale Excel export: cp1251, `;`
- appendix-utf8.csv       UTF-8 with BOM, `,`, English headers

`out/` is what `msib inventory build --as-of 2025-11-01` writes from appendix-sections.xlsx (run
from the repository root, so the files are named relative to it).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from data.appendix_forms import (  # noqa: E402
    Row,
    write_csv,
    write_xlsx_sections,
    write_xlsx_sheets,
)
from msib.inventory import build_inventory  # noqa: E402

ROWS = [
    Row(host="ARM-0101.MCRI.LOCAL", ip="10.20.1.11", os="Windows 10 Pro", dept="Департамент цифровизации",
        loc="этаж 2, каб. 201", resp="Ахметова Алия Бекишевна"),
    Row(host="arm-0102", ip=" 010.020.001.012 ", os="Win 10 Корп.", dept="Департамент цифровизации",
        loc="этаж 2, каб. 202", resp="Иванов Сергей Петрович"),
    Row(host="arm-0103", ip="10,20,1,13", os="Astra Linux SE 1.7", dept="Департамент цифровизации",
        loc="этаж 2, каб. 203", resp="Ким Виктор"),
    Row(host="arm-0201", ip="10.20.2.21", os="Windows 7 Профессиональная", dept="Департамент кадров",
        loc="этаж 3, каб. 301", resp="Петрова Ольга"),
    Row(host="arm-0202", ip="10.20.2.22", os="RED OS 7.3", dept="Департамент кадров", loc="этаж 3, каб. 302",
        resp="Омаров Бауыржан"),
    Row(host="srv-file-01", ip="10.20.10.10", os="Windows Server 2019 Standard", dept="Серверная",
        loc="этаж 1", resp="Касымов Даурен"),
    Row(host="srv-db-01", ip="10.20.10.11", os="Windows Server 2012 R2", dept="Серверная", loc="этаж 1",
        resp="Касымов Даурен"),
    Row(host="srv-mail-01", ip="10.20.10.11", os="Debian 11", dept="Серверная", loc="этаж 1",
        resp="Касымов Даурен"),  # duplicate_ip
    Row(host="АРМ-Бухгалтерия", ip="10.20.3.31", os="Windows 10 Pro", dept="Финансовый департамент",
        loc="этаж 4, каб. 401", resp="Ли Анна"),  # invalid_hostname
    Row(host="arm-0302", ip="10.20.3.300", os="Windows 10 Pro", dept="Финансовый департамент",
        loc="этаж 4, каб. 402", resp="Беков Марат"),  # invalid_ip
    Row(host="kgs-archive", ip="10.20.99.15", os="Astra Linux SE 1.7", dept="Серверная", loc="этаж 1",
        resp="Касымов Даурен"),  # excluded
    Row(host="web-01", ip="192.0.2.10", os="Astra Linux SE 1.7", circuit="external", dept="Пресс-служба",
        loc="этаж 1, каб. 101", resp="Смагулов Данияр"),
    Row(host="arm-ext-0102", ip="192.0.2.12", os="Windows 11 Pro", circuit="external", dept="Пресс-служба",
        loc="этаж 1, каб. 102", resp="Оспанова Мадина"),
    Row(host="arm-ext-0103", ip="10.20.5.5", os="Windows 10 Pro", circuit="external", dept="Пресс-служба",
        loc="этаж 1, каб. 103", resp="Жакупов Ильяс"),  # outside_circuit
    Row(host="mf-arm-0501", ip="192.0.2.51", os="Windows 10 Pro", circuit="external",
        sb="Министерство финансов РК", dept="Департамент бюджета", loc="этаж 5",
        resp="Иманбаев Серик"),  # unknown_state_body
]


def main() -> None:
    os.chdir(REPO)
    rel = HERE.relative_to(REPO)
    write_xlsx_sections(rel / "appendix-sections.xlsx", ROWS)
    write_xlsx_sheets(rel / "appendix-sheets.xlsx", ROWS)
    write_xlsx_sheets(rel / "appendix-kk.xlsx", ROWS, lang="kk", title_in_row=True)
    write_csv(rel / "appendix-cp1251.csv", ROWS, encoding="cp1251", delimiter=";")
    write_csv(rel / "appendix-utf8.csv", ROWS, encoding="utf-8", delimiter=",", bom=True, lang="en")
    result = build_inventory(rel / "site.yml", [rel / "appendix-sections.xlsx"], rel / "out",
                             as_of=dt.date(2025, 11, 1))
    print(f"wrote {rel}: {result.summary()}")


if __name__ == "__main__":
    main()
