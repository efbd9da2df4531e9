"""The one renderer: filters, environment rules, context, and the management guard."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from inventory_helpers import host_vars, lab_plan
from msib import checks, render
from msib.engines import guards
from msib.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def _host_vars(name: str, role: str) -> dict[str, Any]:
    return host_vars(name, role, collector_ca_file="/tmp/ca.pem", collector_cert_dir="/tmp/pki")


# --- filters --------------------------------------------------------------------------------------

def test_ip_family_keeps_one_version_in_order() -> None:
    assert render.ip_family(["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"], 4) == ["10.0.0.0/8", "192.0.2.1"]
    assert render.ip_family(["10.0.0.0/8", "2001:db8::/32"], 6) == ["2001:db8::/32"]


def test_nft_set_merges_overlaps_and_writes_hosts_bare() -> None:
    assert render.nft_set(["198.18.16.0/20", "198.18.31.10", "198.18.0.1/32"]) == "{ 198.18.0.1, 198.18.16.0/20 }"


def test_nft_set_refuses_an_empty_set() -> None:
    with pytest.raises(ValueError, match="empty"):
        render.nft_set([])


def test_port_set_sorts_and_dedups_and_leaves_one_port_bare() -> None:
    assert render.port_set([6514, 514, 514]) == "{ 514, 6514 }"
    assert render.port_set([22]) == "22"
    with pytest.raises(ValueError):
        render.port_set([0])


def test_rsyslog_string_escapes_quotes_and_backslashes() -> None:
    assert render.rsyslog_string('a "b" \\ c') == '"a \\"b\\" \\\\ c"'


@pytest.mark.parametrize("transport", ["tls", "relp+tls"])
def test_a_line_break_in_the_siem_host_cannot_reach_rsyslog_conf(transport: str) -> None:
    """The site plan refuses it first (tests/test_site.py); the renderer refuses it too."""
    hv = _host_vars("col-int-1", "collector")
    syslog = {**hv["msib_siem"]["syslog"], "transport": transport, "peer_name": None,
              "host": 'siem.example"\n*.* action(type="omfile" file="/tmp/pwned")\n#'}
    hv["msib_siem"] = {**hv["msib_siem"], "syslog": syslog}
    with pytest.raises(InputError, match="control characters"):
        render.render("collector", "rsyslog.conf.j2", render.context("collector", hv))


def test_yaml_list_is_a_quoted_flow_list() -> None:
    assert render.yaml_list(["198.18.16.0/20", "10.0.0.0/8"]) == '"[198.18.16.0/20,10.0.0.0/8]"'


def test_onoff_and_yesno_take_booleans_only() -> None:
    assert (render.onoff(True), render.onoff(False), render.yesno(True), render.yesno(False)) == \
        ("on", "off", "yes", "no")
    with pytest.raises(TypeError):
        render.onoff("yes")
    with pytest.raises(TypeError):
        render.yesno(1)


def test_host_address_drops_the_prefix() -> None:
    assert render.host_address("198.18.0.1/24") == "198.18.0.1"


def test_plain_turns_subclasses_and_tuples_into_json_types() -> None:
    class Tagged(str):
        pass

    out = render.plain({"a": (1, Tagged("x"))})
    assert out == {"a": [1, "x"]} and type(out["a"][1]) is str


def test_every_filter_is_registered_and_documented() -> None:
    env = render.environment()
    for name, func in render.FILTERS.items():
        assert env.filters[name] is func
        assert func.__doc__ and func.__doc__.strip()


# --- environment and context ----------------------------------------------------------------------

def test_environment_is_strict_and_keeps_the_trailing_newline() -> None:
    env = render.environment()
    assert env.undefined.__name__ == "StrictUndefined"
    assert env.trim_blocks and env.lstrip_blocks and env.keep_trailing_newline


def test_a_missing_variable_is_an_input_error_naming_the_template() -> None:
    ctx = render.context("firewall", {})
    with pytest.raises(InputError, match=r"ruleset\.nft\.j2.*undefined"):
        render.render("firewall", "ruleset.nft.j2", ctx)


def test_context_takes_only_msib_and_role_variables() -> None:
    ctx = render.context("collector", {"msib_x": 1, "collector_queue_size": 5, "ansible_host": "h",
                                       "firewall_guard": False})
    assert ctx["msib_x"] == 1 and ctx["collector_queue_size"] == 5
    assert "ansible_host" not in ctx and "firewall_guard" not in ctx
    assert ctx["collector_queue_highwatermark"] == 400000  # from defaults/main.yml


def test_unknown_role_and_template_are_input_errors() -> None:
    with pytest.raises(InputError):
        render.defaults("nope")
    with pytest.raises(InputError, match="no such template"):
        render.render("collector", "nope.j2", {})


def test_role_file_stays_inside_the_role() -> None:
    assert b"sid:9900001" in render.role_file("ids_sensor", "rules/msib-lab.rules")
    with pytest.raises(InputError):
        render.role_file("ids_sensor", "../defaults/main.yml")


def test_rendering_is_deterministic() -> None:
    ctx = render.context("collector", _host_vars("col-int-1", "collector"))
    assert render.render("collector", "rsyslog.conf.j2", ctx) == render.render("collector", "rsyslog.conf.j2", ctx)


def test_collector_config_has_an_explicitly_sized_disk_assisted_queue() -> None:
    ctx = render.context("collector", _host_vars("col-int-1", "collector"))
    text = render.render("collector", "rsyslog.conf.j2", ctx)
    # the shipped default: RELP over TLS to the SIEM, its certificate and name checked
    for needle in ('type="omrelp"', 'port="2514"', 'tls="on"', 'tls.authMode="name"',
                   'tls.permittedPeer=["siem.lab.msib"]', "$AllowedSender UDP, 198.18.16.0/20"):
        assert needle in text
    # the SIEM action has no queue of its own: it runs in, and retries from, its ruleset's queue
    action = checks.rsyslog_action(text, "msib_siem")
    assert action is not None and "queue.type" not in action and action["action.resumeretrycount"] == "-1"
    where, queue = checks.rsyslog_action_queue(text, "msib_siem") or ("", {})
    assert where == "ruleset msib_relay"
    assert {k: queue.get(k) for k in ("queue.type", "queue.size", "queue.highwatermark", "queue.dequeuebatchsize",
                                      "queue.filename", "queue.maxdiskspace", "queue.saveonshutdown",
                                      "queue.timeoutenqueue")} == {
        "queue.type": "LinkedList", "queue.size": "500000", "queue.highwatermark": "400000",
        "queue.dequeuebatchsize": "512", "queue.filename": "msib_siem", "queue.maxdiskspace": "2g",
        "queue.saveonshutdown": "on", "queue.timeoutenqueue": "0"}
    # every input reaches that queue through the spooling ruleset, which runs in the input's thread
    inputs = re.findall(r'input\(type="\w+" port="\d+" ruleset="(\w+)"', text)
    assert len(inputs) >= 3 and set(inputs) == {"msib_remote"}
    assert 'ruleset(name="msib_remote" queue.type="Direct") {' in text and "  call msib_relay\n}" in text


def test_plain_tls_transport_renders_an_omfwd_action_with_x509_name() -> None:
    hv = _host_vars("col-int-1", "collector")
    hv["msib_siem"] = {**hv["msib_siem"], "syslog": {**hv["msib_siem"]["syslog"], "transport": "tls",
                                                     "port": 6514}}
    text = render.render("collector", "rsyslog.conf.j2", render.context("collector", hv))
    assert 'type="omfwd"' in text and 'StreamDriverAuthMode="x509/name"' in text
    assert 'StreamDriverPermittedPeers="siem.lab.msib"' in text and 'port="6514"' in text


def test_a_site_plan_without_peer_name_renders_the_collector_checking_the_siem_host_name() -> None:
    # peer_name is optional in the site plan and the inventory leaves a None out; StrictUndefined
    # made every collector of such a site fail to render (found by a synthetic lab of bench_deploy)
    plan = lab_plan()
    plan = plan.model_copy(update={"siem": plan.siem.model_copy(
        update={"syslog": plan.siem.syslog.model_copy(update={"peer_name": None})})})
    hv = host_vars("col-int-1", "collector", plan, collector_ca_file="/tmp/ca.pem", collector_cert_dir="/tmp/pki")
    assert "peer_name" not in hv["msib_siem"]["syslog"]
    text = render.render("collector", "rsyslog.conf.j2", render.context("collector", hv))
    host = plan.siem.syslog.host
    assert f'target="{host}"' in text and f'tls.permittedPeer=["{host}"]' in text


def test_suricata_home_net_is_the_circuit() -> None:
    ctx = render.context("ids_sensor", _host_vars("ids-ext-1", "ids_sensor"))
    text = render.render("ids_sensor", "suricata.yaml.j2", ctx)
    assert 'HOME_NET: "[198.18.32.0/20]"' in text and "interface: eth1" in text
    yaml.safe_load(text.split("---", 1)[1])


@pytest.mark.parametrize(("role", "host", "template"), [
    ("firewall", "fw-int-1", "ruleset.nft.j2"), ("collector", "col-ext-1", "collector.nft.j2")])
def test_rendered_rulesets_pass_nft_check(role: str, host: str, template: str, tmp_path: Path) -> None:
    path = tmp_path / "r.nft"
    path.write_text(render.render(role, template, render.context(role, _host_vars(host, role))))
    proc = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --- the management guard -------------------------------------------------------------------------

def _fw(**extra: Any) -> tuple[str, dict[str, Any]]:
    ctx = render.context("firewall", {**_host_vars("fw-int-1", "firewall"), **extra})
    return render.render("firewall", "ruleset.nft.j2", ctx), ctx


def test_guard_accepts_the_rendered_ruleset() -> None:
    text, ctx = _fw()
    guards.check("nft_management", text, ctx)


def test_guard_refuses_a_ruleset_without_the_ssh_port_of_the_controller() -> None:
    text, ctx = _fw(firewall_ssh_port=2222)
    with pytest.raises(guards.LockoutError, match=r"tcp/22 from 198\.18\.0\.1/32"):
        guards.check("nft_management", text, ctx)


def test_guard_refuses_a_drop_before_the_management_rule() -> None:
    text = ("table inet t {\n chain input {\n  type filter hook input priority 0; policy accept;\n"
            "  tcp dport 22 drop\n  ip saddr 198.18.0.1 tcp dport 22 accept\n }\n}\n")
    with pytest.raises(guards.LockoutError, match="drops before"):
        guards.nft_management(text, ["198.18.0.1/32"], 22)


def test_guard_refuses_a_management_rule_for_other_sources() -> None:
    text = ("table inet t {\n chain input {\n  type filter hook input priority 0; policy drop;\n"
            "  ip saddr 10.0.0.0/8 tcp dport { 22, 443 } accept\n }\n}\n")
    with pytest.raises(guards.LockoutError):
        guards.nft_management(text, ["198.18.0.1/32"], 22)


def test_guard_accepts_a_port_set_and_a_covering_network() -> None:
    text = ("table inet t {\n chain input {\n  type filter hook input priority 0; policy drop;\n"
            "  ip saddr { 198.18.0.0/24, 10.1.1.1 } tcp dport { 22, 443 } accept\n  counter drop\n }\n}\n")
    guards.nft_management(text, ["198.18.0.1/32"], 22)


def test_guard_refuses_when_there_are_no_controllers() -> None:
    with pytest.raises(guards.LockoutError, match="no controllers"):
        guards.nft_management("table inet t { }", [], 22)


def test_guard_can_be_turned_off_only_by_the_role_flag() -> None:
    text, ctx = _fw(firewall_ssh_port=2222, firewall_guard=False)
    guards.check("nft_management", text, ctx)
    with pytest.raises(ValueError):
        guards.check("nope", text, ctx)


# --- what the collector role adds for delivery (the lab test: tests/lab/test_delivery_role.py) ----


def _delivery_ctx(**extra: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = render.context("collector", {**_host_vars("col-ext-1", "collector"), **extra})
    return ctx


def test_relp_listener_and_its_port_in_the_collector_table_follow_collector_relp_port() -> None:
    conf = render.render("collector", "rsyslog.conf.j2", _delivery_ctx())
    table = render.render("collector", "collector.nft.j2", _delivery_ctx())
    assert 'input(type="imrelp" port="2514" ruleset="msib_remote"' in conf
    assert "{ 514, 2514, 6514 }" in table
    off = _delivery_ctx(collector_relp_port=None)
    assert "imrelp" not in render.render("collector", "rsyslog.conf.j2", off)
    assert "{ 514, 6514 }" in render.render("collector", "collector.nft.j2", off)


def test_queue_counters_go_to_syslog_unless_turned_off() -> None:
    assert 'module(load="impstats" interval="60"' in render.render("collector", "rsyslog.conf.j2", _delivery_ctx())
    assert "impstats" not in render.render("collector", "rsyslog.conf.j2", _delivery_ctx(collector_stats_interval=0))


def test_firewall_forwards_its_own_syslog_to_the_collector() -> None:
    ctx = render.context("firewall", {**_delivery_ctx(), "msib_appliance": {"name": "fw-ext-1", "role": "firewall"}})
    conf = render.render("firewall", "rsyslog.conf.j2", ctx)
    assert 'target="198.18.47.10" port="514"' in conf and "*.*                     call msib_collector" in conf
