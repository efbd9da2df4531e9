"""The fleet on disk: survey, the rules across SBs, `msib fleet build` and `msib fleet status` (no lab needed)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet_helpers import lab_appendices, site_data, write_lab_like_fleet, write_sb
from msib import runlog
from msib.cli import register_commands
from msib.errors import InputError
from msib.fleet.build import build_fleet
from msib.fleet.model import appendices, load_fleet, survey
from msib.fleet.status import fleet_status

REPO = Path(__file__).resolve().parents[1]


def _msib(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / ".venv" / "bin" / "msib"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_build_builds_every_sb_and_a_broken_one_is_reported_and_skipped(tmp_path: Path) -> None:
    root = write_lab_like_fleet(tmp_path / "fleet")
    broken = site_data("akm") | {"code": "broken"}
    broken["circuits"]["internal"]["appliances"][0]["address"] = "10.0.0.1"  # outside its circuit
    write_sb(root, "broken", broken, lab_appendices("akm"))
    write_sb(root, "noplan", site_data("akm") | {"code": "noplan"})
    (root / "sbs" / "noplan" / "site.yml").unlink()
    proc = _msib("fleet", "build", "--fleet", str(root), "--json")
    assert proc.returncode == 1, proc.stderr
    data = {sb["code"]: sb for sb in json.loads(proc.stdout)["sbs"]}
    assert data["lab"]["ok"] and data["akm"]["ok"]
    assert (data["lab"]["objects"], data["lab"]["appliances"], data["lab"]["quarter"]) == (2, 6, "2026Q4")
    assert (data["akm"]["objects"], data["akm"]["appliances"]) == (1, 2)
    assert not data["broken"]["ok"] and "sbs/broken/site.yml" in data["broken"]["error"]
    assert "circuits.internal.appliances[0].address" in data["broken"]["error"]
    assert not data["noplan"]["ok"] and "no site plan in the SB directory" in data["noplan"]["error"]
    hosts = (root / "build" / "lab" / "inventory" / "hosts.yml").read_text()
    assert "msib_sb_code: lab" in hosts and "known_hosts_file: " + str(root / "sbs" / "lab" / "known_hosts") in hosts
    # the table for people names the broken SB and why, and still lists the built ones
    table = _msib("fleet", "build", "--fleet", str(root))
    assert table.returncode == 1 and "2 of 4 SBs built" in table.stdout and "outside" in table.stdout


def test_everything_msib_writes_below_the_fleet_is_private_and_git_ignored(tmp_path: Path) -> None:
    root = write_lab_like_fleet(tmp_path / "fleet")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    results = build_fleet(load_fleet(root))
    assert all(r.ok for r in results), [r.error for r in results]
    written = [p for p in (root / "build").rglob("*")]
    assert written
    for p in [root / "build", *written]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    assert "build/" not in status and "sbs/lab/site.yml" in status


def test_two_sbs_claiming_one_code_are_refused_with_both_names(tmp_path: Path) -> None:
    root = write_lab_like_fleet(tmp_path / "fleet")
    write_sb(root, "akm2", site_data("akm"), lab_appendices("akm"))  # its site plan says code akm
    entries = {e.code: e for e in survey(load_fleet(root))}
    for code in ("akm", "akm2"):
        assert not entries[code].ok
        assert "sbs/akm/site.yml and sbs/akm2/site.yml both claim SB code 'akm'" in str(entries[code].error)
    assert entries["lab"].ok
    built = {r.code: r for r in build_fleet(load_fleet(root))}
    assert built["lab"].ok and not built["akm"].ok and not built["akm2"].ok


def test_a_code_that_is_another_plus_a_separator_is_refused_with_both_names(tmp_path: Path) -> None:
    root = write_lab_like_fleet(tmp_path / "fleet")
    write_sb(root, "akm-2", site_data("akm") | {"code": "akm-2"}, lab_appendices("akm"))
    entries = {e.code: e for e in survey(load_fleet(root))}
    assert not entries["akm"].ok and not entries["akm-2"].ok
    for code in ("akm", "akm-2"):
        assert "sbs/akm" in str(entries[code].error) and "sbs/akm-2" in str(entries[code].error)
        assert "prefix" in str(entries[code].error)
    assert entries["lab"].ok


def test_overlapping_networks_are_allowed_between_sbs_and_refused_within_one(tmp_path: Path) -> None:
    root = write_lab_like_fleet(tmp_path / "fleet")
    twin = site_data("akm") | {"code": "twin", "state_body": "Twin akimat"}  # the same networks as akm
    write_sb(root, "twin", twin, {"2026Q4.csv": lab_appendices("akm")["2026Q4.csv"].replace(
        "Лабораторный акимат", "Twin akimat")})
    built = {r.code: r for r in build_fleet(load_fleet(root))}
    assert built["twin"].ok and built["akm"].ok, (built["twin"].error, built["akm"].error)
    within = site_data("lab") | {"code": "within"}
    within["circuits"]["external"]["networks"] = ["198.18.32.0/20", "198.18.17.0/24"]  # inside the internal one
    write_sb(root, "within", within)
    entry = {e.code: e for e in survey(load_fleet(root))}["within"]
    assert not entry.ok
    assert "circuits.internal.networks: 198.18.16.0/20 overlaps circuits.external.networks 198.18.17.0/24" \
        in str(entry.error)


def test_the_directory_name_is_the_code(tmp_path: Path) -> None:
    root = write_lab_like_fleet(tmp_path / "fleet")
    write_sb(root, "other", site_data("akm") | {"code": "elsewhere"})
    write_sb(root, "Bad_Name", site_data("akm"))
    entries = {e.code: e for e in survey(load_fleet(root))}
    assert "code 'elsewhere' is not its directory name 'other'" in str(entries["other"].error)
    assert "DNS label" in str(entries["Bad_Name"].error)


def test_the_newest_quarter_is_built_and_unnamed_appendices_beside_named_ones_are_refused(tmp_path: Path) -> None:
    sb = write_sb(tmp_path, "x", site_data("lab"), lab_appendices("lab"))
    quarter, files = appendices(sb)
    assert quarter == "2026Q4" and [f.name for f in files] == ["2026Q4.csv"]
    assert appendices(sb, "2026Q3")[0] == "2026Q3"
    (sb / "appendix" / "objects.csv").write_text("x")
    with pytest.raises(InputError, match="not named by quarter"):
        appendices(sb)


def test_fleet_yml_errors_name_the_key(tmp_path: Path) -> None:
    for text, where in (("waves: {size: 0}\n", "waves.size"), ("colour: red\n", "colour"),
                        ("health: {thresholds: {workstation: soon}}\n", "health.thresholds.workstation"),
                        ("health: {windowz: 1}\n", "health.windowz")):
        root = write_lab_like_fleet(tmp_path / where, text)
        with pytest.raises(InputError) as exc:
            load_fleet(root)
        assert exc.value.where == where and exc.value.file == str(root / "fleet.yml")
    proc = _msib("fleet", "status", "--fleet", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "not a directory" in proc.stderr and "Traceback" not in proc.stderr


def test_fleet_siem_fills_in_a_site_plan_that_names_none(tmp_path: Path) -> None:
    siem = site_data("akm")["siem"]
    root = write_lab_like_fleet(tmp_path / "fleet", "siem: " + json.dumps(siem) + "\n")
    plain = site_data("lab")
    del plain["siem"]
    write_sb(root, "lab", plain, lab_appendices("lab"))
    built = {r.code: r for r in build_fleet(load_fleet(root))}
    assert built["lab"].ok, built["lab"].error
    assert "198.19.235.10" in (root / "build" / "lab" / "inventory" / "hosts.yml").read_text()
    assert stat.S_IMODE((root / "build" / "lab" / "site.yml").stat().st_mode) == 0o600


def test_status_shows_what_runs_left_on_disk(tmp_path: Path) -> None:
    root = write_lab_like_fleet(tmp_path / "fleet")
    fleet = load_fleet(root)
    build_fleet(fleet)
    inv = fleet.inventory_dir("lab")
    assert runlog.record(inv, "deploy", {"engine": "pyinfra", "check": False,
                                         "hosts": {"col-int-1": {"changed": 3, "unchanged": 9, "failed": 0}}},
                         ok=True) is None
    runlog.record(inv, "check", {"passed": 70, "failed": 2, "errors": 0, "failures": []}, ok=False)
    rows = {r.code: r for r in fleet_status(fleet)}
    assert (rows["lab"].objects, rows["lab"].appliances) == (2, 6)
    assert rows["lab"].last_deploy is not None and rows["lab"].last_deploy["changed"] == 3
    assert rows["lab"].last_check is not None and rows["lab"].last_check["failed"] == 2
    assert rows["akm"].last_deploy is None and rows["akm"].health is None
    assert stat.S_IMODE(runlog.runlog_path(inv).stat().st_mode) == 0o600
    out = CliRunner().invoke(register_commands(["fleet"]), ["fleet", "status", "--fleet", str(root)])
    assert out.exit_code == 0 and "lab" in out.output and "akm" in out.output


def test_a_per_inventory_command_still_works_on_an_sb_of_the_fleet(tmp_path: Path) -> None:
    root = write_lab_like_fleet(tmp_path / "fleet")
    build_fleet(load_fleet(root))
    inv = root / "build" / "lab" / "inventory"
    proc = _msib("inventory", "diff", str(inv), str(inv), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["counts"]["unchanged"] == 2
    assert os.access(inv / "hosts.yml", os.R_OK)
