"""pyinfra inventory written by `msib inventory build`: do not edit, build again.

A view of hosts.yml beside this file (the one model): the same hosts, groups and data.
Linux appliances only; vendor firewalls (group `netdev`) are driven with netmiko, not pyinfra.

    pyinfra DIR/pyinfra_inventory.py deploy/collector.py
"""

import os as _os

import yaml as _yaml

_SKIP = ("netdev",)


def _load():
    here = _os.path.dirname(_os.path.abspath(__file__))
    with open(_os.path.join(here, "hosts.yml"), encoding="utf-8") as f:
        inventory = _yaml.safe_load(f)["all"]
    common = {k: v for k, v in inventory["vars"].items() if k.startswith("msib_")}
    ssh = inventory["vars"]["msib_ssh"]
    groups = inventory["children"]
    hosts = {}
    for name, group in groups.items():
        if name in _SKIP:
            continue
        for host, hvars in ((group or {}).get("hosts") or {}).items():
            if hvars:
                hosts[host] = hvars

    def data(host):
        hvars = hosts[host]
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

    def members(name, seen=()):
        group = groups.get(name) or {}
        found = [h for h in (group.get("hosts") or {}) if h in hosts]
        for child in group.get("children") or {}:
            if child not in _SKIP and child not in seen:
                found += [h for h in members(child, (*seen, name)) if h not in found]
        return found

    return {
        name: [(host, data(host)) for host in members(name)]
        for name in groups
        if name not in _SKIP
    }


for _name, _hosts in _load().items():
    globals()[_name] = _hosts
