"""The pyinfra view of an inventory directory: pyinfra groups and host data made from its hosts.yml."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

#: Groups pyinfra does not get: vendor firewalls are driven with netmiko, not pyinfra.
SKIP: Final = ("netdev",)

#: A pyinfra group: (host name, host data) for each host of the group.
Group = list[tuple[str, dict[str, Any]]]


def load_groups(hosts_yml: str | Path) -> dict[str, Group]:
    """Every group of hosts.yml but `netdev`, with its hosts (those of its child groups too).

    What the ``pyinfra_inventory.py`` an inventory build writes sets as its module-level groups.
    A host's data: ``ssh_hostname``, ``ssh_port``, ``ssh_user``, ``ssh_strict_host_key_checking``
    ("yes"), ``ssh_key``, ``ssh_known_hosts_file`` and ``ssh_config_file`` when given, ``_sudo``
    when the user is not root, and every ``msib_*`` var (the group's, then the host's).
    """
    with open(hosts_yml, encoding="utf-8") as f:
        inventory = yaml.safe_load(f)["all"]
    common = {k: v for k, v in inventory["vars"].items() if k.startswith("msib_")}
    ssh = inventory["vars"]["msib_ssh"]
    groups = inventory["children"]
    hosts: dict[str, dict[str, Any]] = {}
    for name, group in groups.items():
        if name in SKIP:
            continue
        for host, hvars in ((group or {}).get("hosts") or {}).items():
            if hvars:
                hosts[host] = hvars
    return {
        name: [(host, _host_data(hosts[host], ssh, common)) for host in _members(groups, hosts, name)]
        for name in groups
        if name not in SKIP
    }


def _host_data(hvars: Mapping[str, Any], ssh: Mapping[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        "ssh_hostname": hvars["ansible_host"],
        "ssh_port": hvars["msib_appliance"]["port"],
        "ssh_user": ssh["user"],
        "ssh_strict_host_key_checking": "yes",
    }
    if ssh.get("key_file"):
        out["ssh_key"] = ssh["key_file"]
    if ssh.get("known_hosts_file"):
        out["ssh_known_hosts_file"] = ssh["known_hosts_file"]
    if ssh.get("config_file"):
        out["ssh_config_file"] = ssh["config_file"]
    if ssh["user"] != "root":
        out["_sudo"] = True
    out.update(common)
    out.update({k: v for k, v in hvars.items() if k.startswith("msib_")})
    return out


def _members(groups: Mapping[str, Any], hosts: Mapping[str, Any], name: str, seen: tuple[str, ...] = ()) -> list[str]:
    """The hosts of group `name` and of its child groups, in order, each once."""
    group = groups.get(name) or {}
    found = [h for h in (group.get("hosts") or {}) if h in hosts]
    for child in group.get("children") or {}:
        if child not in SKIP and child not in seen:
            found += [h for h in _members(groups, hosts, child, (*seen, name)) if h not in found]
    return found
