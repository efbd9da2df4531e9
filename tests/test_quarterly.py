"""The quarterly report: per SB appendix changes, SIEM registration, checks, containment, silent periods."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path

import pytest

from fleet_helpers import lab_appendices, site_data, write_lab_like_fleet, write_sb
from msib import runlog
from msib.errors import InputError
from msib.fleet.build import build_fleet
from msib.fleet.model import load_fleet
from msib.fleet.quarterly import quarter_bounds, quarterly, render_markdown, write_quarterly
from msib.health.history import History
from msib.health.model import SbHealth, SourceHealth

REPO = Path(__file__).resolve().parents[1]
Q4_START, Q4_END = quarter_bounds("2026Q4")
IN_Q4 = Q4_START + 40 * 86400


def _fleet_with_history(tmp_path: Path) -> Path:
    root = write_lab_like_fleet(tmp_path / "fleet")
    hostile = site_data("akm") | {"code": "evil", "state_body": "<script>alert(1)</script> | *bold*"}
    write_sb(root, "evil", hostile, {"2026Q4.csv": lab_appendices("akm")["2026Q4.csv"].replace(
        "Лабораторный акимат", "<script>alert(1)</script> | *bold*")})
    fleet = load_fleet(root)
    assert all(r.ok for r in build_fleet(fleet)), [r.error for r in build_fleet(fleet)]
    inv = fleet.inventory_dir("lab")
    for t, failed in ((IN_Q4, 1), (IN_Q4 + 86400, 0), (Q4_START - 86400, 5)):
        runlog.record(inv, "check", {"passed": 70 - failed, "failed": failed, "errors": 0,
                                     "failures": [{"host": "fw-int-1", "check": "MSIB-FW-002", "outcome": "failed"}]
                                     * bool(failed)}, ok=not failed, started=t, finished=t)
    runlog.record(inv, "siem_sync", {"agents": {"add": ["lab-col-int-1"], "remove": [], "unchanged": 5},
                                     "objects": {"add": ["198.18.32.100"], "remove": ["198.18.17.12"],
                                                 "unchanged": 1}}, ok=True, started=IN_Q4, finished=IN_Q4)
    audit = inv.parent / "inventory.contain-audit.jsonl"
    audit.write_text(json.dumps({"ts": runlog.iso(IN_Q4), "action": "block", "address": "198.18.16.100/32",
                                 "reason": "incident 42", "outcome": "blocked", "user": "root",
                                 "firewalls": [{"name": "fw-int-1", "result": "added"}]}) + "\n"
                     + json.dumps({"ts": runlog.iso(Q4_START - 5), "action": "block", "address": "198.18.16.9/32",
                                   "outcome": "blocked", "firewalls": []}) + "\n")
    h = History(inv)
    for at, state in ((IN_Q4, "silent"), (IN_Q4 + 5400, "ok")):
        h.save(SbHealth("lab", "Lab", at, sources=[SourceHealth("object:198.18.16.100", "obj-int-1", "workstation",
                                                                "internal", "198.18.16.100", 60.0, "collector",
                                                                state=state, last_heard=IN_Q4 - 1800)]), days=7)
    evil = fleet.inventory_dir("evil")
    runlog.record(evil, "check", {"passed": 1, "failed": 1, "errors": 0,
                                  "failures": [{"host": "<img src=x onerror=alert(1)>\x1b]0;owned\x07",
                                                "check": "X|Y"}]},
                  ok=False, started=IN_Q4, finished=IN_Q4)
    return root


def test_quarter_bounds() -> None:
    assert quarter_bounds("2027Q1")[0] == Q4_END
    with pytest.raises(InputError, match="is not a quarter"):
        quarter_bounds("2026Q5")


def test_each_sb_has_its_appendix_changes_registrations_checks_containment_and_silences(tmp_path: Path) -> None:
    fleet = load_fleet(_fleet_with_history(tmp_path))
    sbs = {s.code: s for s in quarterly(fleet, "2026Q4", now=Q4_END - 1)}
    lab = sbs["lab"]
    assert lab.appendix["from"] == "2026Q3" and lab.appendix["counts"]["removed"] == 1
    assert [o["hostname"] for o in lab.appendix["removed"]] == ["arm-0102"]
    assert [c["hostname"] for c in lab.appendix["changed"]] == ["obj-ext-1"]
    assert sbs["akm"].appendix == {"note": "first appendix on record: 1 objects"}
    assert lab.checks["runs"] == 2 and lab.checks["last"]["failed"] == 0
    assert lab.checks["failures"] == [{"host": "fw-int-1", "check": "MSIB-FW-002", "runs": 1,
                                       "first": runlog.iso(IN_Q4), "last": runlog.iso(IN_Q4)}]
    assert [r["address"] for r in lab.containment] == ["198.18.16.100/32"]  # the one of Q3 is left out
    assert len(lab.registration) == 1
    (period,) = lab.silences
    assert (period["name"], period["from"], period["to"], period["duration_s"]) == \
        ("obj-int-1", IN_Q4 - 1800, IN_Q4 + 5400, 7200.0)
    assert not any((fleet.state_dir / "tmp").iterdir())  # the quarter's builds are gone


def test_markdown_and_html_are_written_private_with_every_value_escaped(tmp_path: Path) -> None:
    root = _fleet_with_history(tmp_path)
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "report", "quarterly", "--fleet", str(root), "--quarter",
                           "2026Q4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    html_path, md_path = root / "reports" / "quarterly-2026Q4.html", root / "reports" / "quarterly-2026Q4.md"
    for p in (html_path, md_path):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    html = html_path.read_text()
    md = md_path.read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert re.search(r"(?<!\\)[<>]", md) is None  # every angle bracket of Markdown escaped: no raw HTML
    assert "\x1b" not in html + md and "\u241b\\]0;owned\u2407" in md and "\u241b]0;owned\u2407" in html
    assert "\\<script\\>alert(1)\\</script\\> \\| \\*bold\\*" in md and "X\\|Y" in md
    for text in (html, md):
        for part in ("Appendix changes", "Registration changes at the SIEM", "Check results", "Containment actions",
                     "Silent periods", "arm-0102", "MSIB-FW-002", "incident 42", "obj-int-1", "2.0 h"):
            assert part in text, part
    assert stat.S_IMODE((root / "reports").stat().st_mode) == 0o700


def test_a_broken_sb_is_named_in_the_report_and_the_others_are_there(tmp_path: Path) -> None:
    root = _fleet_with_history(tmp_path)
    (root / "sbs" / "akm" / "site.yml").write_text("code: [")
    sbs = quarterly(load_fleet(root), "2026Q4", now=Q4_END - 1)
    text = render_markdown("F", "2026Q4", sbs, Q4_END - 1)
    assert "Skipped: " in text and "not valid YAML" in text and "## lab:" in text
    paths = write_quarterly(load_fleet(root), "2026Q4", tmp_path / "out", now=Q4_END - 1)
    assert paths["html"].is_file()
