"""The pyinfra view (msib.inventory.pyinfra_loader): groups and host data from a hosts.yml, netdev left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from msib.inventory.pyinfra_loader import load_groups


def _hosts_yml(tmp_path: Path, user: str, **ssh: Any) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {
        "vars": {"msib_sb_code": "sb1", "msib_ssh": {"user": user, **ssh}, "ansible_user": user},
        "children": {
            "sb1": {"children": {"collector": {}, "firewall": {}, "netdev": {}}},
            "collector": {"hosts": {"col-1": {"ansible_host": "10.0.0.10", "msib_appliance": {"port": 22},
                                              "msib_circuit": "internal", "ansible_port": 22}}},
            "firewall": {"hosts": {"fw-1": {"ansible_host": "10.0.0.1", "msib_appliance": {"port": 2222},
                                            "msib_circuit": "internal"}}},
            "netdev": {"hosts": {"rtr-1": {"ansible_host": "10.0.0.2", "msib_appliance": {"port": 22}}}},
            "circuit_internal": {"hosts": {"col-1": {}, "fw-1": {}, "rtr-1": {}}},
            "circuit_external": {},
        },
    }}), encoding="utf-8")
    return path


def test_groups_are_those_of_hosts_yml_but_netdev(tmp_path: Path) -> None:
    groups = load_groups(_hosts_yml(tmp_path, "msib"))
    assert {name: [h for h, _ in hosts] for name, hosts in groups.items()} == {
        "sb1": ["col-1", "fw-1"],  # through the child groups, netdev left out
        "collector": ["col-1"],
        "firewall": ["fw-1"],
        "circuit_internal": ["col-1", "fw-1"],
        "circuit_external": [],
    }


def test_host_data_are_ssh_settings_and_msib_vars(tmp_path: Path) -> None:
    groups = load_groups(_hosts_yml(tmp_path, "msib", key_file="/k", known_hosts_file="/kh", config_file="/c"))
    data = dict(groups["firewall"])["fw-1"]
    assert data == {
        "ssh_hostname": "10.0.0.1", "ssh_port": 2222, "ssh_user": "msib", "ssh_strict_host_key_checking": "yes",
        "ssh_key": "/k", "ssh_known_hosts_file": "/kh", "ssh_config_file": "/c", "_sudo": True,
        "msib_sb_code": "sb1", "msib_ssh": {"user": "msib", "key_file": "/k", "known_hosts_file": "/kh",
                                            "config_file": "/c"},
        "msib_appliance": {"port": 2222}, "msib_circuit": "internal",
    }


def test_root_needs_no_sudo_and_unset_files_are_left_out(tmp_path: Path) -> None:
    data = dict(load_groups(_hosts_yml(tmp_path, "root"))["collector"])["col-1"]
    assert data["ssh_user"] == "root"
    assert not {"_sudo", "ssh_key", "ssh_known_hosts_file", "ssh_config_file", "ansible_port"} & set(data)
