"""The report writers: JUnit XML, HTML (rendered in a real headless Chromium), Markdown, JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from chromium_helpers import CHROMIUM, chromium
from msib.checks import CheckResult, CheckRun
from msib.contract import Appliance
from msib.report import findings, html_report, junit_xml, markdown, summary_json, write_reports

HOSTILE = '<script>alert("x")</script> & "quotes"'


def _result(host: str, role: str, cid: str, outcome: str, evidence: str, severity: str = "high") -> CheckResult:
    return CheckResult(host=host, role=role, check_id=cid, title=f"title of {cid}", severity=severity,
                       clause=f"why {cid}", outcome=outcome, evidence=evidence, duration_s=0.25)  # type: ignore[arg-type]


def make_run(*, failed: int = 1, errors: int = 0) -> CheckRun:
    hosts = [Appliance("col-int-1", "collector", "198.18.31.10", 22),
             Appliance("fw-int-1", "firewall", "198.18.31.1", 22)]
    run = CheckRun(inventory="/inv", started=1_800_000_000.0, finished=1_800_000_006.5, hosts=hosts,
                   state_body="Ministry of Tests", sb_code="mtest",
                   versions={"msib": "0.1.0", "pytest-testinfra": "10.2.2", "ansible-core": "2.21.5",
                             "pyinfra": "3.10.0"})
    run.results += [_result("col-int-1", "collector", f"MSIB-COL-00{i}", "passed", f"evidence {i}")
                    for i in range(1, 6)]
    run.results += [_result("fw-int-1", "firewall", f"MSIB-FW-00{i}", "failed",
                            f"live ruleset line\nFAILED: {HOSTILE} {i}", severity="critical")
                    for i in range(1, failed + 1)]
    run.results += [_result("fw-int-1", "firewall", f"MSIB-FW-01{i}", "error", "ERROR: ssh failed")
                    for i in range(errors)]
    return run


def test_exit_code_and_summary_follow_the_worst_outcome() -> None:
    assert make_run(failed=0).exit_code() == 0
    assert make_run(failed=2).exit_code() == 1
    assert make_run(failed=2, errors=1).exit_code() == 2
    summary = make_run(failed=2, errors=1).summary()
    assert (summary["passed"], summary["failed"], summary["errors"]) == (5, 2, 1)
    assert {f["check"] for f in summary["failures"]} == {"MSIB-FW-001", "MSIB-FW-002", "MSIB-FW-010"}
    assert set(summary["failures"][0]) == {"host", "check", "evidence"}


def test_findings_are_most_severe_first() -> None:
    run = make_run(failed=1)
    run.results.append(_result("col-int-1", "collector", "MSIB-COL-009", "failed", "x", severity="medium"))
    assert [r.check_id for r in findings(run)] == ["MSIB-FW-001", "MSIB-COL-009"]


def test_junit_has_a_suite_per_host_and_the_evidence_in_each_failure() -> None:
    root = ET.fromstring(junit_xml(make_run(failed=2, errors=1)))
    assert root.tag == "testsuites" and root.get("failures") == "2" and root.get("errors") == "1"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"col-int-1", "fw-int-1"}
    assert suites["col-int-1"].get("tests") == "5" and suites["col-int-1"].get("failures") == "0"
    failures = suites["fw-int-1"].findall("testcase/failure")
    assert len(failures) == 2
    assert HOSTILE in (failures[0].text or "")
    assert failures[0].get("type") == "critical"
    first = suites["fw-int-1"].find("testcase/properties")
    assert first is not None
    props = {p.get("name"): p.get("value") for p in first}
    assert props["id"] == "MSIB-FW-001" and props["severity"] == "critical"


def test_html_escapes_evidence_and_loads_nothing_from_outside() -> None:
    page = html_report(make_run())
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    for external in ("http://", "https://", " src=", "<link", "@import", "url("):
        assert external not in page, external


def test_markdown_lists_findings_and_every_host() -> None:
    text = markdown(make_run(failed=1))
    assert text.startswith("# msib compliance report: FAILED")
    assert "| fw-int-1 | MSIB-FW-001 title of MSIB-FW-001 | critical | FAIL |" in text
    assert "## col-int-1 (collector, 198.18.31.10)" in text and "## fw-int-1 (firewall, 198.18.31.1)" in text
    assert "None: every check passed" in markdown(make_run(failed=0))


def test_every_report_names_the_sb_the_inventory_and_the_versions_first() -> None:
    run = make_run(failed=1)
    head = markdown(run).split("## Findings")[0]
    page = html_report(run).split('id="summary"')[0]
    suite = ET.fromstring(junit_xml(run)).find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    data = json.loads(summary_json(run))
    for text in (head, page, json.dumps(props)):
        for words in ("Ministry of Tests (mtest)", "/inv", "msib 0.1.0", "ansible-core 2.21.5", "pyinfra 3.10.0",
                      "pytest-testinfra 10.2.2"):
            assert words in text, (words, text)
    assert (data["state_body"], data["sb_code"], data["versions"]["pyinfra"]) == ("Ministry of Tests", "mtest",
                                                                                  "3.10.0")


def test_write_reports_writes_all_four_and_json_round_trips(tmp_path: Path) -> None:
    paths = write_reports(make_run(failed=1), tmp_path / "r")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["junit.xml", "report.html", "report.json",
                                                                 "report.md"]
    data = json.loads(paths["json"].read_text())
    assert (data["passed"], data["failed"], data["errors"], data["exit_code"]) == (5, 1, 0, 1)
    assert len(data["results"]) == 6
    assert json.loads(summary_json(make_run(failed=0)))["failures"] == []



@pytest.mark.parametrize(("failed", "errors", "verdict"), [(0, 0, "PASSED"), (3, 0, "FAILED"), (1, 2, "ERRORS")])
def test_report_renders_in_headless_chromium_with_the_summary_on_top(
        tmp_path: Path, failed: int, errors: int, verdict: str) -> None:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed (scripts/setup installs it)"
    run = make_run(failed=failed, errors=errors)
    page = write_reports(run, tmp_path / "report")["html"]
    png = tmp_path / "summary.png"
    shot = chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,700", page.as_uri())
    assert png.is_file(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 700)
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert f'<div class="n" id="count-passed">{run.counts()["passed"]}</div>' in html
    assert f'<div class="n" id="count-failed">{failed}</div>' in html
    assert f'<div class="n" id="count-errors">{errors}</div>' in html
    assert '<div class="n" id="count-hosts">2</div>' in html
    assert 'id="verdict" class="verdict' in html and f"{verdict}:" in html
    # the summary comes before any host section: it is what the screenshot's first screen shows
    assert html.index('id="summary"') < html.index('id="findings"') < html.index('id="host-col-int-1"')
