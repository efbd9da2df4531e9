"""The one reader of an inventory directory: the model of a built inventory, its SSH settings, its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from inventory_helpers import LAB_SITE, REPO, lab_plan
from msib import contract
from msib.errors import InputError
from msib.inventory import SshSettings, build_inventory


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's site plan through `msib inventory build` (no appendix: the appliances only)."""
    base = tmp_path_factory.mktemp("contract")
    kh = base / "known_hosts"
    kh.write_text("")
    build_inventory(LAB_SITE, [], base / "inventory", ssh=SshSettings(known_hosts=kh))
    return base / "inventory"


def test_the_model_of_a_built_inventory(built: Path) -> None:
    inv = contract.load(built)
    plan = lab_plan()
    assert inv.directory == built.resolve() and inv.hosts_file == built.resolve() / "hosts.yml"
    assert (inv.sb_code, inv.state_body) == (plan.code, plan.state_body)
    assert inv.controllers == tuple(str(n) for n in plan.management.controllers)
    assert inv.siem.syslog == contract.Syslog(plan.siem.syslog.host, plan.siem.syslog.port, plan.siem.syslog.transport,
                                              plan.siem.syslog.peer_name)
    assert set(inv.circuits) == set(plan.circuits)
    internal = inv.circuits["internal"]
    assert internal.networks == tuple(str(n) for n in plan.circuits["internal"].networks)
    assert [c.name for c in internal.collectors] == [a.name for a in plan.circuits["internal"].by_role("collector")]
    # every appliance of the plan, Linux roles first in deploy order, then the vendor firewalls
    names = {a.name for _c, a in plan.appliances()}
    assert {a.name for a in inv.appliances} == names
    roles = [a.role for a in inv.appliances]
    assert roles == sorted(roles, key=contract.ROLE_GROUPS.index)
    col = inv.appliance("col-int-1")
    assert (col.role, col.circuit, col.port, col.is_linux) == ("collector", "internal", 22, True)
    assert col.address == str(next(a.address for _c, a in plan.appliances() if a.name == "col-int-1"))
    assert col.vars["msib_appliance"]["name"] == "col-int-1" and col.vars["msib_sb_code"] == plan.code
    assert inv.of("collector") == tuple(a for a in inv.appliances if a.role == "collector")
    assert inv.site is not None and inv.site.code == plan.code


def test_ssh_settings_come_from_msib_ssh_and_strict_host_keys_always(built: Path) -> None:
    inv = contract.load(built)
    assert inv.ssh == contract.Ssh(user=lab_plan().management.ssh_user, config_file=None,
                                   known_hosts_file=str(built.parent / "known_hosts"), key_file=None)
    col = inv.appliance("col-int-1")
    data = col.pyinfra_data(inv.ssh)
    assert data["ssh_hostname"] == col.address and data["ssh_strict_host_key_checking"] == "yes"
    assert data["ssh_known_hosts_file"] == inv.ssh.known_hosts_file and data["_sudo"] is True
    assert not any(k.startswith("ansible_") for k in data) and data["msib_circuit"] == "internal"
    argv = inv.ssh.argv(fresh=True)
    assert argv[0] == "ssh" and "StrictHostKeyChecking=yes" in argv and "ControlPath=none" in argv
    assert f"UserKnownHostsFile={inv.ssh.known_hosts_file}" in argv and argv[-2:] == ["-l", "msib"]
    text = inv.ssh.run_config([col], Path("/run/cm"), persist="30s", header="test")
    assert text.startswith("# test: strict host keys") and f"Host col-int-1\n    HostName {col.address}\n" in text
    assert "    StrictHostKeyChecking yes\n" in text and "    ControlPersist 30s\n" in text
    assert f"    UserKnownHostsFile {inv.ssh.known_hosts_file}\n" in text


def test_groups_and_the_pyinfra_view_match_the_generated_pyinfra_inventory(built: Path) -> None:
    import runpy

    inv = contract.load(built)
    assert inv.groups["lab"] == tuple(a.name for a in inv.appliances)  # the SB group holds every appliance
    assert inv.groups["circuit_internal"] == tuple(a.name for a in inv.appliances if a.circuit == "internal")
    generated = runpy.run_path(str(built / "pyinfra_inventory.py"))
    view = inv.pyinfra_groups()
    assert "netdev" not in view
    for group, hosts in view.items():
        assert [h for h, _d in hosts] == [h for h, _d in generated[group]], group
        for (_h, ours), (_g, theirs) in zip(hosts, generated[group], strict=True):
            assert {k: v for k, v in ours.items() if k in theirs} == theirs


def test_missing_ssh_settings_are_completed_from_the_ssh_configs_host_star_block(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host other\n    UserKnownHostsFile /nope\nHost *\n    User root\n"
                      "    IdentityFile /k/id\n    UserKnownHostsFile=/k/known_hosts\n")
    ssh = contract.Ssh(config_file=str(config)).effective()
    assert (ssh.user, ssh.key_file, ssh.known_hosts_file) == ("root", "/k/id", "/k/known_hosts")
    data = contract.Appliance("a", "collector", "192.0.2.1").pyinfra_data(contract.Ssh(config_file=str(config)))
    assert data["ssh_config_file"] == str(config) and "_sudo" not in data  # root: no sudo
    with pytest.raises(InputError, match="cannot read the ssh_config"):
        contract.Ssh(config_file=str(tmp_path / "none")).effective()
    with pytest.raises(InputError, match="no known_hosts"):
        contract.Appliance("a", "collector", "192.0.2.1").pyinfra_data(contract.Ssh(user="msib"))


def test_relative_ssh_paths_are_taken_from_the_inventory_directory(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": {
        "msib_ssh": {"user": "msib", "known_hosts_file": "known_hosts", "key_file": "/abs/id"}}}}))
    ssh = contract.load(tmp_path).ssh
    assert ssh.known_hosts_file == str(tmp_path.resolve() / "known_hosts") and ssh.key_file == "/abs/id"


def test_group_vars_host_vars_and_vars_files_apply_as_in_ansible(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {
        "vars": {"msib_x": 1, "collector_udp_port": 514, "collector_tcp_port": 514},
        "children": {"lab": {"children": {"collector": {}}, "vars": {"msib_y": "sb"}},
                     "collector": {"hosts": {"c1": {"ansible_host": "198.18.31.10", "collector_tcp_port": 1}},
                                   "vars": {"collector_udp_port": 999}}}}}))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "collector.yml").write_text("collector_udp_port: 1514\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "c1.yml").write_text("collector_tcp_port: 2\n")
    (tmp_path / "vars.yml").write_text("msib_x: 2\n")
    c1 = contract.load(tmp_path).with_vars(contract.read_vars([tmp_path / "vars.yml"])).appliance("c1")
    assert (c1.vars["collector_udp_port"], c1.vars["collector_tcp_port"]) == (1514, 2)
    assert (c1.vars["msib_x"], c1.vars["msib_y"], c1.port, c1.circuit) == (2, "sb", 22, None)


@pytest.mark.parametrize(("damage", "words", "where"), [
    (None, "no hosts.yml", None),
    ("all: [unclosed", "not valid YAML", "line 2, column 1"),
    ("- a list\n", "must be a YAML mapping", None),
    ("all: [1]\n", "not an Ansible YAML inventory", "all"),
    ("all: {vars: [1]}\n", "not a mapping", "all.vars"),
    ("all: {children: {collector: {hosts: {c1: {msib_circuit: internal}}}}}\n", "no ansible_host",
     "all.children.collector.hosts.c1"),
    ("all: {children: {firewall: {hosts: {f1: {ansible_host: 10.0.0.300}}}}}\n", "is not an IP address",
     "all.children.firewall.hosts.f1.ansible_host"),
    ("all: {children: {netdev: {hosts: {f1: {ansible_host: 10.0.0.1, ansible_port: x}}}}}\n", "port is not a number",
     "all.children.netdev.hosts.f1.ansible_port"),
    ("all: {vars: {msib_circuits: {internal: {networks: [10.0.0.0/33]}}}}\n", "not an IP address or network",
     "all.vars.msib_circuits.internal.networks[0]"),
    ("all: {vars: {msib_circuits: {internal: {collectors: [{name: c, address: nope}]}}}}\n", "is not an IP address",
     "all.vars.msib_circuits.internal.collectors[0].address"),
])
def test_an_unusable_inventory_is_one_input_error_naming_the_place(tmp_path: Path, damage: str | None, words: str,
                                                                   where: str | None) -> None:
    if damage is not None:
        (tmp_path / "hosts.yml").write_text(damage)
    with pytest.raises(InputError) as err:
        contract.load(tmp_path)
    assert words in err.value.message and err.value.where == where and err.value.exit_code == 2
    assert err.value.file.endswith("hosts.yml")


def test_a_relative_directory_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.yml").write_text("all: {}\n")
    monkeypatch.chdir(tmp_path)
    assert contract.load("inv").hosts_file == tmp_path / "inv" / "hosts.yml"


def test_not_a_directory_and_a_bad_site_json_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a directory"):
        contract.load(tmp_path / "none")
    (tmp_path / "hosts.yml").write_text("all: {}\n")
    (tmp_path / "site.json").write_text("{")
    inv = contract.load(tmp_path)
    assert inv.appliances == () and inv.sb_code is None and inv.siem == contract.Siem()
    with pytest.raises(InputError, match="cannot read the site plan"):
        _ = inv.site


def test_the_committed_example_inventory_reads(tmp_path: Path) -> None:
    inv = contract.load(REPO / "inventories" / "examples" / "out")
    assert inv.sb_code == "mcri" and inv.site is not None and inv.site.code == "mcri"
    assert {a.role for a in inv.appliances} == {"collector", "ids_sensor", "firewall", "netdev"}
    fw = next(a for a in inv.appliances if a.role == "netdev")
    assert fw.platform == "cisco_ios" and not fw.is_linux
