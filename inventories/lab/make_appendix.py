"""Write inventories/lab/appendix.xlsx: the lab's quarterly appendix as an SB would send it.

Russian headers under title rows, a row of column numbers, the SB name typed once and merged down,
both circuit sections (merged across the row), a signature block, and deliberate mistakes of
several kinds, each noted below with the reason code the build must give it. Every address lies in
198.18.0.0/15 (the lab's range); the two real lab object hosts are obj-int-1 and obj-ext-1.
These addresses are data: nothing ever connects to them from the appendix.

    .venv/bin/python inventories/lab/make_appendix.py      # rewrites appendix.xlsx beside this file
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests"))

from data.appendix_forms import Row, sections_workbook  # noqa: E402  (the one appendix writer)

SB = "Лабораторное министерство цифрового развития"
OTHER_SB = "Министерство финансов Республики Казахстан"

# (department, location, responsible, hostname, ip, os)  -- None: the SB cell comes from the merge
INTERNAL: list[tuple[object, ...]] = [
    ("Департамент цифровизации", "этаж 2, каб. 201", "Ахметов Ерлан Серикович", "obj-int-1", "198.18.16.100",
     "Debian 12"),
    ("Департамент цифровизации", "этаж 2, каб. 201", "Ахметова Алия Бекишевна", "ARM-0101", "198.18.17.11",
     "Windows 10 Pro"),
    ("Департамент цифровизации", "этаж 2, каб. 202", "Иванов Сергей Петрович", "arm-0102.lab.local",
     "198.18.17.12", "Win 10 Корп."),
    ("Департамент цифровизации", "этаж 2, каб. 203", "Жумабаева Динара", "arm-0103", " 198.18.17.13 ",
     "Windows 11 Pro"),
    ("Департамент цифровизации", "этаж 2, каб. 204", "Ким Виктор", "arm-0104", "198.018.017.014",
     "Astra Linux SE 1.7"),  # zero-padded octets: normalised, kept
    ("Департамент цифровизации", "этаж 2, каб. 205", "Сейткали Нурлан", "arm-0105", "198,18,17,15",
     "ALT Linux 10"),  # commas for dots: normalised, kept
    ("Департамент кадров", "этаж 3, каб. 301", "Петрова Ольга", "arm-0201", "198.18.18.21",
     "Windows 7 Профессиональная"),  # past end of life
    ("Департамент кадров", "этаж 3, каб. 302", "Омаров Бауыржан", "arm-0202", "198.18.18.22", "RED OS 7.3"),
    ("Департамент кадров", "этаж 3, каб. 303", "Садыкова Гульнара", "arm-0203", "198.18.18.23",
     "Windows 8.1"),  # past end of life
    ("Департамент кадров", "этаж 3, каб. 304", "Тлеубаев Арман", "arm-0204", "198.18.18.24", "Win7"),
    ("Финансовый департамент", "этаж 4, каб. 401", "Нурпеисова Айгерим", "arm-0301", "198.18.19.31",
     "Windows 10 Enterprise LTSC 2019"),
    ("Финансовый департамент", "этаж 4, каб. 402", "Беков Марат", "arm-0302", "198.18.19.32",
     "Microsoft Windows 10"),
    ("Финансовый департамент", "этаж 4, каб. 403", "Ли Анна", "АРМ-Бухгалтерия", "198.18.19.33",
     "Windows 10 Pro"),  # invalid_hostname (Cyrillic)
    ("Финансовый департамент", "этаж 4, каб. 404", "Габдуллин Тимур", "arm-0304", "198.18.19.300",
     "Windows 10 Pro"),  # invalid_ip (300)
    ("Финансовый департамент", "этаж 4, каб. 405", "Мухамеджанов Асет", "arm-0305", None,
     "Windows 10 Pro"),  # missing_ip
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "SRV-FILE-01", "198.18.24.10",
     "Windows Server 2019 Standard"),
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "srv-db-01", "198.18.24.11",
     "Windows Server 2012 R2"),  # past end of life
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "srv-app-01", "198.18.24.12", "Astra Linux SE 1.6"),
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "srv-mail-01", "198.18.24.11",
     "Debian 11"),  # duplicate_ip (srv-db-01 has it)
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "srv-app-01", "198.18.24.12",
     "Astra Linux SE 1.6"),  # duplicate_row (typed twice)
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "kgs-archive", "198.18.20.15",
     "Astra Linux SE 1.7"),  # excluded (classified system, state-secrets network)
    ("Департамент цифровизации", "этаж 2, каб. 210", "Абенов Ерик", "arm-0110", "198.18.33.40",
     "Windows 10 Pro"),  # outside_circuit (an external address under the internal section)
    ("Департамент цифровизации", "этаж 2, каб. 211", "Сулейменова Жанар", "arm-0111", "198.18.17.21",
     "Windows 10 Pro"),
    ("Департамент цифровизации", "этаж 2, каб. 212", "Ермеков Азат", 22000, "198.18.17.22",
     "Windows 10 Pro"),  # a number stored as a number: hostname "22000"
]

EXTERNAL: list[tuple[object, ...]] = [
    ("Пресс-служба", "этаж 1, каб. 101", "Смагулов Данияр", "obj-ext-1", "198.18.32.100", "Debian 12"),
    ("Пресс-служба", "этаж 1, каб. 102", "Оспанова Мадина", "arm-ext-0102", "198.18.33.12", "Windows 10 Pro"),
    ("Пресс-служба", "этаж 1, каб. 103", "Жакупов Ильяс", "arm-ext-0103", "198.18.33.13", "Win 10 Корп."),
    ("Пресс-служба", "этаж 1, каб. 104", "Әлиева Салтанат", "ARM-EXT-0104.LAB.LOCAL", "198.18.33.14",
     "Windows 11 Pro"),
    ("Приёмная", "этаж 1, каб. 110", "Нұрланов Бекзат", "arm-ext-0110", "198.18.34.10", "Windows 7 SP1"),
    ("Приёмная", "этаж 1, каб. 111", "Тажибаева Камила", "arm-ext-0111", "198.18.34.11", "Ubuntu 22.04 LTS"),
    ("Приёмная", "этаж 1, каб. 112", "Рахимов Олжас", "arm-ext-0112", "198.18.34.12", "RED OS 7.3"),
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "srv-web-01", "198.18.40.10", "Astra Linux SE 1.7"),
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "srv-web-02", "198.18.40.11", "CentOS 7.9"),
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "srv-dns-01", "198.18.40.12", "Debian 10"),
    ("Серверная", "этаж 1, серверная", "Касымов Даурен", "rtr-ext-01", "198.18.40.1", "Cisco IOS 15.2"),
    ("Пресс-служба", "этаж 1, каб. 105", "Ахметжанов Руслан", None, "198.18.33.15",
     "Windows 10 Pro"),  # missing_hostname
    ("Пресс-служба", "этаж 1, каб. 106", "Серикбаева Асель", "arm-ext-0106", "198.18.33.16",
     "Альт Рабочая станция 10"),
    ("Пресс-служба", "этаж 1, каб. 107", "Каирбеков Нуржан", "arm-ext-0107", "198.18.33.17", "Win10"),
]

# rows of another state body pasted in at the end of the external section: unknown_state_body
PASTED = [
    (OTHER_SB, "Департамент бюджета", "этаж 5, каб. 501", "Иманбаев Серик", "mf-arm-0501", "198.18.35.1",
     "Windows 10 Pro"),
]


def rows() -> list[Row]:
    """The appendix's rows: the internal section, the external one, then the pasted rows of another SB."""
    out = [Row(dept=d, loc=loc, resp=resp, host=host, ip=ip, os=os_name, circuit="internal")
           for d, loc, resp, host, ip, os_name in INTERNAL]
    out += [Row(dept=d, loc=loc, resp=resp, host=host, ip=ip, os=os_name, circuit="external")
            for d, loc, resp, host, ip, os_name in EXTERNAL]
    out += [Row(sb=sb, dept=d, loc=loc, resp=resp, host=host, ip=ip, os=os_name, circuit="external")
            for sb, d, loc, resp, host, ip, os_name in PASTED]
    return out


def build(path: Path) -> None:
    footer = ("Руководитель департамента цифровизации ______________ Е. Ахметов", "М.П.",
              "Исполнитель: Ким В., тел. 8 (7172) 00-00-00")
    wb, _ = sections_workbook(rows(), sb=SB, footer=footer, footer_gap=1)
    ws = wb.active
    assert ws is not None
    for col, width in zip("ABCDEFGH", (6, 28, 26, 22, 28, 30, 16, 30), strict=True):
        ws.column_dimensions[col].width = width
    wb.properties.creator = "ЛМЦР"
    wb.properties.created = dt.datetime(2025, 7, 1, 9, 0, 0)
    wb.properties.modified = dt.datetime(2025, 7, 1, 9, 0, 0)
    wb.save(path)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "appendix.xlsx"
    build(target)
    print(f"wrote {target}")
