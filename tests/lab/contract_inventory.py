"""A hosts.yml in the shape of docs/inventory-contract.md, made from the lab's site plan.

Used by the lab suites only when `msib lab up` has not written the lab's inventory (the inventory
builder lands separately); the roles read nothing but what the contract promises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from msib.lab import Lab


def contract_hosts(lab: Lab) -> dict[str, Any]:
    """The lab's hosts.yml as a dict, per the inventory contract."""
    plan = lab.plan
    circuits: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {"collector": {}, "ids_sensor": {}, "firewall": {}}
    by_circuit: dict[str, dict[str, Any]] = {}
    for cname, circuit in plan.circuits.items():
        circuits[cname] = {
            "networks": [str(n) for n in circuit.networks],
            "collectors": [
                {"name": a.name, "address": str(a.address), "service_address": str(a.service_address)}
                for a in circuit.by_role("collector")
            ],
            "appliances": [
                {"name": a.name, "role": a.role, "address": str(a.address),
                 "service_address": str(a.service_address)}
                for a in circuit.appliances
            ],
        }
        by_circuit[f"circuit_{cname}"] = {"hosts": {}}
        for a in circuit.appliances:
            if not a.is_linux:
                continue
            groups[a.role][a.name] = {
                "ansible_host": str(a.address),
                "msib_circuit": cname,
                "msib_appliance": {
                    "name": a.name, "role": a.role, "address": str(a.address),
                    "lan_address": str(a.lan_address) if a.lan_address else None,
                    "uplink_address": str(a.uplink_address) if a.uplink_address else None,
                    "capture_interface": a.capture_interface, "platform": a.platform, "port": a.port,
                },
            }
            by_circuit[f"circuit_{cname}"]["hosts"][a.name] = {}
    syslog = plan.siem.syslog
    return {
        "all": {
            "vars": {
                "msib_sb_code": plan.code,
                "msib_state_body": plan.state_body,
                "msib_siem": {
                    "syslog": {"host": syslog.host, "port": syslog.port, "transport": syslog.transport,
                               "peer_name": syslog.peer_name},
                    "api": {"url": plan.siem.api.url, "driver": plan.siem.api.driver} if plan.siem.api else None,
                },
                "msib_controllers": [str(n) for n in plan.management.controllers],
                "msib_package_proxy": plan.management.package_proxy,
                "msib_circuits": circuits,
                "ansible_user": plan.management.ssh_user,
                "ansible_become": True,
                "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_ssh_common_args": f"-F {lab.ssh_config}",
            },
            "children": {
                plan.code: {"children": {"collector": {}, "ids_sensor": {}, "firewall": {}}},
                **{role: {"hosts": hosts} for role, hosts in groups.items()},
                **by_circuit,
            },
        }
    }


def write_contract_inventory(lab: Lab, directory: Path) -> Path:
    """Write hosts.yml into `directory` and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(yaml.safe_dump(contract_hosts(lab), sort_keys=False, allow_unicode=True))
    return directory


if __name__ == "__main__":
    import sys

    lab = Lab.from_files("inventories/lab/site.yml")
    print(write_contract_inventory(lab, Path(sys.argv[1])))
