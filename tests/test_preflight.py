"""The preflight of each role, one implementation for both engines: good and bad inventories."""

from __future__ import annotations

from typing import Any

import pytest

from inventory_helpers import host_vars
from msib import preflight, render
from msib.errors import InputError
from msib.manifest import Rule

LAB_VARS = {"collector_ca_file": "/pki/ca.pem", "collector_cert_dir": "/pki"}


def _ctx(role: str, name: str, release: str | None = None, **extra: Any) -> dict[str, Any]:
    """The context the engines build for lab host `name`: with the release its facts say (the plan's)."""
    hv = host_vars(name, role, **LAB_VARS, **extra)
    return render.context(role, hv, release=release or hv["msib_appliance"]["release"])


@pytest.mark.parametrize(("role", "name", "line"), [
    ("collector", "col-int-1", "col-int-1: collector of circuit internal"),
    ("ids_sensor", "ids-ext-1", "ids-ext-1: IDS sensor of circuit external"),
    ("firewall", "fw-int-1", "fw-int-1: nftables firewall of circuit internal"),
])
def test_the_lab_inventory_passes_every_preflight(role: str, name: str, line: str) -> None:
    assert preflight.check(role, _ctx(role, name), name) == line
    assert preflight.failures(role, _ctx(role, name)) == []


def _circuit(ctx: dict[str, Any], **change: Any) -> dict[str, Any]:
    circuits = {**ctx["msib_circuits"]}
    circuits[ctx["msib_circuit"]] = {**circuits[ctx["msib_circuit"]], **change}
    return {**ctx, "msib_circuits": circuits}


@pytest.mark.parametrize(("role", "name", "damage", "message"), [
    # the check the pyinfra side lacked before the preflight was one implementation
    ("collector", "col-int-1", lambda c: _circuit(c, networks=[]), "the circuit has no networks"),
    ("collector", "col-int-1", lambda c: {**c, "msib_circuit": "nowhere"}, "msib_circuit is not one of msib_circuits"),
    ("collector", "col-int-1", lambda c: {**c, "collector_ca_file": None}, "collector_ca_file"),
    ("collector", "col-int-1", lambda c: {**c, "collector_cert_file": "/c.pem"}, "both or neither"),
    ("collector", "col-int-1",
     lambda c: {**c, "msib_siem": {**c["msib_siem"], "syslog": {**c["msib_siem"]["syslog"], "transport": "udp"}}},
     "must be tls or relp+tls"),
    ("collector", "col-int-1", lambda c: {**c, "msib_appliance": {**c["msib_appliance"], "role": "firewall"}},
     "msib_appliance.role is not collector"),
    ("ids_sensor", "ids-int-1", lambda c: {**c, "msib_appliance": {**c["msib_appliance"], "capture_interface": None}},
     "no capture interface"),
    ("ids_sensor", "ids-int-1", lambda c: {**c, "ids_sensor_rule_files": []}, "ids_sensor_rule_files is empty"),
    ("ids_sensor", "ids-int-1", lambda c: _circuit(c, collectors=[]), "no collector to send alerts to"),
    ("firewall", "fw-int-1", lambda c: {**c, "msib_controllers": []}, "the management path cannot be kept"),
    ("firewall", "fw-int-1", lambda c: {**c, "firewall_rollback_seconds": 5}, "10 or more"),
    ("firewall", "fw-int-1", lambda c: {**c, "msib_appliance": {**c["msib_appliance"], "platform": "cisco_ios"}},
     "only platform nftables"),
    ("firewall", "fw-int-1", lambda c: _circuit(c, collectors=[]), "the circuit has no collector"),
])
def test_a_bad_inventory_fails_with_one_line_naming_the_rule(role: str, name: str, damage: Any, message: str) -> None:
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check(role, damage(_ctx(role, name)), name)
    assert str(err.value).startswith(f"{name} is not a usable ") and message in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize(("name", "release", "major", "ok"), [
    ("ids-int-1", "bookworm", 7, True),
    ("ids-ext-1", "trixie", 8, True),
    ("ids-ext-1", "trixie", 7, True),
    ("ids-int-1", "bookworm", 8, False),  # Suricata 8 is in trixie-backports only
])
def test_the_suricata_major_must_be_packaged_for_the_hosts_release(name: str, release: str, major: int,
                                                                   ok: bool) -> None:
    ctx = _ctx("ids_sensor", name, release, ids_sensor_suricata_major=major)
    if ok:
        assert preflight.failures("ids_sensor", ctx) == []
        return
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check("ids_sensor", ctx, name)
    assert str(err.value) == (f"{name} is not a usable IDS sensor: Suricata 8 is not packaged for Debian bookworm "
                              "(Suricata 8 needs Debian 13: trixie-backports)")


def test_a_release_msib_does_not_support_is_refused_before_any_rule() -> None:
    with pytest.raises(InputError, match="bullseye: is not a Debian release msib supports"):
        _ctx("collector", "col-int-1", "bullseye")


def test_rules_read_paths_of_the_context() -> None:
    ctx = {"a": {"b": "x"}, "n": 12, "s": "", "c": {"k": 1}, "key": "k", "none": None}
    assert preflight.holds(Rule("equals", ["a.b", "x"], "m"), ctx)
    assert preflight.holds(Rule("in", ["a.missing", ["y", None]], "m"), ctx)
    assert preflight.holds(Rule("key_of", ["key", "c"], "m"), ctx)
    assert preflight.holds(Rule("key_of", ["n", "d"], "m"), {**ctx, "d": {"12": 1}})  # a number: its text
    assert not preflight.holds(Rule("not_empty", "s", "m"), ctx)
    assert preflight.holds(Rule("string", ["none", "a.b"], "m"), ctx)
    assert not preflight.holds(Rule("set", "none", "m"), ctx)
    assert preflight.holds(Rule("both_or_neither", ["none", "a.missing"], "m"), ctx)
    assert preflight.holds(Rule("at_least", ["n", 10], "m"), ctx)
    assert not preflight.holds(Rule("at_least", ["s", 1], "m"), ctx)
    assert preflight.holds(Rule("any", (Rule("set", "none", "-"), Rule("set", "n", "-")), "m"), ctx)


def test_an_unknown_role_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no such role"):
        preflight.check("nope", {}, "h")
    assert preflight.check("apt_proxy", {}, "h") == "h: apt_proxy (no preflight)"
