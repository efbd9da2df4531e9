"""`msib inventory build`: the directory it writes, to the letter of outputs.md and the inventory contract.

Files, fields, exit codes 0/1/2, atomic replacement, byte-identical re-runs, excluded objects in
no output file, the lab's own appendix.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from data.appendix_forms import FORMS, SB, SITE_YAML, Form, Row, write_form
from msib.appendix import EXCLUDED_MESSAGE, REASONS, check_rows, read_appendix
from msib.errors import InputError
from msib.inventory import INVENTORY_FILES, RowsRejected, SshSettings, build_inventory, writers
from msib.site import parse_site

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "inventories" / "lab"
AS_OF = dt.date(2025, 11, 1)

ROWS = [
    Row(host="arm-0001", ip="10.20.1.1", os="Windows 10 Pro"),
    Row(host="arm-0002", ip="10.20.1.2", os="Astra Linux SE 1.7"),
    Row(host="arm-0003", ip="10.20.1.2"),  # duplicate_ip
    Row(host="kgs-db-01", ip="10.20.5.50"),  # excluded by hostname pattern
    Row(host="vault-01", ip="10.20.99.7"),  # excluded by network
    Row(host="arm-0004", ip="10.20.5.51", os="Windows 7"),
    Row(host="web-01", ip="192.0.2.10", circuit="external", os="Debian 12"),
]
EXCLUDED_NAMES = ("kgs-db-01", "10.20.5.50", "vault-01", "10.20.99.7")


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.yml"
    path.write_text(SITE_YAML, encoding="utf-8")
    return path


@pytest.fixture()
def appendix(tmp_path: Path) -> Path:
    path, _ = write_form("xlsx_sections", tmp_path, ROWS)
    return path


def _cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from msib.cli import main; main()", *map(str, args)],
        capture_output=True, text=True, check=False, cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# --- the files ----------------------------------------------------------------------------------------


def test_build_writes_exactly_the_inventory_files(site: Path, appendix: Path, tmp_path: Path) -> None:
    out = tmp_path / "inv"
    result = build_inventory(site, [appendix], out, as_of=AS_OF)
    assert sorted(p.name for p in out.iterdir()) == sorted(INVENTORY_FILES)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dir left
    assert (result.objects, result.rejected, result.excluded) == (4, 3, 2)
    assert result.by_reason["duplicate_ip"] == 1
    assert result.by_circuit == {"internal": 3, "external": 1}
    assert result.appliances == 5


def test_rerun_gives_byte_identical_files(site: Path, appendix: Path, tmp_path: Path) -> None:
    build_inventory(site, [appendix], tmp_path / "a", as_of=AS_OF)
    first = _snapshot(tmp_path / "a")
    build_inventory(site, [appendix], tmp_path / "a", as_of=AS_OF)
    build_inventory(site, [appendix], tmp_path / "b", as_of=AS_OF)
    assert _snapshot(tmp_path / "a") == first
    assert _snapshot(tmp_path / "b") == first


def test_hosts_yml_follows_the_contract(site: Path, appendix: Path, tmp_path: Path) -> None:
    build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)
    data = yaml.safe_load((tmp_path / "inv" / "hosts.yml").read_text(encoding="utf-8"))
    top = data["all"]
    v = top["vars"]
    assert v["msib_sb_code"] == "mcri"
    assert v["msib_state_body"] == SB
    assert v["msib_siem"] == {"syslog": {"host": "siem.example", "port": 6514, "transport": "tls"},
                              "api": {"url": "https://siem.example:8443", "driver": "wazuh"}}
    assert v["msib_controllers"] == ["10.20.250.100/32"]
    assert v["msib_package_proxy"] == "http://10.20.250.5:3142"
    internal = v["msib_circuits"]["internal"]
    assert internal["networks"] == ["10.20.0.0/16"]
    assert internal["collectors"] == [{"name": "col-int-1", "address": "10.20.250.10",
                                       "service_address": "10.20.250.10"}]
    assert [a["name"] for a in internal["appliances"]] == ["col-int-1", "ids-int-1", "fw-int-1"]
    assert internal["senders"] == ["10.20.1.1", "10.20.1.2", "10.20.5.51"]
    assert v["msib_circuits"]["external"]["senders"] == ["192.0.2.10"]
    assert v["ansible_user"] == "msib"
    assert v["ansible_become"] is True
    assert v["ansible_python_interpreter"] == "/usr/bin/python3"
    assert v["ansible_ssh_common_args"] == "-o StrictHostKeyChecking=yes"
    children = top["children"]
    assert children["mcri"] == {"children": {"collector": {}, "ids_sensor": {}, "firewall": {}, "netdev": {}}}
    assert list(children["collector"]["hosts"]) == ["col-int-1", "col-ext-1"]
    assert list(children["firewall"]["hosts"]) == ["fw-int-1"]  # nftables only
    assert list(children["netdev"]["hosts"]) == ["fw-ext-1"]  # the cisco_ios firewall
    assert children["netdev"]["hosts"]["fw-ext-1"]["msib_device_type"] == "cisco_ios"
    assert children["circuit_internal"] == {"hosts": {"col-int-1": {}, "ids-int-1": {}, "fw-int-1": {}}}
    assert children["circuit_external"] == {"hosts": {"col-ext-1": {}, "fw-ext-1": {}}}
    col = children["collector"]["hosts"]["col-int-1"]
    assert col == {
        "ansible_host": "10.20.250.10",
        "msib_circuit": "internal",
        "msib_appliance": {"name": "col-int-1", "role": "collector", "address": "10.20.250.10", "lan_address": None,
                           "uplink_address": None, "capture_interface": None, "platform": None, "port": 22,
                           "release": None},
    }
    assert children["firewall"]["hosts"]["fw-int-1"]["msib_appliance"]["platform"] == "nftables"


def test_ssh_settings_reach_both_views_with_strict_host_keys(site: Path, appendix: Path, tmp_path: Path) -> None:
    cfg, key = tmp_path / "ssh config", tmp_path / "id_ed25519"
    cfg.write_text("Host *\n")
    key.write_text("key\n")
    ssh = SshSettings(ssh_config=cfg, known_hosts=tmp_path / "known_hosts", identity_file=key, user="root")
    build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF, ssh=ssh)
    v = yaml.safe_load((tmp_path / "inv" / "hosts.yml").read_text())["all"]["vars"]
    assert v["ansible_ssh_common_args"] == (
        f"-F '{cfg}' -o StrictHostKeyChecking=yes -o UserKnownHostsFile={tmp_path / 'known_hosts'}"
    )
    assert v["ansible_ssh_private_key_file"] == str(key)
    assert v["ansible_user"] == "root"
    assert "ansible_become" not in v
    hosts = _pyinfra_groups(tmp_path / "inv")
    data = dict(hosts["collector"])["col-int-1"]
    assert data["ssh_strict_host_key_checking"] == "yes"
    assert data["ssh_config_file"] == str(cfg)
    assert data["ssh_known_hosts_file"] == str(tmp_path / "known_hosts")
    assert data["ssh_key"] == str(key)
    assert data["ssh_user"] == "root"
    assert "_sudo" not in data


def _pyinfra_groups(directory: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The groups pyinfra takes from the file: module-level lists not starting with `_`."""
    import runpy

    attrs = runpy.run_path(str(directory / "pyinfra_inventory.py"))
    return {k: v for k, v in attrs.items() if not k.startswith("_") and isinstance(v, list)}


PYINFRA_LOAD = """
import json, sys
from pyinfra.api.state import State
from pyinfra.context import ctx_state
ctx_state.set(State())
from pyinfra_cli.inventory import make_inventory
inv = make_inventory(sys.argv[1])
print(json.dumps({h.name: {"groups": sorted(h.groups),
                           "ssh_hostname": h.data.ssh_hostname,
                           "strict": h.data.ssh_strict_host_key_checking,
                           "sudo": h.data._sudo,
                           "circuit": h.data.msib_circuit} for h in inv}))
"""


def test_pyinfra_inventory_is_a_view_of_hosts_yml(site: Path, appendix: Path, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF, ssh=SshSettings(known_hosts=known_hosts))
    groups = _pyinfra_groups(tmp_path / "inv")
    assert {k: [h for h, _ in v] for k, v in groups.items()} == {
        "mcri": ["col-int-1", "col-ext-1", "ids-int-1", "fw-int-1"],
        "collector": ["col-int-1", "col-ext-1"],
        "ids_sensor": ["ids-int-1"],
        "firewall": ["fw-int-1"],
        "circuit_internal": ["col-int-1", "ids-int-1", "fw-int-1"],
        "circuit_external": ["col-ext-1"],
    }
    data = dict(groups["ids_sensor"])["ids-int-1"]
    assert data["ssh_hostname"] == "10.20.250.11"
    assert data["ssh_port"] == 22
    assert data["ssh_user"] == "msib"
    assert data["ssh_strict_host_key_checking"] == "yes"
    assert data["_sudo"] is True
    assert data["msib_appliance"]["capture_interface"] == "eth1"
    assert data["msib_circuits"]["internal"]["senders"] == ["10.20.1.1", "10.20.1.2", "10.20.5.51"]
    # pyinfra's own loader (in a child: pyinfra_cli patches the process with gevent)
    proc = subprocess.run([sys.executable, "-c", PYINFRA_LOAD, str(tmp_path / "inv" / "pyinfra_inventory.py")],
                          capture_output=True, text=True, check=True)
    hosts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(hosts) == ["col-ext-1", "col-int-1", "fw-int-1", "ids-int-1"]
    assert hosts["fw-int-1"] == {"groups": ["circuit_internal", "firewall", "mcri", "pyinfra_inventory"],
                                 "ssh_hostname": "10.20.250.1",
                                 "strict": "yes", "sudo": True, "circuit": "internal"}


def test_pyinfra_refuses_an_inventory_without_known_hosts(site: Path, appendix: Path, tmp_path: Path) -> None:
    from msib.errors import InputError

    build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)
    with pytest.raises(InputError, match="no known_hosts"):
        _pyinfra_groups(tmp_path / "inv")


def test_objects_json_entries(site: Path, appendix: Path, tmp_path: Path) -> None:
    build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)
    raw = (tmp_path / "inv" / "objects.json").read_text(encoding="utf-8")
    objects = json.loads(raw)
    assert len(raw.splitlines()) == len(objects) + 2  # "[", one line per object, "]"
    assert [o["hostname"] for o in objects] == ["arm-0001", "arm-0002", "arm-0004", "web-01"]
    first = objects[0]
    assert list(first) == ["sb", "department", "location", "responsible", "hostname", "ip", "os", "os_raw",
                           "os_family", "os_eol", "os_eol_date", "circuit", "source"]
    assert first["source"] == {"file": str(appendix), "sheet": "Лист1", "row": 8}
    assert (first["os"], first["os_family"], first["os_eol"]) == ("Windows 10", "windows", True)
    assert objects[1]["os_eol"] is None  # Astra: no vendor date in the table
    assert objects[3]["circuit"] == "external"
    appendix_obj = check_rows([read_appendix(appendix)], parse_site(yaml.safe_load(SITE_YAML), "s"), as_of=AS_OF)
    assert objects == [o.to_json() for o in appendix_obj.objects]


def test_report_json_lists_every_rejection(site: Path, appendix: Path, tmp_path: Path) -> None:
    build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)
    report = json.loads((tmp_path / "inv" / "report.json").read_text(encoding="utf-8"))
    assert report["as_of"] == "2025-11-01"
    assert report["sb"] == {"code": "mcri", "state_body": SB}
    assert list(report["counts"]["by_reason"]) == list(REASONS)
    assert report["counts"]["data_rows"] == len(ROWS)
    assert report["counts"]["objects"] + report["counts"]["rejected"] == len(ROWS)
    dup, excl_host, excl_net = report["rejected"]
    assert dup == {"file": str(appendix), "sheet": "Лист1", "row": 10, "column": "G", "reason": "duplicate_ip",
                   "message": dup["message"], "value": "10.20.1.2",
                   "duplicate_of": {"file": str(appendix), "sheet": "Лист1", "row": 9}}
    assert "arm-0002" in dup["message"]
    for excluded, row in ((excl_host, 11), (excl_net, 12)):
        assert excluded == {"file": str(appendix), "sheet": "Лист1", "row": row, "column": None,
                            "reason": "excluded", "message": EXCLUDED_MESSAGE}
    assert report["os_eol"] == [{"os": "Windows 7", "eol_date": "2020-01-14", "objects": 1},
                                {"os": "Windows 10", "eol_date": "2025-10-14", "objects": 1}]


def test_report_md_for_a_person(site: Path, appendix: Path, tmp_path: Path) -> None:
    build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)
    md = (tmp_path / "inv" / "report.md").read_text(encoding="utf-8")
    assert "| internal | 3 | 2 | 1 | 0 | 0 | 2 | 1 |" in md  # objects, windows, linux, network, other, eol, unknown
    assert "| external | 1 | 0 | 1 | 0 | 0 | 0 | 0 |" in md
    assert "| Windows 7 | 2020-01-14 | 1 |" in md
    from msib.escape import md_cell

    where = md_cell(f"{appendix}, sheet Лист1")
    assert f"| {where}, row 10 | G | `duplicate_ip` | 10.20.1.2 |" in md
    assert f"| {where}, row 11 |  | `excluded` |  |" in md


def test_site_json_is_the_plan_without_exclusions(site: Path, appendix: Path, tmp_path: Path) -> None:
    build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)
    data = json.loads((tmp_path / "inv" / "site.json").read_text(encoding="utf-8"))
    assert "excluded" not in data
    assert data["code"] == "mcri"
    assert data["circuits"]["external"]["appliances"][1]["platform"] == "cisco_ios"


@pytest.mark.parametrize("form", FORMS)
def test_excluded_objects_appear_in_no_output_file(form: Form, site: Path, tmp_path: Path) -> None:
    rows = [*ROWS, Row(host="arm-0099", ip="10.20.5.99"), Row(host="KGS-ARCHIVE", ip="10.20.5.99")]
    path, _ = write_form(form, tmp_path, rows)
    build_inventory(site, [path], tmp_path / "inv", as_of=AS_OF)
    for name in INVENTORY_FILES:
        text = (tmp_path / "inv" / name).read_text(encoding="utf-8").lower()
        for secret in (*EXCLUDED_NAMES, "kgs-archive", "arm-0099", "10.20.5.99", "10.20.99."):
            assert not re.search(rf"(?<![\w.-]){re.escape(secret.lower())}(?![\w-]|\.\d)", text), (name, secret)


def test_appliances_only_when_no_appendix(site: Path, tmp_path: Path) -> None:
    result = build_inventory(site, [], tmp_path / "inv", as_of=AS_OF)
    assert (result.objects, result.rejected, result.appliances) == (0, 0, 5)
    assert json.loads((tmp_path / "inv" / "objects.json").read_text()) == []
    hosts = yaml.safe_load((tmp_path / "inv" / "hosts.yml").read_text())
    assert list(hosts["all"]["children"]["collector"]["hosts"]) == ["col-int-1", "col-ext-1"]
    assert hosts["all"]["vars"]["msib_circuits"]["internal"]["senders"] == []
    assert "No appendix given" in (tmp_path / "inv" / "report.md").read_text()


def test_as_of_decides_end_of_life(site: Path, appendix: Path, tmp_path: Path) -> None:
    before = build_inventory(site, [appendix], tmp_path / "a", as_of=dt.date(2025, 10, 14))
    after = build_inventory(site, [appendix], tmp_path / "b", as_of=dt.date(2025, 10, 15))
    assert (before.os_eol, after.os_eol) == (1, 2)


def test_several_files_any_mix_and_duplicates_across_them(site: Path, tmp_path: Path) -> None:
    (tmp_path / "q").mkdir()
    first, _ = write_form("xlsx_sheets", tmp_path, [Row(host="arm-1", ip="10.20.1.1")], name="a")
    second, _ = write_form("csv_cp1251", tmp_path / "q", [Row(host="arm-2", ip="10.20.1.1"),
                                                         Row(host="arm-3", ip="10.20.1.3")], name="b")
    result = build_inventory(site, [first, second], tmp_path / "inv", as_of=AS_OF)
    report = json.loads((tmp_path / "inv" / "report.json").read_text())
    assert (result.objects, report["rejected"][0]["reason"], report["rejected"][0]["file"]) == (
        2, "duplicate_ip", str(second))
    assert [i["format"] for i in report["inputs"]] == ["xlsx", "csv"]


# --- what makes the build refuse ----------------------------------------------------------------------


def test_a_circuit_with_objects_needs_a_collector(tmp_path: Path, appendix: Path) -> None:
    site = tmp_path / "site.yml"
    site.write_text(SITE_YAML.replace("      - {name: col-ext-1, role: collector, address: 192.0.2.250}\n", ""))
    with pytest.raises(InputError) as info:
        build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)
    assert info.value.where == "circuits.external.appliances"
    assert "no collector" in info.value.message
    assert not (tmp_path / "inv").exists()


def test_strict_writes_nothing_when_a_row_is_rejected(site: Path, appendix: Path, tmp_path: Path) -> None:
    with pytest.raises(RowsRejected) as info:
        build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF, strict=True)
    assert info.value.exit_code == 1
    assert len(info.value.rejected) == 3
    assert not (tmp_path / "inv").exists()


def test_output_directory_with_other_files_is_refused(site: Path, appendix: Path, tmp_path: Path) -> None:
    out = tmp_path / "inv"
    out.mkdir()
    (out / "site.yml").write_text("mine")
    with pytest.raises(InputError, match="not part of an inventory"):
        build_inventory(site, [appendix], out, as_of=AS_OF)
    assert _snapshot(out) == {"site.yml": b"mine"}


# --- atomic: the new complete set, or the directory as it was --------------------------------------


def test_failure_while_writing_leaves_the_old_inventory(site: Path, appendix: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "inv"
    build_inventory(site, [], out, as_of=AS_OF)
    before = _snapshot(out)
    real = writers._write_file
    calls = []

    def failing(path: Path, data: Any) -> None:
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(writers, "_write_file", failing)
    with pytest.raises(OSError, match="No space"):
        build_inventory(site, [appendix], out, as_of=AS_OF)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["inv", appendix.name, "site.yml"])


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_existing_inventory_replaced_as_a_whole(exchange: bool, site: Path, appendix: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "inv"
    build_inventory(site, [], out, as_of=AS_OF)
    if not exchange:
        monkeypatch.setattr(writers, "_exchange", lambda a, b: False)
    build_inventory(site, [appendix], out, as_of=AS_OF)
    assert len(json.loads((out / "objects.json").read_text())) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["inv", appendix.name, "site.yml"])


# --- the command line: exit status and one line ------------------------------------------------------


def test_cli_exit_0_writes(site: Path, appendix: Path, tmp_path: Path) -> None:
    proc = _cli("inventory", "build", "--site", site, "--out", tmp_path / "inv", "--as-of", "2025-11-01", appendix)
    assert proc.returncode == 0, proc.stderr
    assert "4 objects" in proc.stderr
    assert (tmp_path / "inv" / "report.md").is_file()


def test_cli_exit_1_strict(site: Path, appendix: Path, tmp_path: Path) -> None:
    proc = _cli("inventory", "build", "--strict", "--site", site, "--out", tmp_path / "inv", appendix)
    assert proc.returncode == 1
    assert "duplicate_ip" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "error: 3 rows rejected and --strict given: nothing written"
    assert not (tmp_path / "inv").exists()


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("broken_site", "site.yml: circuits.internal.appliances[0].role"),
        ("unreadable_appendix", "not a readable workbook"),
        ("no_header", "no header row found"),
        ("bad_as_of", "--as-of: '01.11.2025' is not a date"),
        ("missing_site", "cannot read the site plan"),
    ],
)
def test_cli_exit_2_one_line_nothing_written(case: str, words: str, site: Path, appendix: Path,
                                             tmp_path: Path) -> None:
    args: list[str | Path] = ["inventory", "build", "--site", site, "--out", tmp_path / "inv"]
    if case == "broken_site":
        site.write_text(SITE_YAML.replace("role: collector, address: 10.20.250.10",
                                          "role: colector, address: 10.20.250.10"))
    elif case == "unreadable_appendix":
        appendix.write_bytes(b"PK\x03\x04garbage")
    elif case == "no_header":
        appendix = tmp_path / "x.csv"
        appendix.write_text("a;b\n1;2\n")
    elif case == "bad_as_of":
        args += ["--as-of", "01.11.2025"]
    elif case == "missing_site":
        args[3] = tmp_path / "nope.yml"
    proc = _cli(*args, appendix)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert words in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "inv").exists()


# --- the lab's appendix ------------------------------------------------------------------------------


def test_lab_appendix_as_an_sb_sends_it(tmp_path: Path) -> None:
    result = build_inventory(LAB / "site.yml", [LAB / "appendix.xlsx"], tmp_path / "inv", as_of=AS_OF)
    objects = {o["hostname"]: o for o in json.loads((tmp_path / "inv" / "objects.json").read_text())}
    assert (objects["obj-int-1"]["ip"], objects["obj-int-1"]["circuit"]) == ("198.18.16.100", "internal")
    assert (objects["obj-ext-1"]["ip"], objects["obj-ext-1"]["circuit"]) == ("198.18.32.100", "external")
    assert 35 <= result.data_rows <= 45
    assert result.excluded == 1
    reasons = {r for r, n in result.by_reason.items() if n}
    assert len(reasons - {"excluded"}) >= 5
    lab_range = ipaddress.ip_network("198.18.0.0/15")
    report = json.loads((tmp_path / "inv" / "report.json").read_text())
    for value in [o["ip"] for o in objects.values()] + [r.get("value") or "" for r in report["rejected"]]:
        for match in re.findall(r"\d+\.\d+\.\d+\.\d+", value):
            if all(int(p) < 256 for p in match.split(".")):
                assert ipaddress.ip_address(match) in lab_range, match


def test_lab_appendix_is_what_make_appendix_writes(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(LAB / "make_appendix.py"), str(tmp_path / "again.xlsx")], check=True,
                   capture_output=True)
    committed, again = read_appendix(LAB / "appendix.xlsx"), read_appendix(tmp_path / "again.xlsx")
    assert [t.rows for t in committed.tables] == [t.rows for t in again.tables]
    assert committed.skipped == tuple(
        type(s)(str(LAB / "appendix.xlsx"), s.sheet, s.row, s.kind) for s in again.skipped
    )


# --- the committed example ---------------------------------------------------------------------------

EXAMPLES = REPO / "inventories" / "examples"


def test_committed_example_output_is_what_the_build_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    rel = EXAMPLES.relative_to(REPO)
    build_inventory(rel / "site.yml", [rel / "appendix-sections.xlsx"], tmp_path / "out", as_of=AS_OF)
    assert _snapshot(tmp_path / "out") == _snapshot(EXAMPLES / "out")


@pytest.mark.parametrize("name", ["appendix-sheets.xlsx", "appendix-kk.xlsx", "appendix-cp1251.csv",
                                  "appendix-utf8.csv"])
def test_every_example_form_gives_the_same_inventory(name: str, tmp_path: Path) -> None:
    build_inventory(EXAMPLES / "site.yml", [EXAMPLES / name], tmp_path / "inv", as_of=AS_OF)

    def essence(directory: Path) -> tuple[list[Any], list[Any]]:
        objects = [{k: v for k, v in o.items() if k != "source"}
                   for o in json.loads((directory / "objects.json").read_text())]
        report = json.loads((directory / "report.json").read_text())
        reasons = [(r["reason"], r.get("value")) for r in report["rejected"]]
        return objects, reasons

    assert essence(tmp_path / "inv") == essence(EXAMPLES / "out")


# --- private files; what a killed build leaves is removed by the next (#14) ------------------------------


def test_inventory_is_written_owner_only(site: Path, appendix: Path, tmp_path: Path) -> None:
    old = os.umask(0)  # whatever the umask: the files name people
    try:
        build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)
        build_inventory(site, [appendix], tmp_path / "inv", as_of=AS_OF)  # replaced: the same modes
    finally:
        os.umask(old)
    assert (tmp_path / "inv").stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "inv").iterdir()} == dict.fromkeys(
        INVENTORY_FILES, 0o600)


KILLED_BUILD = """
import sys, time
from pathlib import Path
from msib.inventory.writers import write_atomically

def files():
    yield "objects.json", b"x" * 5_000_000
    yield "hosts.yml", b"y"
    print("writing", flush=True)
    time.sleep(120)
    yield "site.json", b"{}"

write_atomically(Path(sys.argv[1]), files())
"""


def test_a_killed_builds_temp_dir_is_removed_by_the_next_build(site: Path, appendix: Path, tmp_path: Path) -> None:
    import signal

    out = tmp_path / "inv"
    child = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(out)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "writing\n"
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".inv.")]
    assert len(stale) == 1 and stale[0].name.endswith(".new")
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert stale[0].exists()  # what SIGKILL leaves behind
    alive = tmp_path / f".inv.msib-{os.getpid()}-{writers._start_time(os.getpid())}.abc.new"  # a live build's
    alive.mkdir()
    foreign = tmp_path / ".inv.tmp1234.new"  # not named by msib
    foreign.mkdir()
    build_inventory(site, [appendix], out, as_of=AS_OF)
    assert not stale[0].exists()
    assert alive.exists() and foreign.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(INVENTORY_FILES)
