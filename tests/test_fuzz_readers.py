"""Fuzzing the readers: generated garbage and near-valid appendices and site plans.

For every generated input the whole build runs (`build_inventory` into a fresh directory): it either
writes the complete inventory, or raises :class:`InputError` — one line naming the file — and
writes nothing (no inventory directory, no temporary directory left). Any other exception, a
traceback, fails the test with the input that caused it.

The number of inputs is printed at the end of the module (`fuzz_readers: N generated inputs ...`);
`MSIB_FUZZ_EXAMPLES` scales it (default 100 per strategy: about 800 inputs in the unit suite);
`MSIB_FUZZ_RANDOM=1` draws new inputs each run (the default is a fixed, reproducible set). The long run
of #14 (10,000+ inputs): ``bench/fuzz_readers.sh``.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.appendix_forms import HEADERS, SECTIONS, SITE_YAML, Row, write_grid, write_xlsx_sections
from msib.errors import InputError
from msib.inventory import INVENTORY_FILES, build_inventory
from msib.site import parse_site

EXAMPLES = int(os.environ.get("MSIB_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("MSIB_FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
AS_OF = dt.date(2025, 11, 1)
CASES: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    total = sum(CASES.values())
    line = (f"fuzz_readers: {total} generated inputs ({', '.join(f'{k} {n}' for k, n in sorted(CASES.items()))}); "
            f"built {OUTCOMES['built']}, refused with InputError {OUTCOMES['refused']}; "
            "no other exception, no partial output")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.write_line("")
            reporter.write_line(line)


def _build(kind: str, name: str, content: bytes) -> None:
    """Run the whole build on one generated file; only success or InputError, never partial output."""
    CASES[kind] += 1
    with tempfile.TemporaryDirectory(prefix="msib-fuzz-") as tmp:
        work = Path(tmp)
        site = work / "site.yml"
        site.write_text(SITE_YAML, encoding="utf-8")
        path = work / name
        path.write_bytes(content)
        out = work / "inv"
        try:
            build_inventory(site, [path], out, as_of=AS_OF)
        except InputError as exc:
            OUTCOMES["refused"] += 1
            text = str(exc)
            assert "\n" not in text
            assert str(path) in text
            assert exc.exit_code == 2
            assert not out.exists()
        else:
            OUTCOMES["built"] += 1
            assert sorted(os.listdir(out)) == sorted(INVENTORY_FILES)
        assert sorted(os.listdir(work)) == sorted(["site.yml", name, *(["inv"] if out.exists() else [])])


# --- garbage ----------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from(["a.xlsx", "a.csv", "a.xls", "a.ods"]))
def test_garbage_bytes(content: bytes, name: str) -> None:
    _build("garbage", name, content)


# --- near-valid CSV ---------------------------------------------------------------------------------

_CELL_TEXT = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[0-9]{1,4}([.,][0-9]{1,4}){0,5}", fullmatch=True),
    st.sampled_from(["", " ", "10.20.1.5", "010.020.001.005", "10,20,1,77", "192.0.2.7", "10.20.99.3",
                     "АРМ-1", "arm-1", "KGS-X", "Windows 7", "Win 10 Корп.", "Локальная сеть внешнего контура",
                     "Локальная сеть внутреннего контура", "Подпись", "1", "8", '"', ";;", "\n", "\x00"]),
)


@st.composite
def near_valid_csv(draw: st.DrawFn) -> tuple[str, bytes]:
    lang = draw(st.sampled_from(["ru", "en", "kk"]))
    headers = list(HEADERS[lang])
    if draw(st.booleans()):
        headers = draw(st.permutations(headers))
    keep = draw(st.lists(st.booleans(), min_size=8, max_size=8))
    headers = [h if k else draw(_CELL_TEXT) for h, k in zip(headers, keep, strict=True)]
    rows: list[list[str]] = []
    if draw(st.booleans()):
        rows.append([SECTIONS[draw(st.sampled_from(["internal", "external"]))][lang]])
    rows += draw(st.lists(st.lists(_CELL_TEXT, min_size=0, max_size=10), max_size=25))
    at = draw(st.integers(0, len(rows)))
    rows.insert(at, headers)
    delimiter = draw(st.sampled_from([";", ",", "\t", "|"]))
    quote = draw(st.booleans())
    lines = []
    for row in rows:
        cells = [f'"{c}"' if quote else c for c in row]
        lines.append(delimiter.join(cells))
    text = draw(st.sampled_from(["\r\n", "\n", "\r"])).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1251", "utf-16", "koi8_r"]))
    data = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 9)) == 0 and data:  # now and then, damage a byte
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    return "a.csv", data


@FUZZ
@given(near_valid_csv())
def test_near_valid_csv(case: tuple[str, bytes]) -> None:
    _build("csv", *case)


# --- near-valid xlsx --------------------------------------------------------------------------------

_CELL = st.one_of(
    _CELL_TEXT.filter(lambda s: "\x00" not in s and all(ord(c) >= 32 or c in "\t\n\r" for c in s)),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.booleans(),
    st.dates(min_value=dt.date(1900, 3, 1), max_value=dt.date(2100, 1, 1)),
    st.none(),
)


@st.composite
def near_valid_xlsx(draw: st.DrawFn) -> tuple[str, bytes]:
    titles = draw(st.lists(st.sampled_from(["Лист1", "Внутренний контур", "Внешний", "Ішкі", "External",
                                            "Списки", "Sheet (1)", "x"]), min_size=1, max_size=3, unique=True))
    sheets: dict[str | None, list[list[Any]]] = {}
    merges: dict[str | None, list[tuple[int, int, int, int]]] = {}
    hidden: list[str] = []
    for n, title in enumerate(titles):
        lang = draw(st.sampled_from(["ru", "en", "kk"]))
        rows: list[list[Any]] = draw(st.lists(st.lists(_CELL, max_size=9), max_size=20))
        if draw(st.integers(0, 4)):
            rows.insert(draw(st.integers(0, len(rows))), list(HEADERS[lang]))
        sheets[title], merges[title] = rows, []
        for _ in range(draw(st.integers(0, 3))):
            top, left = draw(st.integers(1, 25)), draw(st.integers(1, 9))
            bottom, right = top + draw(st.integers(0, 30)), left + draw(st.integers(0, 8))
            if (bottom, right) != (top, left):
                merges[title].append((top, left, bottom, right))
        if n and draw(st.integers(0, 3)) == 0:  # openpyxl keeps the first sheet visible
            hidden.append(title)
    return "a.xlsx", write_grid(io.BytesIO(), sheets, merges=merges, hidden=hidden).getvalue()


@FUZZ
@given(near_valid_xlsx())
def test_near_valid_xlsx(case: tuple[str, bytes]) -> None:
    _build("xlsx", *case)


def _valid_xlsx() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.xlsx"
        write_xlsx_sections(path, [Row(host=f"arm-{i}", ip=f"10.20.1.{i + 1}") for i in range(5)]
                            + [Row(host="web", ip="192.0.2.5", circuit="external")])
        return path.read_bytes()


VALID_XLSX = _valid_xlsx()


def _rezip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@st.composite
def damaged_xlsx(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real appendix workbook, damaged: bytes flipped, truncated, or an XML part edited."""
    how = draw(st.sampled_from(["flip", "truncate", "xml"]))
    data = VALID_XLSX
    if how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    elif how == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    else:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = {n: z.read(n) for n in z.namelist()}
        name = draw(st.sampled_from(sorted(members)))
        part = members[name]
        rnd = random.Random(draw(st.integers(0, 2**32)))
        action = draw(st.sampled_from(["drop", "cut", "garble", "delete"]))
        if action == "delete":
            del members[name]
        elif action == "cut":
            members[name] = part[: rnd.randrange(len(part) or 1)]
        elif action == "garble":
            i = rnd.randrange(len(part) or 1)
            members[name] = part[:i] + draw(st.binary(min_size=1, max_size=20)) + part[i:]
        else:
            members[name] = b""
        data = _rezip(members)
    return "a.xlsx", data


@FUZZ
@given(damaged_xlsx())
def test_damaged_xlsx(case: tuple[str, bytes]) -> None:
    _build("damaged_xlsx", *case)


# --- hostile workbooks: references far apart or missing, formula errors, namespaces, OpenDocument repeats ----

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _letters(n: int) -> str:
    out = ""
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


@st.composite
def hostile_xlsx(draw: st.DrawFn) -> tuple[str, bytes]:
    """A workbook written part by part: a header, then cells whose references may be far apart, out of
    order, missing, in other namespaces, or formula errors; a <dimension> that may say anything."""
    prefix = draw(st.sampled_from(["", "", "x"]))
    p = f"{prefix}:" if prefix else ""
    rows = ["".join(f'<{p}c r="{_letters(i + 1)}1" t="inlineStr"><{p}is><{p}t>{h}</{p}t></{p}is></{p}c>'
                    for i, h in enumerate(HEADERS[draw(st.sampled_from(["ru", "kk", "en"]))]))]
    for _ in range(draw(st.integers(0, 12))):
        row = draw(st.one_of(st.integers(2, 40), st.integers(1, 2_000_000)))
        cells = []
        for _ in range(draw(st.integers(0, 9))):
            col = draw(st.one_of(st.integers(1, 10), st.integers(1, 20_000)))
            ref = draw(st.sampled_from([f' r="{_letters(col)}{row}"', "", f' r="{_letters(col)}"', ' r="A0"']))
            kind = draw(st.sampled_from(["s", "e", "n", "b"]))
            value = {"s": draw(_CELL_TEXT.filter(lambda t: t.isprintable())), "e": draw(st.sampled_from(
                ["#REF!", "#N/A", "#DIV/0!", "x"])), "n": str(draw(st.integers(-5, 10**9))), "b": "1"}[kind]
            value = value.replace("&", "&amp;").replace("<", "&lt;")
            if kind == "s":
                cells.append(f'<{p}c{ref} t="inlineStr"><{p}is><{p}t>{value}</{p}t></{p}is></{p}c>')
            else:
                cells.append(f'<{p}c{ref} t="{kind}"><{p}v>{value}</{p}v></{p}c>')
        attr = draw(st.sampled_from([f' r="{row}"', "", ' spans="1:8"']))
        rows.append(f"<{p}row{attr}>" + "".join(cells) + f"</{p}row>")
    rows[0] = f'<{p}row r="1">{rows[0]}</{p}row>'
    dim = draw(st.sampled_from(["A1:H2", "A1:XFD1048576", "A1", ""]))
    xmlns = f'xmlns:{prefix}="{_NS}"' if prefix else f'xmlns="{_NS}"'
    sheet = (f'<?xml version="1.0" encoding="UTF-8"?><{p}worksheet {xmlns}><{p}dimension ref="{dim}"/>'
             f'<{p}sheetData>{"".join(rows)}</{p}sheetData></{p}worksheet>')
    with zipfile.ZipFile(io.BytesIO(VALID_XLSX)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["xl/worksheets/sheet1.xml"] = sheet.encode("utf-8")
    return "a.xlsx", _rezip(members)


@FUZZ
@given(hostile_xlsx())
def test_hostile_xlsx(case: tuple[str, bytes]) -> None:
    _build("hostile_xlsx", *case)


_ODS_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')


@st.composite
def hostile_ods(draw: st.DrawFn) -> tuple[str, bytes]:
    """An OpenDocument spreadsheet whose rows and cells may repeat far (number-*-repeated)."""
    def cell(text: str, repeat: int = 1, valued: bool = True) -> str:
        kind = ' office:value-type="string"' if valued else ""
        text = text.replace("&", "&amp;").replace("<", "&lt;")
        return (f'<table:table-cell table:number-columns-repeated="{repeat}"{kind}><text:p>{text}</text:p>'
                "</table:table-cell>")

    rows = ["<table:table-row>" + "".join(cell(h) for h in HEADERS["ru"]) + "</table:table-row>"]
    for _ in range(draw(st.integers(0, 8))):
        repeat = draw(st.one_of(st.integers(1, 3), st.integers(1, 2_000_000)))
        cells = "".join(cell(draw(_CELL_TEXT.filter(str.isprintable)), draw(st.one_of(
            st.integers(1, 3), st.integers(1, 20_000))), draw(st.booleans())) for _ in range(draw(st.integers(0, 9))))
        rows.append(f'<table:table-row table:number-rows-repeated="{repeat}">{cells}</table:table-row>')
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODS_NS} office:version="1.2">'
               f'<office:body><office:spreadsheet><table:table table:name="Внутренний контур">{"".join(rows)}'
               "</table:table></office:spreadsheet></office:body></office:document-content>")
    manifest = ('<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:'
                'opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type='
                '"application/vnd.oasis.opendocument.spreadsheet"/></manifest:manifest>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        z.writestr("content.xml", content)
        z.writestr("META-INF/manifest.xml", manifest)
    return "a.ods", buf.getvalue()


@FUZZ
@given(hostile_ods())
def test_hostile_ods(case: tuple[str, bytes]) -> None:
    _build("hostile_ods", *case)


# --- the site plan ----------------------------------------------------------------------------------

_YAML_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
              st.sampled_from(["10.20.0.0/16", "10.20.250.10", "collector", "tls", "nftables", "kgs-*"])),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=12,
)


@st.composite
def mutated_plan(draw: st.DrawFn) -> Any:
    data = yaml.safe_load(SITE_YAML)
    for _ in range(draw(st.integers(1, 4))):
        node: Any = data
        path: list[Any] = []
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 2)):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
            path.append(key)
            node = node[key]
        if not path:
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_YAML_VALUE)
    return data


@FUZZ
@given(mutated_plan())
def test_mutated_site_plan(data: Any) -> None:
    CASES["site_plan"] += 1
    try:
        parse_site(data, "site.yml")
    except InputError as exc:
        assert "\n" not in str(exc).strip() or exc.message.count("\n") == str(exc).count("\n")
        assert exc.file == "site.yml"
        assert exc.exit_code == 2
