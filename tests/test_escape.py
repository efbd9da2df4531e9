"""The one escaping layer (msib.escape) and every human-facing output that uses it.

Hostile text — raw HTML, live links, NUL, terminal escape sequences, bidi overrides, rich markup,
backquote runs — goes in through an appendix cell, an objects.json field, check evidence or a
host name, and must come out as inert text: report.md and `msib inventory diff` (rendered by a
CommonMark parser: no tag, no link), junit.xml (parsed by xml.etree), report.html, the check
report's Markdown (the evidence stays inside its code block), and the rich summaries of deploy,
check and update (no MarkupError, no escape sequence reaches the terminal).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from data.appendix_forms import SITE_YAML, Row, write_form
from msib.appendix import InputFile, ReadResult, Table, check_rows
from msib.inventory import build_inventory, render_report_md, report_data
from msib.site import parse_site

AS_OF = dt.date(2025, 11, 1)
HOSTILE = ("<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) "
           "<http://evil.example> **bold** \x1b]0;pwned\x07 \x1b[2J \u202etxt.exe\u202c \u2066x\u2069 "
           "[/bold] [red]x[/] \x00 \x9b31m")
#: characters that must never reach a person: C0/C1 controls (tab and newline aside), bidi controls
FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _rendered(markdown: str) -> str:
    """Markdown as a CommonMark renderer with GFM tables and raw HTML enabled shows it."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def _assert_inert_markdown(markdown: str) -> None:
    assert not FORBIDDEN.search(markdown), repr(FORBIDDEN.search(markdown))
    html = _rendered(markdown)
    assert "<script" not in html and "<img" not in html
    assert "<a " not in html and "href=" not in html and "<strong>bold</strong>" not in html
    assert "&lt;script&gt;" in html  # the text is still there, as text


# --- the functions ------------------------------------------------------------------------------------


def test_plain_leaves_no_control_escape_or_bidi_character() -> None:
    from msib import escape

    out = escape.plain(HOSTILE)
    assert not FORBIDDEN.search(out)
    assert "␛]0;pwned␇" in out and "␀" in out and "\ufffdtxt.exe" in out
    assert escape.plain("a\nb\tc") == "a b c"
    assert escape.plain("a\r\nb\tc", newlines=True) == "a\nb\tc"
    assert escape.plain(None) == ""


def test_markdown_text_and_cells_are_inert() -> None:
    from msib import escape

    _assert_inert_markdown(f"x {escape.md_text(HOSTILE)}\n")
    _assert_inert_markdown(f"| a | b |\n|---|---|\n| {escape.md_cell(HOSTILE + ' | x')} | y |\n")
    assert escape.md_cell("10.20.1.5") == "10.20.1.5"  # nothing to do: untouched
    assert escape.md_cell("arm-0001.mcri.local") == "arm-0001.mcri.local"


@pytest.mark.parametrize("text", ["plain", "a ``` b", "````\nx\n````", "`"])
def test_code_fence_and_span_hold_any_backquote_run(text: str) -> None:
    from msib import escape

    tokens = MarkdownIt("commonmark").parse("\n".join(escape.md_fence(text)) + "\n\nafter\n")
    assert tokens[0].type == "fence" and tokens[0].content == text + "\n"
    assert [t.content for t in tokens if t.type == "inline"] == ["after"]
    inline = MarkdownIt("commonmark").parseInline(escape.md_code(text.replace("\n", " ")))[0].children
    assert inline is not None and [t.type for t in inline] == ["code_inline"]


def test_html_and_xml_text() -> None:
    from msib import escape

    assert escape.html_text('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    element = ET.Element("r", a=escape.xml_text(HOSTILE + chr(0xFFFE) + chr(0xD800)))
    element.text = escape.xml_text(HOSTILE)
    parsed = ET.fromstring(ET.tostring(element, encoding="utf-8"))
    assert parsed.text is not None and "pwned␇" in parsed.text and "\ufffd" in parsed.attrib["a"]


# --- report.md of an inventory ------------------------------------------------------------------------


def _appendix_with(cells: dict[str, list[str]]) -> Any:
    plan = parse_site(yaml.safe_load(SITE_YAML), "site.yml")
    n = len(cells["ip"])
    full = {f: cells.get(f, [""] * n) for f in ("sb", "department", "location", "responsible", "hostname", "ip",
                                                 "os")}
    table = Table(f"a{HOSTILE}.csv", None, 1, {"hostname": "F", "ip": "G", "sb": "B", "os": "H"},
                  list(range(2, 2 + n)), ["internal"] * n, full)
    read = ReadResult(InputFile(f"a{HOSTILE}.csv", "csv", "0" * 64, "utf-8", ","), (table,), (), ())
    return plan, check_rows([read], plan, as_of=AS_OF)


def test_report_md_neutralises_hostile_cells() -> None:
    plan, appendix = _appendix_with({
        "hostname": [HOSTILE, "arm-2", "arm-3"],
        "ip": ["10.20.1.1", "10.20.1.2", "10.20.1.3"],
        "sb": ["", HOSTILE, ""],
        "os": ["", "", "Windows 7 " + HOSTILE],
    })
    assert {r.reason for r in appendix.rejected} == {"invalid_hostname", "unknown_state_body"}
    md = render_report_md(plan, appendix, report_data(plan, appendix)).decode("utf-8")
    _assert_inert_markdown(md)
    assert md.count("pwned␇") >= 3  # the value, the message and the OS as typed: visible, inert


def test_cat_report_md_cannot_retitle_the_terminal(tmp_path: Path) -> None:
    site = tmp_path / "site.yml"
    site.write_text(SITE_YAML)
    path, _ = write_form("csv_utf8", tmp_path, [Row(host=HOSTILE.replace("\x00", ""), ip="10.20.1.1"),
                                                 Row(host="arm-2", ip="10.20.1.2", os=HOSTILE.replace("\x00", ""))])
    build_inventory(site, [path], tmp_path / "inv", as_of=AS_OF)
    data = (tmp_path / "inv" / "report.md").read_bytes()
    assert b"\x1b" not in data and b"\x07" not in data and "\u202e".encode() not in data
    _assert_inert_markdown(data.decode("utf-8"))


# --- msib inventory diff --------------------------------------------------------------------------------


def test_inventory_diff_output_is_inert(tmp_path: Path) -> None:
    site = tmp_path / "site.yml"
    site.write_text(SITE_YAML)
    hostile = HOSTILE.replace("\x00", "")
    for quarter, rows in (("q2", [Row(host="arm-1", ip="10.20.1.1", os="Debian 12"),
                                  Row(host="arm-gone", ip="10.20.1.9", os=hostile)]),
                          ("q3", [Row(host="arm-1", ip="10.20.1.1", os="Debian 12", loc=hostile, dept=hostile),
                                  Row(host="arm-new", ip="10.20.1.8", os=hostile)])):
        (tmp_path / quarter).mkdir()
        path, _ = write_form("csv_utf8", tmp_path / quarter, rows)
        build_inventory(site, [path], tmp_path / f"inv-{quarter}", as_of=AS_OF)
    proc = subprocess.run([sys.executable, "-c", "from msib.cli import main; main()", "inventory", "diff",
                           str(tmp_path / "inv-q2"), str(tmp_path / "inv-q3")], capture_output=True, text=True,
                          check=True, env={**os.environ, "COLUMNS": "200"})
    assert "details_changed" in proc.stdout.replace(" ", "_") or "Department" in proc.stdout
    assert proc.stdout.count("pwned␇") >= 3  # added, removed, the changed details: shown, inert
    _assert_inert_markdown(proc.stdout)


# --- the check report ---------------------------------------------------------------------------------


def _check_run(name: str, evidence: str) -> Any:
    from msib.checks import CheckResult, CheckRun
    from msib.contract import Appliance

    host = Appliance(name=name, role="collector", address="10.20.250.10", port=22)
    results = [CheckResult(host=name, role="collector", check_id="MSIB-HOST-001", title="A check " + name,
                           severity="high", clause="Rules §1", outcome=outcome, evidence=evidence)
               for outcome in ("failed", "error", "passed")]
    return CheckRun(inventory=f"inv{HOSTILE}", started=0.0, finished=1.0, hosts=[host], results=results)


EVIDENCE = "ok line\n```\n# not a heading\n``````\n" + HOSTILE + "\x0b\x0c\x01 last line"


def test_junit_xml_stays_well_formed_with_control_characters(tmp_path: Path) -> None:
    from msib.report import junit_xml

    xml = junit_xml(_check_run(HOSTILE, EVIDENCE))
    root = ET.fromstring(xml.encode("utf-8"))
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.text is not None
    assert "␛]0;pwned␇" in failure.text and not FORBIDDEN.search(failure.text)


def test_check_markdown_evidence_stays_in_its_code_block() -> None:
    from msib.report import markdown

    md = markdown(_check_run(HOSTILE, EVIDENCE))
    assert not FORBIDDEN.search(md)
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(md)
    fences = [t.content for t in tokens if t.type == "fence"]
    assert len(fences) == 3 and all("# not a heading\n``````\n" in f and f.endswith("last line\n") for f in fences)
    assert all(t.content != "not a heading" for t in tokens if t.type == "inline")
    _assert_inert_markdown(md)


def test_check_html_report_is_inert() -> None:
    from msib.report import html_report

    page = html_report(_check_run(HOSTILE, EVIDENCE))
    assert "<script" not in page and "<img" not in page and not FORBIDDEN.search(page)


# --- the rich summaries -------------------------------------------------------------------------------

MARKUP = "[/bold]srv[/] \x1b]0;pwned\x07 [red]"


def _console() -> Any:
    from rich.console import Console

    return Console(file=io.StringIO(), width=200, force_terminal=False, color_system=None)


def _assert_printed_as_text(console: Any) -> None:
    text = console.file.getvalue()
    assert "[/bold]srv[/]" in text and "\x1b" not in text and "␛]0;pwned␇" in text


def test_deploy_summary_prints_markup_as_text() -> None:
    from msib.cli.deploy import LiveProgress, summary_table
    from msib.engines.result import DeployResult, HostResult

    result = DeployResult(engine="pyinfra", check=False, hosts={MARKUP: HostResult(failed=1, error=MARKUP)})
    console = _console()
    console.print(summary_table(result))
    progress = LiveProgress(None)
    progress.start(MARKUP, MARKUP)
    console.print(progress.table())
    _assert_printed_as_text(console)


def test_check_summary_prints_markup_as_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import msib.checks
    from msib.cli.check import check_command

    run = _check_run(MARKUP, "first\n" + MARKUP)

    def fake_run_checks(inventory: Any, *, on_result: Any = None, on_start: Any = None, **_: Any) -> Any:
        if on_start is not None:
            on_start(run.hosts)
        for r in run.results:
            if on_result is not None:
                on_result(r)
        return run

    monkeypatch.setattr(msib.checks, "run_checks", fake_run_checks)
    console, out = _console(), _console()
    check_command(tmp_path, tmp_path / "report", vars_files=[], limit=[], workers=1, console=console, out=out,
                  as_json=False)
    _assert_printed_as_text(out)
    assert "\x1b" not in console.file.getvalue()


def test_update_summary_prints_markup_as_text() -> None:
    from msib.cli.update import print_summary

    out = _console()
    print_summary({"packages": {MARKUP: {"upgraded": [], "security": 0, "restarted": [MARKUP], "error": MARKUP}},
                   "rules": {"sensors": {MARKUP: {"status": "failed", "version": MARKUP, "rules_loaded": 0,
                                                  "error": MARKUP}}}}, out)
    _assert_printed_as_text(out)
    assert out.file.getvalue().count("[/bold]srv[/]") == 6
