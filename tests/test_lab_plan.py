"""The lab's topology is computed from the site plan and lab.yml, and refuses what would leak."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from msib.errors import InputError
from msib.lab import LAB_RANGE, Lab, build_topology, write_synthetic_lab
from msib.site import load_site

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "inventories" / "lab" / "site.yml"


def _copy_lab(tmp_path: Path) -> tuple[dict, dict]:
    site = yaml.safe_load(SITE.read_text())
    lab = yaml.safe_load((SITE.parent / "lab.yml").read_text())
    return site, lab


def _write(tmp_path: Path, site: dict, lab: dict) -> Path:
    (tmp_path / "site.yml").write_text(yaml.safe_dump(site, allow_unicode=True))
    (tmp_path / "lab.yml").write_text(yaml.safe_dump(lab))
    return tmp_path / "site.yml"


def test_the_lab_has_every_role_of_an_sb() -> None:
    lab = Lab.from_files(SITE, state_dir=Path("/nonexistent"))
    roles = sorted(h.role for h in lab.hosts)
    assert roles == sorted(["collector"] * 2 + ["ids_sensor"] * 2 + ["firewall"] * 2 + ["siem"] + ["object"] * 2)


def test_every_lab_address_lies_in_the_benchmarking_range() -> None:
    lab = Lab.from_files(SITE, state_dir=Path("/nonexistent"))
    for h in lab.hosts:
        assert h.address in LAB_RANGE
        for iface in h.ifaces:
            assert iface.address is None or iface.address.ip in LAB_RANGE


def test_ids_sensor_capture_port_sits_on_its_circuit_lan_without_an_address() -> None:
    lab = Lab.from_files(SITE, state_dir=Path("/nonexistent"))
    sensor = lab.host("ids-int-1")
    capture = next(i for i in sensor.ifaces if i.name == "eth1")
    collector_lan = next(i for i in lab.host("col-int-1").ifaces if i.name == "eth1")
    assert capture.address is None
    assert capture.bridge == collector_lan.bridge
    lan = next(b for b in lab.topology.bridges if b.name == capture.bridge)
    assert lan.hub  # floods every frame: the sensor sees the circuit's traffic


def test_objects_are_reached_only_through_the_lab_console() -> None:
    lab = Lab.from_files(SITE, state_dir=Path("/nonexistent"))
    for h in lab.hosts:
        on_mgmt = any(i.bridge.endswith("-mgmt") for i in h.ifaces)
        assert on_mgmt != h.console_only, h.name


def test_no_host_has_a_default_route() -> None:
    lab = Lab.from_files(SITE, state_dir=Path("/nonexistent"))
    for h in lab.hosts:
        assert all(r.dest not in ("default", "0.0.0.0/0") for r in h.routes), h.name


def test_an_address_outside_the_lab_range_is_refused(tmp_path: Path) -> None:
    site, lab = _copy_lab(tmp_path)
    lab["objects"][0]["address"] = "10.20.1.5"
    with pytest.raises(InputError, match="outside"):
        Lab.from_files(_write(tmp_path, site, lab), state_dir=tmp_path)


def test_an_object_in_a_circuit_the_site_plan_lacks_is_refused(tmp_path: Path) -> None:
    site, lab = _copy_lab(tmp_path)
    del site["circuits"]["external"]
    lab["objects"] = [o for o in lab["objects"] if o["circuit"] == "internal"] + [
        {"name": "obj-x", "circuit": "external", "address": "198.18.32.50"}]
    with pytest.raises(InputError, match="no circuit external"):
        Lab.from_files(_write(tmp_path, site, lab), state_dir=tmp_path)


def test_an_unknown_key_in_lab_yml_names_the_file_and_key(tmp_path: Path) -> None:
    site, lab = _copy_lab(tmp_path)
    lab["bridges"] = 3
    with pytest.raises(InputError) as err:
        Lab.from_files(_write(tmp_path, site, lab), state_dir=tmp_path)
    assert "lab.yml" in str(err.value) and "bridges" in str(err.value)


def test_synthetic_lab_has_the_asked_size_and_its_own_names(tmp_path: Path) -> None:
    site = write_synthetic_lab(tmp_path, name="mt", collectors=18, octet=208)
    lab = Lab.from_files(site, state_dir=tmp_path / "s")
    assert len(lab.hosts) == 20
    assert all(b.name.startswith("mt-") for b in lab.topology.bridges)
    assert build_topology(load_site(site), lab.spec).controller_routes == ["198.19.209.0/24"]


def test_cli_reports_a_broken_site_plan_in_one_line_with_exit_2(tmp_path: Path) -> None:
    site, lab = _copy_lab(tmp_path)
    site["circuits"]["internal"]["appliances"][0]["address"] = "198.18.40.10"
    path = _write(tmp_path, site, lab)
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "lab", "status", "--site", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    joined = " ".join(lines)
    assert "site.yml" in joined and "outside the circuit" in joined


def test_mounts_left_by_an_interrupted_base_build_are_found_deepest_first() -> None:
    # what a killed mmdebstrap leaves (seen: the next build refused "... .tmp is not empty")
    from msib.lab.hosts import mounts_under
    tmp = Path("/var/cache/msib-lab/base-trixie-x.tmp")
    proc_mounts = "\n".join([
        "/dev/root / ext4 rw 0 0",
        f"proc {tmp}/proc proc ro 0 0",
        f"none {tmp}/dev/pts devpts rw 0 0",
        f"sys {tmp}/sys sysfs ro 0 0",
        "proc /var/cache/msib-lab/base-trixie-x.tmpother/proc proc ro 0 0",
        "proc /var/cache/msib-lab/base-bookworm-y/proc proc ro 0 0",
    ])
    assert mounts_under(tmp, proc_mounts) == [f"{tmp}/dev/pts", f"{tmp}/proc", f"{tmp}/sys"]
