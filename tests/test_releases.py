"""Debian 12 and 13 without the lab: the releases data, the release values of a role, the site plan's
release and Suricata major, pins per release, what apt refuses, and Suricata's reload time."""

from __future__ import annotations

import datetime as dt
import typing
from pathlib import Path

import pytest
import yaml

from inventory_helpers import LAB_SITE, host_vars
from msib import manifest, releases, render
from msib.apt_preflight import Refusal, refused_repositories
from msib.checks.parsers import suricata_time
from msib.errors import InputError
from msib.site import DebianRelease, load_site, parse_site
from msib.update import _json_documents


def test_the_site_plans_releases_are_the_data_files() -> None:
    assert typing.get_args(DebianRelease) == releases.codenames() == ("bookworm", "trixie")


@pytest.mark.parametrize(("codename", "day", "support"), [
    ("bookworm", dt.date(2026, 6, 10), "regular"),
    ("bookworm", dt.date(2026, 6, 11), "lts"),       # Debian 12: LTS from the day after regular support
    ("bookworm", dt.date(2028, 7, 1), "ended"),
    ("trixie", dt.date(2026, 12, 5), "regular"),
    ("trixie", dt.date(2028, 8, 10), "lts"),
])
def test_security_support_by_day(codename: str, day: dt.date, support: str) -> None:
    assert releases.get(codename).support(day) == support


def test_the_description_says_lts_for_debian_12_with_its_dates() -> None:
    assert releases.get("bookworm").describe(dt.date(2026, 12, 5)) == (
        "Debian 12 (bookworm): LTS (regular security support ended 2026-06-10; LTS until 2028-06-30)")


def test_an_unsupported_release_names_the_supported_ones() -> None:
    with pytest.raises(InputError) as err:
        releases.get("bullseye")
    assert "bullseye: is not a Debian release msib supports" in str(err.value)
    assert "bookworm, trixie" in str(err.value)


def test_pins_per_release_overlay_the_pins_of_every_release() -> None:
    given = {"rsyslog": "8.2302.0-1+deb12u2", "bookworm": {"nftables": "1.0.6-2+deb12u2"},
             "trixie": {"rsyslog": "8.2504.0-1+deb13u2"}}
    assert releases.pins(given, "bookworm") == {"rsyslog": "8.2302.0-1+deb12u2", "nftables": "1.0.6-2+deb12u2"}
    assert releases.pins(given, "trixie") == {"rsyslog": "8.2504.0-1+deb13u2"}
    assert releases.pins(None, "trixie") == {}


def _sensor(name: str, release: str, **extra: object) -> dict[str, object]:
    return render.context("ids_sensor", host_vars(name, "ids_sensor", **extra), release=release)


def test_the_hosts_release_brings_its_values_and_wins_over_the_inventory() -> None:
    ctx = _sensor("ids-int-1", "bookworm", msib_release="trixie")
    assert ctx["msib_release"] == "bookworm"
    assert ctx["__ids_sensor_suricata_suites"] == {"7": "bookworm-backports"}
    assert "__ids_sensor_suricata_suites" not in render.context("ids_sensor", host_vars("ids-int-1", "ids_sensor"))


@pytest.mark.parametrize(("name", "release", "extra", "suite"), [
    ("ids-int-1", "bookworm", {}, "bookworm-backports"),
    ("ids-ext-1", "trixie", {}, "trixie-backports"),        # the lab's plan: Suricata 8
    ("ids-ext-1", "trixie", {"ids_sensor_suricata_major": 7}, "trixie"),
    ("ids-ext-1", "trixie", {"ids_sensor_release": "trixie-proposed-updates"}, "trixie-proposed-updates"),
    ("ids-int-1", "bookworm", {"ids_sensor_suricata_major": 8}, None),  # not packaged: the preflight says so
])
def test_apts_target_release_for_suricata(name: str, release: str, extra: dict[str, object],
                                          suite: str | None) -> None:
    assert manifest.load("ids_sensor").package_release("suricata", _sensor(name, release, **extra)) == suite


def test_release_values_are_the_roles_own(tmp_path: Path) -> None:
    (tmp_path / "r" / "defaults").mkdir(parents=True)
    (tmp_path / "r" / "defaults" / "main.yml").write_text("r_a: 1\n")
    (tmp_path / "r" / "vars").mkdir()
    (tmp_path / "r" / "vars" / "trixie.yml").write_text("r_a: 2\n")
    with pytest.raises(InputError, match="names starting with __r_"):
        render.context("r", {}, tmp_path, release="trixie")
    assert render.context("r", {}, tmp_path, release="bookworm") == {"r_a": 1, "msib_release": "bookworm"}


def test_the_lab_plan_runs_its_circuits_on_two_releases() -> None:
    plan = load_site(LAB_SITE)
    by_circuit = {c: {a.release for a in circuit.appliances} for c, circuit in plan.circuits.items()}
    assert by_circuit == {"internal": {"bookworm"}, "external": {"trixie"}}
    assert [(a.name, a.suricata_major) for _c, a in plan.appliances() if a.role == "ids_sensor"] == [
        ("ids-int-1", None), ("ids-ext-1", 8)]
    assert host_vars("ids-ext-1", "ids_sensor")["ids_sensor_suricata_major"] == 8
    assert "ids_sensor_suricata_major" not in host_vars("ids-int-1", "ids_sensor")  # the role's default: 7


@pytest.mark.parametrize(("change", "message"), [
    ({"release": "bookworm", "suricata_major": 8}, "suricata_major 8 needs release trixie"),
    ({"suricata_major": 9}, "suricata_major"),
    ({"release": "bullseye"}, "release"),
])
def test_the_site_plan_refuses_what_cannot_run(change: dict[str, object], message: str) -> None:
    data = yaml.safe_load(LAB_SITE.read_text())
    data["circuits"]["internal"]["appliances"][1].update(change)  # ids-int-1
    with pytest.raises(InputError) as err:
        parse_site(data, "site.yml")
    assert message in str(err.value) and "circuits.internal.appliances[1]" in str(err.value)


def test_suricata_major_is_only_for_sensors_and_release_only_for_linux_appliances() -> None:
    data = yaml.safe_load(LAB_SITE.read_text())
    data["circuits"]["internal"]["appliances"][0]["suricata_major"] = 8  # a collector
    with pytest.raises(InputError, match="suricata_major is only for role ids_sensor"):
        parse_site(data, "site.yml")
    data = yaml.safe_load(LAB_SITE.read_text())
    data["circuits"]["internal"]["appliances"][2].update(platform="cisco_ios", release="trixie")
    with pytest.raises(InputError, match="release is only for Linux appliances"):
        parse_site(data, "site.yml")


SQV = ("W: OpenPGP signature verification failed: file:/srv/repo msib InRelease: Sub-process /usr/bin/sqv "
       "returned an error code (1), error message is: Signing key on 5731 is not bound:            No binding "
       "signature at time 2026-12-05T06:31:09Z   because: Policy rejected non-revocation signature "
       "(PositiveCertification) requiring second pre-image resistance   because: SHA1 is not considered secure "
       "since 2026-02-01T00:00:00Z")


def test_apt_refusals_as_apt_3_and_apt_2_6_say_them() -> None:
    out = "\n".join([
        "Hit:1 http://deb.debian.org/debian trixie InRelease", "Get:2 file:/srv/repo msib InRelease [761 B]",
        "Err:2 file:/srv/repo msib InRelease", SQV,
        "E: The repository 'file:/srv/repo msib InRelease' is not signed.",
        "W: GPG error: http://198.18.0.1/x bookworm InRelease: The following signatures couldn't be verified "
        "because the public key is not available: NO_PUBKEY 0123456789ABCDEF",
        "E: The repository 'http://198.18.0.1/x bookworm InRelease' is not signed.",
        "E: Failed to fetch http://198.18.0.1/y/dists/z/InRelease  Could not connect to 198.18.0.1:80",
        "W: http://deb.debian.org/debian/dists/bookworm/InRelease: Key is stored in legacy trusted.gpg keyring",
    ])
    assert refused_repositories(out) == [
        Refusal("file:/srv/repo msib InRelease", "SHA1 is not considered secure since 2026-02-01T00:00:00Z"),
        Refusal("http://198.18.0.1/x bookworm InRelease", "The following signatures couldn't be verified because "
                "the public key is not available: NO_PUBKEY 0123456789ABCDEF"),
        Refusal("http://198.18.0.1/y/dists/z/InRelease", "Could not connect to 198.18.0.1:80"),
    ]


def test_suricatas_reload_time_and_its_json_in_either_layout() -> None:
    assert suricata_time("2026-12-05T06:25:43.452283+0000") == 1796451943.452283
    assert suricata_time("2026-12-05T08:25:43.452283+0200") == 1796451943.452283
    with pytest.raises(ValueError, match="not a Suricata time"):
        suricata_time("yesterday")
    one_a_line = '{"message": [{"rules_loaded": 9}], "return": "OK"}\n\n{"message": [], "return": "OK"}\n'
    indented = '{\n  "message": [\n    {"rules_loaded": 9}\n  ],\n  "return": "OK"\n}\n{\n  "return": "OK"\n}'
    assert len(_json_documents(one_a_line)) == len(_json_documents(indented)) == 2
