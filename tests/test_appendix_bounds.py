"""Bounds (msib.appendix.bounds): file size, rows, columns and cell length, refused before the memory is spent.

Workbooks are crafted part by part where a writer would not make them: references far apart under a
`<dimension>` that claims otherwise (calamine would allocate every cell between them and abort the
process), cells without references, parts declaring gigabytes, OpenDocument repeats. Each is an
exit-2 error naming the file, the sheet and the flag that raises the bound, never an abort, a
MemoryError or a traceback.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from data.appendix_forms import HEADERS, SB, SITE_YAML, Row, write_csv, write_grid
from msib.appendix import read_appendix
from msib.errors import InputError
from msib.inventory import build_inventory

AS_OF = dt.date(2025, 11, 1)
NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _xlsx(path: Path, sheet_data: str, *, dimension: str = "A1:H2", prefix: str = "") -> Path:
    """A minimal workbook: one sheet `Лист1` whose <sheetData> is `sheet_data` (as typed)."""
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{NS}"' if prefix else f'xmlns="{NS}"'
    sheet = (f'<?xml version="1.0" encoding="UTF-8"?><{p}worksheet {xmlns}><{p}dimension ref="{dimension}"/>'
             f"<{p}sheetData>{sheet_data}</{p}sheetData></{p}worksheet>")
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
        'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
        'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
        f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>",
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{NS}" xmlns:r="{rel}"><sheets>'
        '<sheet name="Лист1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        f'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{rel}/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return path


def _header_xml(row: int = 1) -> str:
    cells = "".join(f'<c r="{chr(65 + i)}{row}" t="inlineStr"><is><t>{h}</t></is></c>'
                    for i, h in enumerate(HEADERS["ru"]))
    return f'<row r="{row}">{cells}</row>'


def _data_xml(row: int, host: str = "arm-1", ip: str = "10.20.1.1", col: str = "") -> str:
    values = [str(row), SB, "ИТ", "каб. 1", "Иванов", host, ip, "Windows 10"]
    cells = "".join(f'<c r="{chr(65 + i)}{row}" t="inlineStr"><is><t>{v}</t></is></c>' for i, v in enumerate(values))
    return f'<row r="{row}">{cells}{col}</row>'


def _cli(tmp_path: Path, *args: str | Path) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """The command line build in a child: (result, seconds, the child's peak RSS in MB)."""
    site = tmp_path / "site.yml"
    site.write_text(SITE_YAML.replace("[10.20.0.0/16]", "[10.20.0.0/16, 10.21.0.0/16]"), encoding="utf-8")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "from msib.cli import main; main()", "inventory", "build",
                             "--site", str(site), "--out", str(tmp_path / "inv"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seconds, rss


def _assert_refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


# --- far references, whatever <dimension> claims ----------------------------------------------------


@pytest.mark.parametrize(("far", "words"), [
    ('<row r="1000000"><c r="H1000000" t="inlineStr"><is><t>x</t></is></c></row>', ("1,000,000", "--max-rows")),
    ('<row r="3"><c r="XFD3" t="inlineStr"><is><t>x</t></is></c></row>', ("column XFD", "--max-columns")),
    ('<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>', ("--max-rows",)),
])
def test_far_cells_under_a_lying_dimension_are_refused_not_allocated(far: str, words: tuple[str, ...],
                                                                     tmp_path: Path) -> None:
    book = _xlsx(tmp_path / "a.xlsx", _header_xml() + _data_xml(2) + far, dimension="A1:H2")
    assert book.stat().st_size < 4000
    proc, seconds, rss = _cli(tmp_path, book)
    _assert_refused(proc, str(book), "sheet 'Лист1'", *words)
    assert seconds < 20 and rss < 300  # not one dense range of a trillion cells (calamine aborts on that)
    assert not (tmp_path / "inv").exists()


def test_cells_without_references_are_counted_exactly(tmp_path: Path) -> None:
    from msib.appendix.bounds import ReadLimits

    wide = "".join("<c><v>1</v></c>" for _ in range(300))  # calamine places them one after another
    book = _xlsx(tmp_path / "a.xlsx", _header_xml() + _data_xml(2) + f"<row>{wide}</row>")
    with pytest.raises(InputError, match="300 columns") as info:
        read_appendix(book)
    assert info.value.where == "sheet 'Лист1'" and "--max-columns" in (info.value.fix or "")
    book = _xlsx(tmp_path / "b.xlsx", _header_xml() + "<row><c><v>1</v></c></row>" * 5 + _data_xml(9))
    assert len(read_appendix(book, limits=ReadLimits(max_rows=20)).tables[0]) == 1
    with pytest.raises(InputError, match="rows"):
        read_appendix(book, limits=ReadLimits(max_rows=8))


def test_a_prefixed_namespace_is_checked_too(tmp_path: Path) -> None:
    far = '<x:row r="900000"><x:c r="A900000"><x:v>1</x:v></x:c></x:row>'
    book = _xlsx(tmp_path / "a.xlsx", far, prefix="x")
    with pytest.raises(InputError, match="900,000"):
        read_appendix(book)


def test_a_sheet_with_more_rows_than_allowed_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from msib.appendix.bounds import ReadLimits

    rows = _header_xml() + "".join(_data_xml(r, f"arm-{r}", f"10.20.{r // 250}.{r % 250 + 1}") for r in range(2, 302))
    book = _xlsx(tmp_path / "a.xlsx", rows, dimension="A1:H301")
    with pytest.raises(InputError, match="at least 201 rows") as info:
        read_appendix(book, limits=ReadLimits(max_rows=200))
    assert "--max-rows" in (info.value.fix or "")
    assert len(read_appendix(book, limits=ReadLimits(max_rows=400)).tables[0]) == 300


def test_a_part_declaring_gigabytes_is_refused_from_the_zip_directory(tmp_path: Path) -> None:
    book = _xlsx(tmp_path / "a.xlsx", _header_xml() + _data_xml(2))
    data = bytearray(book.read_bytes())
    huge = 0xF0000000  # ~3.8 GB: what the zip says the sheet unpacks to
    with zipfile.ZipFile(book) as z:
        info = z.getinfo("xl/worksheets/sheet1.xml")
    struct.pack_into("<I", data, info.header_offset + 22, huge)
    at = data.find(b"PK\x01\x02")
    while at != -1:
        (name_len,) = struct.unpack_from("<H", data, at + 28)
        if data[at + 46 : at + 46 + name_len] == b"xl/worksheets/sheet1.xml":
            struct.pack_into("<I", data, at + 24, huge)
        at = data.find(b"PK\x01\x02", at + 4)
    book.write_bytes(bytes(data))
    proc, seconds, _ = _cli(tmp_path, book)
    _assert_refused(proc, "unpacks to", "MB of XML", "--max-rows")
    assert seconds < 20


def test_the_merged_block_past_the_data_fills_nothing_more(tmp_path: Path) -> None:
    path = write_grid(tmp_path / "a.xlsx", {"Внутренний контур": [
        HEADERS["ru"], [1, SB, "ИТ", "каб. 1", "Иванов", "arm-1", "10.20.1.1", "Windows 10", "примечание"],
    ]}, merges={"Внутренний контур": ["I2:XFD2"]})
    table = read_appendix(path).tables[0]
    assert [r.hostname for r in table.rows] == ["arm-1"]


# --- CSV, and cells --------------------------------------------------------------------------------------


def test_file_size_bound(tmp_path: Path) -> None:
    from msib.appendix.bounds import ReadLimits

    path = tmp_path / "a.csv"
    write_csv(path, [Row()])
    with pytest.raises(InputError, match="more than the") as info:
        read_appendix(path, limits=ReadLimits(max_file_bytes=100))
    assert "--max-file-mb" in (info.value.fix or "")


def test_csv_rows_columns_and_cells(tmp_path: Path) -> None:
    from msib.appendix.bounds import ReadLimits

    path = tmp_path / "a.csv"
    write_csv(path, [Row(host=f"arm-{i}", ip=f"10.20.1.{i + 1}") for i in range(20)])
    with pytest.raises(InputError, match="rows"):
        read_appendix(path, limits=ReadLimits(max_rows=10))
    wide = tmp_path / "wide.csv"
    wide.write_text(";".join(HEADERS["ru"]) + "\n" + ";".join(["1", SB, "ИТ", "к", "И", "arm-1", "10.20.1.1", "W"]
                                                               + ["x"] * 300) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="308 columns"):
        read_appendix(wide)
    long = tmp_path / "long.csv"
    write_csv(long, [Row(loc="к" * 40_000)], encoding="utf-8", delimiter=",")
    with pytest.raises(InputError, match="40,000 characters") as info:
        read_appendix(long)
    assert info.value.where is not None and "column D" in info.value.where
    assert "--max-cell-chars" in (info.value.fix or "")
    assert read_appendix(long, limits=ReadLimits(max_cell_chars=50_000)).tables[0].rows[0].location == "к" * 40_000


def test_a_long_cell_in_a_workbook(tmp_path: Path) -> None:
    long = '<c r="E2" t="inlineStr"><is><t>' + "И" * 33_000 + "</t></is></c>"  # Excel itself stops at 32,767
    book = _xlsx(tmp_path / "a.xlsx", _header_xml() + _data_xml(2).replace("</row>", "") .replace(
        '<c r="E2" t="inlineStr"><is><t>Иванов</t></is></c>', long) + "</row>")
    with pytest.raises(InputError, match="33,000 characters") as info:
        read_appendix(book)
    assert info.value.where == "sheet 'Лист1', row 2, column E"


def test_cli_flags_raise_the_bounds(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    write_csv(path, [Row(host=f"arm-{i}", ip=f"10.20.1.{i + 1}") for i in range(20)])
    proc, _, _ = _cli(tmp_path, "--max-rows", "10", path)
    _assert_refused(proc, "rows: more than the 10", "--max-rows")
    proc, _, _ = _cli(tmp_path, "--max-rows", "100", "--max-columns", "20", "--max-cell-chars", "100",
                      "--max-file-mb", "1", path)
    assert proc.returncode == 0, proc.stderr


def test_defaults_are_documented() -> None:
    from msib.appendix.bounds import DEFAULT_LIMITS

    doc = (Path(__file__).resolve().parent.parent / "docs" / "inventory.md").read_text(encoding="utf-8")
    for flag, value in (("--max-file-mb", "64"), ("--max-rows", f"{DEFAULT_LIMITS.max_rows:,}"),
                        ("--max-columns", str(DEFAULT_LIMITS.max_columns)),
                        ("--max-cell-chars", f"{DEFAULT_LIMITS.max_cell_chars:,}")):
        assert f"`{flag}`" in doc and value in doc, flag


# --- OpenDocument, and formats labelled as they are -----------------------------------------------------

ODS_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet>
<table:table table:name="Внутренний контур">{rows}</table:table></office:spreadsheet></office:body>
</office:document-content>"""


def _ods_row(values: list[str], repeat: int = 1) -> str:
    cells = "".join(f'<table:table-cell office:value-type="string"><text:p>{v}</text:p></table:table-cell>'
                    for v in values)
    return f'<table:table-row table:number-rows-repeated="{repeat}">{cells}</table:table-row>'


def _ods(path: Path, rows: str) -> Path:
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
                'opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type='
                '"application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path='
                '"content.xml" manifest:media-type="text/xml"/></manifest:manifest>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        z.writestr("content.xml", ODS_CONTENT.format(rows=rows))
        z.writestr("META-INF/manifest.xml", manifest)
    return path


def test_ods_is_read_and_labelled_ods(tmp_path: Path) -> None:
    book = _ods(tmp_path / "a.ods", _ods_row(HEADERS["ru"]) + _ods_row(["1", SB, "ИТ", "к", "И", "arm-1", "10.20.1.1",
                                                                        "Windows 10"]))
    (tmp_path / "site.yml").write_text(SITE_YAML)
    build_inventory(tmp_path / "site.yml", [book], tmp_path / "inv", as_of=AS_OF)
    import json

    report = json.loads((tmp_path / "inv" / "report.json").read_text())
    assert [i["format"] for i in report["inputs"]] == ["ods"]
    assert "(ods;" in (tmp_path / "inv" / "report.md").read_text()


def test_ods_repeats_are_bounded(tmp_path: Path) -> None:
    book = _ods(tmp_path / "a.ods", _ods_row(HEADERS["ru"]) + _ods_row(["x"] * 8, repeat=1_000_000))
    proc, seconds, rss = _cli(tmp_path, book)
    _assert_refused(proc, "sheet 'Внутренний контур'", "--max-rows")
    assert seconds < 20 and rss < 300


@pytest.mark.parametrize(("magic", "fmt"), [(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504, "xls")])
def test_format_from_content_not_name(magic: bytes, fmt: str, tmp_path: Path) -> None:
    from msib.appendix.read import workbook_format

    path = tmp_path / "appendix.xlsx"
    path.write_bytes(magic)
    assert workbook_format(path) == fmt
    ods = _ods(tmp_path / "b.xlsx", _ods_row(["x"]))
    assert workbook_format(ods) == "ods"


def test_exact_scan_places_cells_as_calamine_does() -> None:
    from msib.appendix.bounds import scan_sheet_xml

    xml = (f'<worksheet xmlns="{NS}"><sheetData><row r="2"><c r="C2"><v>1</v></c><c><v>2</v></c>'
           '<c r="B2" t="e"><v>#REF!</v></c></row><row><c><v>3</v></c></row></sheetData></worksheet>')
    rows, columns, errors = scan_sheet_xml(iter([xml.encode()]))
    assert (rows, columns, errors) == (3, 4, {(1, 1): "#REF!"})
