"""Units behind `msib check`: the catalogue and its registry, the parsers the checks use, the inventory they read."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from inventory_helpers import write_inventory
from msib import checks as mc
from msib.errors import InputError


def test_every_catalogued_check_is_implemented_once_and_nothing_else() -> None:
    ids = list(mc.implemented_ids())
    assert sorted(ids) == sorted(mc.catalogue()), "catalogue and @check IDs differ"
    assert len(ids) == len(set(ids)), "an ID is implemented twice"


def test_catalogue_entries_have_a_title_severity_and_clause() -> None:
    for spec in mc.catalogue().values():
        assert spec.severity in mc.SEVERITIES and len(spec.title) > 10 and len(spec.clause) > 20, spec.id


def test_every_why_cites_the_rules_and_a_page_of_docs_never_an_internal_spec() -> None:
    repo = Path(__file__).resolve().parent.parent
    for spec in mc.catalogue().values():
        assert spec.clause.startswith("The Rules: "), spec.id
        pages = re.findall(r"\bdocs/([\w-]+\.md)\b", spec.clause)
        assert pages and all((repo / "docs" / page).is_file() for page in pages), (spec.id, pages)
        assert not re.search(r"reliability\.md|spec/|shared/", spec.clause), spec.id


def test_time_and_header_of_the_loaded_rules_are_read() -> None:
    assert mc.suricata_time("2026-12-05T06:46:00.000000+0000") == 1796453160.0
    assert mc.suricata_time("2026-12-05T07:46:00-0000") - mc.suricata_time("2026-12-05T06:46:00") == 3600
    assert mc.ruleset_header("# msib rule set v2 for suricata-7.0, released 2026-12-01\n# ...\nalert x\n") == (
        "v2", "7.0", "2026-12-01")
    assert mc.ruleset_header("") is None and mc.ruleset_header("alert tcp any any -> any any (sid:1;)\n") is None
    with pytest.raises(ValueError):
        mc.suricata_time("yesterday")


def test_rsyslog_global_reads_the_ca_whatever_its_path() -> None:
    conf = 'global(\n  workDirectory="/w"\n  defaultNetstreamDriverCAFile="/etc/other/ca.pem" # a comment\n)\n'
    assert mc.rsyslog_global(conf)["defaultnetstreamdrivercafile"] == "/etc/other/ca.pem"


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


def test_inventory_vars_files_override_and_group_vars_apply(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"vars": {"msib_x": 1, "collector_udp_port": 514},
                                                            "children": {"collector": {"hosts": {"c1": {
                                                                "ansible_host": "198.18.31.10"}}}}}}))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "collector.yml").write_text("collector_udp_port: 1514\n")
    extra = tmp_path / "vars.yml"
    extra.write_text("msib_x: 2\n")
    inv = mc.load(tmp_path, [extra])
    assert inv.appliance("c1").vars["collector_udp_port"] == 1514
    assert inv.appliance("c1").vars["msib_x"] == 2
    with pytest.raises(InputError, match="no appliance named"):
        inv.appliance("nope")
    with pytest.raises(InputError, match="no such vars file"):
        mc.load(tmp_path, [tmp_path / "none.yml"])


def test_hosts_are_dealt_into_at_most_n_batches_each_once_in_inventory_order() -> None:
    hosts = [f"h{i:02d}" for i in range(20)]
    got = mc.runner.batches(hosts, 4)  # type: ignore[arg-type]
    assert len(got) == 4 and sorted(h for b in got for h in b) == hosts
    assert all(b == sorted(b) for b in got) and {len(b) for b in got} == {5}
    assert mc.runner.batches(hosts[:3], 8) == [["h00"], ["h01"], ["h02"]]  # never an empty batch
    assert mc.runner.batches(hosts[:3], 0) == [hosts[:3]]


def test_the_checks_pytest_loads_testinfra_and_no_other_installed_plugin(tmp_path: Path) -> None:
    # a plugin installed beside msib (entry point pytest11) must not run inside the checks: it could
    # change what a check does or reports (and its import is start-up time in every process)
    site = tmp_path / "site"
    (site / "stray_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "stray_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: stray-plugin\nVersion: 1.0\n")
    (site / "stray_plugin-1.0.dist-info" / "entry_points.txt").write_text("[pytest11]\nstray = stray_plugin\n")
    (site / "stray_plugin.py").write_text("def pytest_configure(config):\n    print('STRAY PLUGIN LOADED')\n")
    (tmp_path / "known_hosts").write_text("")
    inv = write_inventory(tmp_path / "inventory", known_hosts=tmp_path / "known_hosts")
    (tmp_path / "ssh_config").write_text("")
    hosts = [mc.load(inv).appliance("col-int-1")]
    argv = [*mc.runner._pytest_argv(hosts, tmp_path / "ssh_config", inv, []), "--collect-only", "-q"]
    i = argv.index("no:terminal")
    del argv[i - 1:i + 1]  # the terminal back, to see what was collected

    def collect(env: dict[str, str], argv: list[str] = argv) -> str:
        env = {**env, "PYTHONPATH": str(site)}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    hermetic = collect(mc.runner._pytest_env())
    assert "STRAY PLUGIN LOADED" not in hermetic
    assert "test_common.py::test_ssh_keys_only[ssh://col-int-1]" in hermetic  # testinfra did parametrize
    # as before (plugins autoloaded, testinfra among them) the stray plugin is loaded: the test sees it
    i = argv.index("testinfra.plugin")
    autoloaded = collect({k: v for k, v in mc.runner._pytest_env().items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"},
                         argv[:i - 1] + argv[i + 1:])
    assert "STRAY PLUGIN LOADED" in autoloaded


def _run_of(*results: tuple[str, str, str]) -> Any:
    from msib.checks.runner import CheckResult, CheckRun
    return CheckRun(inventory="inv", started=0.0, results=[
        CheckResult(host, "collector", check_id, "t", severity, "c", outcome, "e")  # type: ignore[arg-type]
        for host, check_id, severity, outcome in ((h, c, s.split(":")[0], s.split(":")[1]) for h, c, s in results)])


def test_fail_on_sets_the_least_severity_that_fails_the_run_and_the_wave() -> None:
    from msib.fleet.actions import check_failures
    # a Debian 12 appliance on LTS (MSIB-HOST-007, medium) beside a passed critical check
    run = _run_of(("col-1", "MSIB-HOST-007", "medium:failed"), ("col-1", "MSIB-COL-002", "critical:passed"))
    assert run.exit_code() == 1 and run.exit_code("medium") == 1
    assert run.exit_code("high") == 0 and run.exit_code("critical") == 0
    circuits = {"col-1": "internal"}
    assert check_failures("akm", circuits, run, "high") == []
    assert [f.step for f in check_failures("akm", circuits, run, "low")] == ["check MSIB-HOST-007 failed"]
    # a high failure counts under --fail-on high; an error always counts (and exits 2)
    worse = _run_of(("col-1", "MSIB-COL-003", "high:failed"), ("fw-1", "MSIB-FW-001", "low:error"))
    assert worse.exit_code("critical") == 2
    assert [(f.host, f.step) for f in check_failures("akm", circuits, worse, "critical")] == \
        [("fw-1", "check MSIB-FW-001 error")]
    assert len(check_failures("akm", circuits, worse, "high")) == 2
