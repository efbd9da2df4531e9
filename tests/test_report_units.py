"""Units behind msib check and msib update: catalogue, parsers, managed files, the lock, rule sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from msib import checks as mc
from msib import render
from msib import update as up
from msib.errors import InputError

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


def test_every_catalogued_check_is_implemented_once_and_nothing_else() -> None:
    ids = list(mc.implemented_ids())
    assert sorted(ids) == sorted(mc.catalogue()), "catalogue and @check IDs differ"
    assert len(ids) == len(set(ids)), "an ID is implemented twice"


def test_catalogue_entries_have_a_title_severity_and_clause() -> None:
    for spec in mc.catalogue().values():
        assert spec.severity in mc.SEVERITIES and len(spec.title) > 10 and len(spec.clause) > 20, spec.id


def test_check_decorator_refuses_an_uncatalogued_id() -> None:
    with pytest.raises(InputError, match="not catalogued"):
        mc.check("MSIB-COL-999")


def test_checks_for_a_role_are_the_common_ones_plus_its_own() -> None:
    ids = {s.id for s in mc.checks_for("firewall")}
    assert {i for i in ids if i.startswith("MSIB-HOST")} == {s.id for s in mc.checks_for("collector")
                                                             if s.id.startswith("MSIB-HOST")}
    assert all(i.startswith(("MSIB-HOST", "MSIB-FW")) for i in ids)


def test_weak_ssh_algorithms_are_named() -> None:
    conf = mc.parse_sshd_t("ciphers aes128-ctr,3des-cbc\nmacs hmac-md5,hmac-sha2-256\nkexalgorithms "
                           "curve25519-sha256,diffie-hellman-group1-sha1\n")
    assert mc.weak_ssh_algorithms(conf) == {"ciphers": ["3des-cbc"], "macs": ["hmac-md5"],
                                            "kexalgorithms": ["diffie-hellman-group1-sha1"]}


def test_pending_upgrades_tell_security_from_the_rest() -> None:
    text = ("Inst libssl3 [3.0.1] (3.0.2 Debian-Security:12/stable-security [amd64])\n"
            "Conf libssl3 (3.0.2 Debian-Security:12/stable-security [amd64])\n"
            "Inst tzdata [2024a] (2024b Debian:12.9/stable-updates [all])\n")
    assert [(p["package"], p["security"]) for p in mc.pending_upgrades(text)] == [("libssl3", True), ("tzdata", False)]


def test_rsyslog_action_reads_quoted_and_list_parameters() -> None:
    conf = ('# action(type="omfwd" name="msib_siem" target="commented")\n'
            'action(type="omrelp" name="msib_siem" target="198.19.0.10" tls="on"\n'
            '  tls.permittedPeer=["siem.lab.msib","other"] queue.saveOnShutdown="on")\n')
    a = mc.rsyslog_action(conf, "msib_siem")
    assert a is not None and a["type"] == "omrelp" and a["target"] == "198.19.0.10"
    assert a["tls.permittedpeer"] == "siem.lab.msib,other" and a["queue.saveonshutdown"] == "on"
    assert mc.rsyslog_action(conf, "nothing") is None


def test_rsyslog_action_queue_is_the_actions_own_or_its_rulesets() -> None:
    own = 'action(type="omfwd" name="siem" queue.type="LinkedList" queue.size="9")'
    assert mc.rsyslog_action_queue(own, "siem") == ("action siem", mc.rsyslog_action(own, "siem"))
    nested = ('ruleset(name="spool" queue.type="Direct") {\n  action(type="omfile" name="siem2")\n}\n'
              'ruleset(name="relay" queue.type="LinkedList" queue.size="500000") {\n'
              '  if $fromhost-ip != "127.0.0.1" then {\n    action(type="omfile" file="/x")\n  }\n'
              '  action(type="omfwd" name="siem" queue.type="Direct")\n}\n')
    where, queue = mc.rsyslog_action_queue(nested, "siem") or ("", {})
    assert where == "ruleset relay" and queue["queue.size"] == "500000"
    assert mc.rsyslog_action_queue(nested, "siem2") == ("ruleset spool", {"name": "spool", "queue.type": "Direct"})
    assert mc.rsyslog_action_queue(nested, "nothing") is None


def test_nft_base_chains_default_policy_is_accept() -> None:
    text = ("table inet msib {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n"
            "\tchain out {\n\t\ttype filter hook output priority filter;\n\t}\n}\n")
    assert [(c["hook"], c["policy"]) for c in mc.nft_base_chains(text)] == [("input", "drop"), ("output", "accept")]


def test_nft_comparable_ignores_containment_entries_only() -> None:
    live = ("table inet msib {\n\tset msib_blocked {\n\t\ttimeout 1h\n\t\telements = { 198.18.16.66 expires 55m,\n"
            "\t\t\t     198.18.16.67 expires 5m }\n\t}\n\tset controllers {\n\t\telements = { 198.18.0.1 }\n\t}\n}\n")
    rendered = ("table inet msib {\n\tset msib_blocked {\n\t\ttimeout 1h\n\t}\n\tset controllers {\n"
                "\t\telements = { 198.18.0.1 }\n\t}\n}\n")
    assert mc.nft_comparable(live) == mc.nft_comparable(rendered)
    assert mc.nft_comparable(live.replace("198.18.0.1 }", "198.18.0.2 }")) != mc.nft_comparable(rendered)


def test_managed_files_come_from_the_role_tasks_with_their_conditions(tmp_path: Path) -> None:
    ctx = render.context("collector", CTX_VARS)
    paths = {m.path for m in mc.managed_files("collector", ctx)}
    assert paths == {"/etc/rsyslog.conf", "/etc/msib/collector.nft", "/etc/msib/tls/ca.pem",
                     "/etc/systemd/system/msib-collector-nft.service"}
    assert "/etc/msib/tls/collector.key" not in paths  # no certificate given: no key installed
    (tmp_path / "ca.pem").write_text("CA")
    (tmp_path / "col-int-1.key").write_text("KEY")
    ctx = render.context("collector", {**CTX_VARS, "collector_ca_file": str(tmp_path / "ca.pem"),
                                       "collector_cert_dir": str(tmp_path)})
    files = {m.path: m for m in mc.managed_files("collector", ctx)}
    assert files["/etc/msib/tls/ca.pem"].sha256 == render.sha256("CA")
    assert files["/etc/msib/tls/collector.key"].sha256 == render.sha256("KEY")
    assert files["/etc/msib/tls/collector.pem"].sha256 is None  # not readable here: not compared
    assert files["/etc/rsyslog.conf"].sha256 == render.sha256(render.render("collector", "rsyslog.conf.j2", ctx))


def test_managed_files_of_the_firewall_include_the_confirmed_copy() -> None:
    fw = {**CTX_VARS, "msib_appliance": {**CTX_VARS["msib_appliance"], "role": "firewall", "name": "fw-int-1"}}
    files = {m.path: m for m in mc.managed_files("firewall", render.context("firewall", fw))}
    assert files["/etc/nftables.conf"].sha256 == files["/etc/msib/firewall/ruleset.nft"].sha256
    assert "/usr/local/sbin/msib-nft-commit" in files


def test_inventory_vars_files_override_and_group_vars_apply(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"vars": {"msib_x": 1, "collector_udp_port": 514},
                                                            "children": {"collector": {"hosts": {"c1": {
                                                                "ansible_host": "198.18.31.10"}}}}}}))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "collector.yml").write_text("collector_udp_port: 1514\n")
    extra = tmp_path / "vars.yml"
    extra.write_text("msib_x: 2\n")
    inv = mc.load_inventory(tmp_path, [extra])
    assert inv.host("c1").variables["collector_udp_port"] == 1514
    assert inv.host("c1").variables["msib_x"] == 2
    with pytest.raises(InputError, match="no appliance named"):
        inv.host("nope")


def test_a_second_lock_holder_is_refused_with_exit_75(tmp_path: Path) -> None:
    lock = tmp_path / "update.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from msib.update import update_lock\n"
        f"with update_lock(Path({str(lock)!r})):\n    print('held', flush=True); sys.stdin.read()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(up.UpdateLocked) as info, up.update_lock(lock):
            pass
        assert info.value.exit_code == 75 and f"pid {holder.pid}" in str(info.value)
    finally:
        holder.communicate("", timeout=30)
    with up.update_lock(lock):  # released when its holder ended
        pass


def test_fetch_ruleset_verifies_checksums_and_uses_the_cache(tmp_path: Path) -> None:
    src, cache = tmp_path / "src", tmp_path / "cache"
    up.publish_ruleset(src, "7.0", "v1", {"a.rules": "alert tcp any any -> any any (sid:1;)\n"})
    rs, cached = up.fetch_ruleset(str(src), "7.0", cache)
    assert (rs.version, cached, rs.rule_lines()) == ("v1", False, 1)
    assert up.fetch_ruleset(str(src), "7.0", cache)[1] is True
    assert rs.bundle().startswith(b"# msib rule set v1 for suricata-7.0")
    (src / "suricata-7.0" / "v1" / "a.rules").write_text("tampered\n")
    (cache / "suricata-7.0" / "v1" / "a.rules").unlink()
    with pytest.raises(up.UpdateError, match="refusing it"):
        up.fetch_ruleset(str(src), "7.0", cache)


def test_publish_ruleset_refuses_path_tricks(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        up.publish_ruleset(tmp_path, "7.0", "../x", {"a.rules": ""})


def test_install_timer_writes_units_that_systemd_accepts(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yml").write_text("all: {children: {}}\n")
    paths = up.install_timer(inv, args=["--rules"], unit_dir=tmp_path / "units", env_file=tmp_path / "update.env",
                             msib="/usr/bin/true", enable=False)
    service = Path(paths["service"]).read_text()
    assert "ExecStart=/usr/bin/true update --inventory ${MSIB_INVENTORY} $MSIB_UPDATE_ARGS --json" in service
    assert "SuccessExitStatus=75" in service and f"EnvironmentFile={tmp_path / 'update.env'}" in service
    assert f"MSIB_INVENTORY={inv}" in (tmp_path / "update.env").read_text()
    assert "OnCalendar=" in Path(paths["timer"]).read_text()
    (tmp_path / "update.env").touch()
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", paths["timer"], paths["service"]],
                          capture_output=True, text=True, cwd=tmp_path / "units")
    complaints = [ln for ln in proc.stderr.splitlines() if "msib-update" in ln]
    assert proc.returncode == 0 and not complaints, proc.stderr
    # the same verification notices a broken unit (so the assertion above can fail)
    Path(paths["service"]).write_text(service.replace("Type=oneshot", "Type=bogus"))
    bad = subprocess.run(["systemd-analyze", "verify", "--man=no", paths["service"]], capture_output=True, text=True)
    assert "Failed to parse service type" in bad.stderr
