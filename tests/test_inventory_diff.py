"""`msib inventory diff OLD NEW`: what changed between two quarters of one SB."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.appendix_forms import SITE_YAML, Row, write_form
from msib.errors import InputError
from msib.inventory import build_inventory
from msib.inventory.diff import CHANGE_KINDS, diff_inventories, render_diff_markdown

Q2 = [
    Row(host="arm-stay", ip="10.20.1.1", os="Windows 11 Pro"),
    Row(host="arm-gone", ip="10.20.1.2", os="Debian 12"),
    Row(host="arm-moves", ip="10.20.1.3", os="Debian 12"),
    Row(host="arm-readdressed", ip="10.20.1.4", os="Debian 12"),
    Row(host="arm-renamed", ip="10.20.1.5", os="Debian 12"),
    Row(host="arm-upgraded", ip="10.20.1.6", os="Windows 7"),
    Row(host="arm-aging", ip="10.20.1.7", os="Windows 10 Pro"),
    Row(host="arm-relocated", ip="10.20.1.8", loc="этаж 2, каб. 201", os="Debian 12"),
]
Q3 = [
    Row(host="arm-stay", ip="10.20.1.1", os="Win11"),  # the same OS spelled otherwise: no change
    Row(host="arm-moves", ip="192.0.2.3", circuit="external", os="Debian 12"),
    Row(host="arm-readdressed", ip="10.20.2.4", os="Debian 12"),
    Row(host="pc-renamed", ip="10.20.1.5", os="Debian 12"),
    Row(host="arm-upgraded", ip="10.20.1.6", os="Windows 11 Pro"),
    Row(host="arm-aging", ip="10.20.1.7", os="Windows 10 Pro"),
    Row(host="arm-relocated", ip="10.20.1.8", loc="этаж 5, каб. 512", os="Debian 12"),
    Row(host="arm-new", ip="10.20.1.9", os="Debian 12"),
]


@pytest.fixture()
def quarters(tmp_path: Path) -> tuple[Path, Path]:
    site = tmp_path / "site.yml"
    site.write_text(SITE_YAML)
    (tmp_path / "q2").mkdir()
    (tmp_path / "q3").mkdir()
    a, _ = write_form("xlsx_sections", tmp_path / "q2", Q2)
    b, _ = write_form("csv_cp1251", tmp_path / "q3", Q3)
    build_inventory(site, [a], tmp_path / "inv-q2", as_of=dt.date(2025, 7, 1))
    build_inventory(site, [b], tmp_path / "inv-q3", as_of=dt.date(2025, 10, 20))
    return tmp_path / "inv-q2", tmp_path / "inv-q3"


def test_each_kind_of_change_found(quarters: tuple[Path, Path]) -> None:
    d = diff_inventories(*quarters)
    assert [o["hostname"] for o in d.added] == ["arm-new"]
    assert [o["hostname"] for o in d.removed] == ["arm-gone"]
    kinds = {c.new["hostname"]: c.kinds for c in d.changed}
    assert kinds == {
        "arm-moves": ("moved_circuit", "ip_changed"),
        "arm-readdressed": ("ip_changed",),
        "pc-renamed": ("hostname_changed",),
        "arm-upgraded": ("os_changed",),
        "arm-aging": ("newly_eol",),  # Windows 10 passed its end of life (2025-10-14) between the two
        "arm-relocated": ("details_changed",),
    }
    assert d.unchanged == 1
    assert d.counts() == {"added": 1, "removed": 1, "unchanged": 1, "moved_circuit": 1, "ip_changed": 2,
                          "hostname_changed": 1, "os_changed": 1, "newly_eol": 1, "details_changed": 1}
    moved = d.of_kind("moved_circuit")[0]
    assert moved.fields() == {"circuit": ["internal", "external"], "ip": ["10.20.1.3", "192.0.2.3"]}


def test_markdown_lists_removed_for_deregistration(quarters: tuple[Path, Path]) -> None:
    md = render_diff_markdown(diff_inventories(*quarters))
    assert "## Removed (1): deregister these at the SIEM" in md
    assert "| arm-gone | 10.20.1.2 | internal |" in md
    assert "| arm-moves | 192.0.2.3 | circuit | internal | external |" in md
    assert "| pc-renamed | 10.20.1.5 | hostname | arm-renamed | pc-renamed |" in md
    for kind in CHANGE_KINDS:
        assert f"({len(diff_inventories(*quarters).of_kind(kind))})" in md


def test_no_changes_between_identical_inventories(quarters: tuple[Path, Path]) -> None:
    d = diff_inventories(quarters[0], quarters[0])
    assert (d.added, d.removed, d.changed, d.unchanged) == ((), (), (), 8)


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from msib.cli import main; main()", *map(str, args)],
                          capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "200"})


def test_cli_json_and_markdown(quarters: tuple[Path, Path]) -> None:
    proc = _cli("inventory", "diff", "--json", *quarters)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["counts"]["removed"] == 1
    assert data["old"]["as_of"] == "2025-07-01"
    assert data["new"]["sb_code"] == "mcri"
    assert [c["hostname"] for c in data["changed"] if "newly_eol" in c["kinds"]] == ["arm-aging"]
    md = _cli("inventory", "diff", *quarters)
    assert md.returncode == 0
    assert md.stdout.startswith("# Inventory changes:")


def test_not_an_inventory_is_exit_2(quarters: tuple[Path, Path], tmp_path: Path) -> None:
    proc = _cli("inventory", "diff", quarters[0], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path}: no objects.json: not an inventory directory "
                                                "(give a directory written by `msib inventory build`)"]


@pytest.mark.parametrize(
    ("content", "words"),
    [("{}", "not a JSON list"), ("[{\"hostname\": 1}]", "lacks hostname"), ("[", "not readable as JSON")],
)
def test_damaged_objects_json_is_an_input_error(content: str, words: str, quarters: tuple[Path, Path]) -> None:
    (quarters[1] / "objects.json").write_text(content)
    with pytest.raises(InputError, match=words):
        diff_inventories(*quarters)


def test_inventories_of_two_state_bodies_are_not_compared(quarters: tuple[Path, Path]) -> None:
    report = quarters[1] / "report.json"
    data = json.loads(report.read_text())
    data["sb"]["code"] = "other"
    report.write_text(json.dumps(data))
    with pytest.raises(InputError, match="same state body"):
        diff_inventories(*quarters)
