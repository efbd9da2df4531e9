"""What each role installs, said once: the manifests of the roles, read for the engines and the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inventory_helpers import host_vars
from msib import manifest, render
from msib.errors import InputError

ROLES = ("apt_proxy", "collector", "ids_sensor", "firewall")


def _ctx(role: str, name: str, **extra: Any) -> dict[str, Any]:
    group = {"collector": "collector", "ids_sensor": "ids_sensor", "firewall": "firewall"}[role]
    return render.context(role, host_vars(name, group, **extra))


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_a_manifest_whose_files_exist_in_the_role(role: str) -> None:
    m = manifest.load(role)
    assert m.role == role and m.path == render.roles_dir().resolve() / role / "meta" / "manifest.yml"
    for spec in m.files.values():
        if spec.kind == "template":
            assert (render.roles_dir() / role / "templates" / spec.sources[0]).is_file(), spec
    assert m.depends == (() if role == "apt_proxy" else ("apt_proxy",))  # meta/main.yml dependencies


def test_the_collector_installs_what_its_manifest_says_for_a_host() -> None:
    m = manifest.load("collector")
    ctx = _ctx("collector", "col-int-1", collector_ca_file="/pki/ca.pem", collector_cert_dir="/pki")
    files = {f.id: f for f in m.install_files(ctx)}
    assert list(files) == ["ca", "cert", "key", "table", "unit", "rsyslog"]
    assert files["cert"].source == "/pki/col-int-1.pem" and files["key"].mode == "0600"
    assert files["rsyslog"].args() == {"dest": "/etc/rsyslog.conf", "template": "rsyslog.conf.j2", "mode": "0644",
                                       "validate": "/usr/sbin/rsyslogd -N1 -f %s"}
    assert [d.path for d in m.directories_for(ctx)] == ["/etc/msib", "/etc/msib/tls", "/var/log/msib",
                                                        "/var/spool/rsyslog"]
    assert m.services_for(ctx, running=True) == ["msib-collector-nft.service", "rsyslog.service"]
    assert m.package_list("base") == ["rsyslog", "rsyslog-gnutls", "rsyslog-relp", "nftables"]
    # no certificate of its own, no table: neither is installed (the engines skip them)
    off = _ctx("collector", "col-int-1", collector_ca_file="/pki/ca.pem", collector_manage_firewall=False)
    assert [f.id for f in m.install_files(off)] == ["ca", "rsyslog"]
    assert m.services_for(off) == ["rsyslog.service"]


def test_the_firewall_and_ids_sensor_manifests_fill_paths_loops_and_guards() -> None:
    fw = manifest.load("firewall")
    ctx = _ctx("firewall", "fw-int-1", firewall_ruleset_path="/srv/fw/rules.nft")
    files = {f.id: f for f in fw.install_files(ctx)}
    assert files["ruleset"].dest == "/srv/fw/rules.nft" and files["ruleset"].guard == "nft_management"
    assert "confirmed" not in files  # written by the commit helper, not by an engine
    assert [d.path for d in fw.directories_for(ctx)] == ["/srv/fw", "/var/lib/msib/firewall"]
    assert fw.services_for(ctx, running=False) == ["nftables.service"]
    ids = manifest.load("ids_sensor")
    ictx = _ctx("ids_sensor", "ids-int-1", ids_sensor_rule_files=["a.rules", "b.rules"])
    assert [f.dest for f in ids.install_files(ictx) if f.id == "rules"] == ["/etc/suricata/rules/a.rules",
                                                                           "/etc/suricata/rules/b.rules"]
    assert [p.path for p in ids.placeholders_for(ictx)] == ["/var/lib/suricata/rules/msib-update.rules"]
    assert ids.placeholders_for({**ictx, "ids_sensor_update_rule_file": None}) == []
    with pytest.raises(InputError, match="give the item"):
        ids.install_file("rules", ictx)


def test_dests_list_every_path_a_role_may_write_whatever_its_conditions() -> None:
    assert manifest.load("firewall").dests(render.defaults("firewall")) == [
        "/usr/local/sbin/msib-nft-commit", "/etc/msib/firewall/ruleset.nft", "/etc/rsyslog.conf", "/etc/nftables.conf"]


def test_fill_and_lookup_take_variables_never_jinja() -> None:
    scope = {"d": "/x", "app": {"name": "n"}, "none": None, "c": "int", "circuits": {"int": {"nets": [1]}}}
    assert manifest.fill("{d}/{app[name]}", scope) == "/x/n"
    assert manifest.fill("{none}/a", scope) is None and manifest.fill("{none[k]}", scope) is None
    with pytest.raises(KeyError):
        manifest.fill("{nope}", scope)
    assert manifest.lookup("circuits.{c}.nets", scope) == [1]
    assert manifest.lookup("circuits.{nope}.nets", scope) is None and manifest.lookup("d.x", scope) is None


def test_a_condition_given_as_a_string_is_refused() -> None:
    m = manifest.load("collector")
    with pytest.raises(InputError, match="must be true or false"):
        m.install_files(_ctx("collector", "col-int-1", collector_ca_file="/ca", collector_manage_firewall="false"))


@pytest.mark.parametrize(("text", "words"), [
    ("files: {a: {dest: /x}}", "exactly one of template, file, src"),
    ("files: {a: {dest: /x, template: t, mode: '0777'}}", "mode must be one of"),
    ("files: {a: {dest: /x, template: t, guard: nope}}", "guard must be one of"),
    ("files: {a: {dest: /x, template: t, owner: me}}", "a file needs dest"),
    ("directories: [{path: /x}]", r"needs path \(or parent_of\) and a mode"),
    ("services: [{}]", "a service needs unit"),
    ("preflight: {what: x, rules: [{equals: [a, b]}]}", "one test of"),
    ("preflight: {what: x, rules: [{nope: a, message: m}]}", "one test of"),
    ("- a list", "a manifest is a YAML mapping"),
])
def test_a_malformed_manifest_is_an_input_error(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "r" / "meta").mkdir(parents=True)
    (tmp_path / "r" / "meta" / "manifest.yml").write_text(text + "\n")
    with pytest.raises(InputError, match=words):
        manifest.load("r", tmp_path)


def test_an_unknown_role_or_file_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no such role"):
        manifest.load("nope")
    with pytest.raises(InputError, match="no managed file"):
        manifest.load("collector").install_file("nope", {})
    with pytest.raises(InputError, match="no package group"):
        manifest.load("collector").package_list("nope")


CTX_VARS: dict[str, Any] = {
    "msib_appliance": {"name": "col-int-1", "role": "collector", "address": "198.18.31.10", "port": 22,
                       "capture_interface": "eth1"},
    "msib_circuit": "internal",
    "msib_circuits": {"internal": {"networks": ["198.18.16.0/20"],
                                   "collectors": [{"name": "col-int-1", "address": "198.18.31.10",
                                                   "service_address": "198.18.16.10"}],
                                   "appliances": [{"name": "col-int-1", "role": "collector",
                                                   "address": "198.18.31.10", "service_address": "198.18.16.10"}]}},
    "msib_siem": {"syslog": {"host": "198.19.0.10", "port": 6514, "transport": "tls", "peer_name": "siem.lab.msib"}},
    "msib_controllers": ["198.18.0.1/32"],
}


def test_managed_files_come_from_the_manifest_with_their_conditions(tmp_path: Path) -> None:
    ctx = render.context("collector", CTX_VARS)
    paths = {m.path for m in manifest.managed_files("collector", ctx)}
    assert paths == {"/etc/rsyslog.conf", "/etc/msib/collector.nft", "/etc/msib/tls/ca.pem",
                     "/etc/systemd/system/msib-collector-nft.service"}
    assert "/etc/msib/tls/collector.key" not in paths  # no certificate given: no key installed
    (tmp_path / "ca.pem").write_text("CA")
    (tmp_path / "col-int-1.key").write_text("KEY")
    ctx = render.context("collector", {**CTX_VARS, "collector_ca_file": str(tmp_path / "ca.pem"),
                                       "collector_cert_dir": str(tmp_path)})
    files = {m.path: m for m in manifest.managed_files("collector", ctx)}
    assert files["/etc/msib/tls/ca.pem"].sha256 == render.sha256("CA")
    assert files["/etc/msib/tls/collector.key"].sha256 == render.sha256("KEY")
    assert files["/etc/msib/tls/collector.pem"].sha256 is None  # not readable here: not compared
    assert files["/etc/rsyslog.conf"].sha256 == render.sha256(render.render("collector", "rsyslog.conf.j2", ctx))


def test_managed_files_of_the_firewall_include_the_confirmed_copy() -> None:
    fw = {**CTX_VARS, "msib_appliance": {**CTX_VARS["msib_appliance"], "role": "firewall", "name": "fw-int-1"}}
    files = {m.path: m for m in manifest.managed_files("firewall", render.context("firewall", fw))}
    assert files["/etc/nftables.conf"].sha256 == files["/etc/msib/firewall/ruleset.nft"].sha256
    assert "/usr/local/sbin/msib-nft-commit" in files


