"""Checks of the IDS sensors (role ids_sensor: Suricata 7, or 8 on Debian 13, on the circuit's SPAN port)."""

from __future__ import annotations

import calendar
import ipaddress
import json
import time
from typing import Any

from _common import Evidence, no_drift, packages_at_expected_version, service_running

from msib.checks import check, ruleset_header, suricata_time

#: Default maximum age of the loaded rule set (msib_ids_rules_max_age_days overrides it).
RULES_MAX_AGE_DAYS = 7


def _dump_config(host: Any) -> dict[str, str]:
    out = host.run("suricata --dump-config -c /etc/suricata/suricata.yaml")
    assert out.rc == 0, f"suricata --dump-config failed: {out.stderr.strip()[-300:]}"
    conf: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            conf[key.strip()] = value.strip()
    return conf


def _socket(conf: dict[str, str]) -> str:
    return conf.get("unix-command.filename") or "/var/run/suricata-command.socket"


@check("MSIB-IDS-001")
def test_packages(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    major = ctx["ids_sensor_suricata_major"]
    version = host.run("suricata -V").stdout.strip()
    evidence(f"suricata -V: {version} (the inventory's ids_sensor_suricata_major: {major})")
    assert f"version {major}." in version, f"Suricata {major} is required, found: {version or 'none'}"
    packages_at_expected_version(host, ctx, ["suricata", "rsyslog"], evidence)


@check("MSIB-IDS-002")
def test_suricata_running_and_capturing(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    problems = service_running(host, "suricata", evidence) + service_running(host, "rsyslog", evidence)
    iface = ctx["ids_sensor_capture_interface"] or ctx["msib_appliance"]["capture_interface"]
    conf = _dump_config(host)
    out = host.run(f"suricatasc -c iface-list {_socket(conf)}")
    evidence(f"suricatasc iface-list: {out.stdout.strip() or out.stderr.strip()}")
    try:
        ifaces = json.loads(out.stdout)["message"]["ifaces"]
    except (ValueError, KeyError, TypeError):
        ifaces = []
    if iface not in ifaces:
        problems.append(f"Suricata is not capturing on {iface} (capturing on: {ifaces or 'nothing'})")
    assert not problems, "; ".join(problems)


@check("MSIB-IDS-003")
def test_no_drift(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    no_drift(host, "ids_sensor", ctx, evidence)


@check("MSIB-IDS-004")
def test_home_net_is_the_circuit(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    wanted = ctx["ids_sensor_home_net"] or ctx["msib_circuits"][ctx["msib_circuit"]]["networks"]
    live = _dump_config(host).get("vars.address-groups.HOME_NET", "")
    evidence(f"HOME_NET loaded: {live or '(not set)'}; the circuit: {', '.join(wanted)}")
    words = [w.strip() for w in live.strip("[]\"").split(",") if w.strip()]
    try:
        got = {ipaddress.ip_network(w, strict=False) for w in words}
    except ValueError:
        got = set()
    assert got == {ipaddress.ip_network(w, strict=False) for w in wanted}, \
        f"HOME_NET is {live or '(not set)'}, not the circuit's networks {wanted}"


@check("MSIB-IDS-005")
def test_rules_fresh_and_loaded(host: Any, ctx: dict[str, Any], evidence: Evidence) -> None:
    max_days = float(ctx.get("msib_ids_rules_max_age_days") or RULES_MAX_AGE_DAYS)
    conf = _dump_config(host)
    rule_path = conf.get("default-rule-path", "/etc/suricata/rules")
    files = [v if v.startswith("/") else f"{rule_path.rstrip('/')}/{v}"
             for k, v in sorted(conf.items()) if k.startswith("rule-files.")]
    assert files, "suricata.yaml loads no rule file"
    stat = host.run("stat -c '%Y %n' " + " ".join(f"'{f}'" for f in files))
    assert stat.rc == 0, f"rule file missing: {stat.stderr.strip()}"
    sock = _socket(conf)
    stats = host.run(f"suricatasc -c ruleset-stats {sock}")
    evidence(f"suricatasc ruleset-stats: {stats.stdout.strip() or stats.stderr.strip()}")
    try:
        engines = json.loads(stats.stdout)["message"]
        loaded = sum(int(e["rules_loaded"]) for e in engines)
        failed = sum(int(e["rules_failed"]) for e in engines)
    except (ValueError, KeyError, TypeError):
        loaded = failed = -1
    assert loaded > 0, "the running Suricata reports no rules loaded"
    assert failed == 0, f"{failed} rule(s) failed to load"
    # the age of what the engine RUNS: the rule set's source date, and the engine's last reload after
    # the rule file was written (a file written since is not what runs)
    update = ctx.get("ids_sensor_update_rule_file")
    assert update, "this sensor takes no rule updates (ids_sensor_update_rule_file is null): its rules never age out"
    reply = host.run(f"suricatasc -c ruleset-reload-time {sock}")
    try:
        reloaded = suricata_time(str(json.loads(reply.stdout)["message"][0]["last_reload"]))
    except (ValueError, KeyError, TypeError, IndexError):
        raise AssertionError(f"the engine does not say when it last loaded its rules: {reply.stdout.strip()}") from None
    head = host.run(f"head -c 512 '{update}'")
    written = host.run(f"stat -c %Y '{update}'").stdout.strip()
    header = ruleset_header(head.stdout)
    evidence(f"{update}: " + (f"rule set {header[0]} for suricata-{header[1]}, released {header[2]}" if header else
                              "no rule set (empty: created by the deploy, never updated)")
             + f"; written {_utc(float(written or 0))}; the engine last loaded its rules {_utc(reloaded)}")
    assert header, (f"no rule update has ever been loaded: {update} holds no rule set (the deploy creates it "
                    "empty; `msib update --rules` fills it)")
    assert reloaded >= float(written or 0) - 1, \
        f"{update} was written after the engine last loaded its rules: the rules running are older than that file"
    age_days = (time.time() - calendar.timegm(time.strptime(header[2], "%Y-%m-%d"))) / 86400
    evidence(f"age of the loaded rule set: {age_days:.1f} days since its source released it (limit {max_days:g})")
    assert age_days <= max_days, f"the loaded rule set is {age_days:.1f} days old (limit {max_days:g})"


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))
