"""Inventory directories for the unit suites, written by the product's own builder (no lab needed)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from msib.inventory import SshSettings, inventory_model, render_hosts_yml
from msib.site import SitePlan, load_site, parse_site

REPO = Path(__file__).resolve().parent.parent
LAB_SITE = REPO / "inventories" / "lab" / "site.yml"


def lab_plan() -> SitePlan:
    """The lab's site plan (inventories/lab/site.yml)."""
    return load_site(LAB_SITE)


def hosts_model(plan: SitePlan | None = None, **ssh: Any) -> dict[str, Any]:
    """hosts.yml as data, as `msib inventory build` makes it from `plan` (the lab's by default)."""
    return inventory_model(plan or lab_plan(), None, ssh=SshSettings(**ssh))


def host_vars(name: str, role: str, plan: SitePlan | None = None, **extra: Any) -> dict[str, Any]:
    """Every variable one appliance of `plan`'s hosts.yml has (the lab's by default; all vars, then its
    host vars), plus `extra`."""
    inv = hosts_model(plan)["all"]
    return {**inv["vars"], **inv["children"][role]["hosts"][name], **extra}


def write_inventory(directory: Path, plan: SitePlan | None = None, *, known_hosts: Path,
                    netdev_address: str | None = None) -> Path:
    """Write DIR/hosts.yml for `plan`; `netdev_address` replaces every vendor firewall's ansible_host
    (simulators listening on 127.0.0.1, each on its own port)."""
    model = hosts_model(plan, known_hosts=known_hosts)
    if netdev_address is not None:
        for host in model["all"]["children"]["netdev"]["hosts"].values():
            host["ansible_host"] = netdev_address
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_bytes(render_hosts_yml(model))
    return directory


def refusing_inventory(tmp_path: Path) -> Path:
    """One collector on 127.0.0.1 at a port where nothing listens: every connection is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    plan = parse_site({
        "state_body": "Test body", "code": "lab", "siem": {"syslog": {"host": "127.0.0.5"}},
        "management": {"controllers": ["127.0.0.1/32"]},
        "circuits": {"internal": {"networks": ["127.0.0.0/8"], "appliances": [
            {"name": "col-int-1", "role": "collector", "address": "127.0.0.1", "port": port}]}},
    }, "test")
    (tmp_path / "known_hosts").write_text("")
    return write_inventory(tmp_path / "inventory", plan, known_hosts=tmp_path / "known_hosts")
