"""The inventory model: the Ansible inventory as data (hosts, groups, vars), of which every file is a view."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import eq
from pathlib import Path
from typing import Any, Final

from msib.appendix import Appendix
from msib.site import ROLES, Appliance, SitePlan

#: The files of an inventory directory, in the order they are written.
INVENTORY_FILES: Final[tuple[str, ...]] = (
    "hosts.yml",
    "pyinfra_inventory.py",
    "objects.json",
    "report.json",
    "report.md",
    "site.json",
)
_RESERVED_GROUPS: Final = frozenset(
    {"all", "ungrouped", "netdev", *ROLES, "circuit_internal", "circuit_external"}
)


@dataclass(frozen=True)
class SshSettings:
    """How the engines reach the appliances. Host keys are always checked strictly.

    Args:
        ssh_config: an ssh_config file every connection uses (`ssh -F`).
        known_hosts: the site's known_hosts file (default: the site plan's `management.known_hosts`).
        identity_file: the private key to log in with.
        user: the login user (default: the site plan's `management.ssh_user`).
    """

    ssh_config: Path | str | None = None
    known_hosts: Path | str | None = None
    identity_file: Path | str | None = None
    user: str | None = None


# --- the model --------------------------------------------------------------------------------------


def _ipv6_key(ip: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, ip)


def _has_ipv6(ips: Sequence[str]) -> bool:
    """Whether any of the canonical address texts is an IPv6 one."""
    return ":" in "".join(ips)


def _sorted_ips(ips: list[str]) -> list[str]:
    """Canonical IPv4/IPv6 texts in numeric order, IPv4 first."""
    if not _has_ipv6(ips):
        return sorted(ips, key=socket.inet_aton)
    v4 = sorted((ip for ip in ips if ":" not in ip), key=socket.inet_aton)
    v6 = sorted((ip for ip in ips if ":" in ip), key=_ipv6_key)
    return v4 + v6


def _appliance_vars(app: Appliance) -> dict[str, Any]:
    return {
        "name": app.name,
        "role": app.role,
        "address": str(app.address),
        "lan_address": str(app.lan_address) if app.lan_address is not None else None,
        "uplink_address": str(app.uplink_address) if app.uplink_address is not None else None,
        "capture_interface": app.capture_interface,
        "platform": app.effective_platform if app.role == "firewall" else None,
        "port": app.port,
        "release": app.release,
    }


def _resolve(path: Path | str | None, base: Path | None = None) -> str | None:
    if path is None or str(path) == "":
        return None
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return str(p.absolute())


def _ssh_vars(plan: SitePlan, ssh: SshSettings, site_dir: Path) -> dict[str, Any]:
    known_hosts = _resolve(ssh.known_hosts) or _resolve(plan.management.known_hosts, site_dir)
    return {
        "user": ssh.user or plan.management.ssh_user,
        "config_file": _resolve(ssh.ssh_config),
        "known_hosts_file": known_hosts,
        "key_file": _resolve(ssh.identity_file),
        "strict_host_key_checking": "yes",
    }


def ssh_common_args(ssh_vars: Mapping[str, Any]) -> str:
    """`ansible_ssh_common_args` for the settings: `-F` when given, strict host keys always."""
    parts = []
    if ssh_vars.get("config_file"):
        parts.append(f"-F {_shell_word(ssh_vars['config_file'])}")
    parts.append("-o StrictHostKeyChecking=yes")
    if ssh_vars.get("known_hosts_file"):
        parts.append(f"-o UserKnownHostsFile={_shell_word(ssh_vars['known_hosts_file'])}")
    return " ".join(parts)


def _shell_word(text: str) -> str:
    import shlex

    return shlex.quote(text)


def inventory_model(
    plan: SitePlan,
    appendix: Appendix | None = None,
    *,
    ssh: SshSettings | None = None,
    site_dir: Path | None = None,
) -> dict[str, Any]:
    """The Ansible inventory as data: the one model both ``hosts.yml`` and pyinfra are views of.

    Args:
        plan: the validated site plan.
        appendix: the checked appendix (its objects' IPs become each circuit's allowed senders).
        ssh: connection settings (strict host keys always).
        site_dir: the site plan's directory (relative paths in it are resolved from there).

    Returns:
        `{"all": {"vars": ..., "children": ...}}` as in docs/inventory-contract.md.
    """
    site_dir = site_dir or Path.cwd()
    ssh_vars = _ssh_vars(plan, ssh or SshSettings(), site_dir)
    siem = plan.siem.model_dump(mode="json", exclude_none=True)
    if plan.siem.ca_file:
        siem["ca_file"] = _resolve(plan.siem.ca_file, site_dir)
    if plan.siem.api is not None and plan.siem.api.ca_file:
        siem["api"]["ca_file"] = _resolve(plan.siem.api.ca_file, site_dir)

    ips = appendix.column("ip") if appendix is not None else ()
    circ = appendix.column("circuit") if appendix is not None else ()
    senders = {c: _sorted_ips(list(compress(ips, map(eq, circ, repeat(c))))) for c in plan.circuits}
    circuits: dict[str, Any] = {}
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
            "objects": len(senders[cname]),
            "senders": senders[cname],
        }

    all_vars: dict[str, Any] = {
        "msib_sb_code": plan.code,
        "msib_state_body": plan.state_body,
        "msib_siem": siem,
        "msib_controllers": [str(n) for n in plan.management.controllers],
        "msib_package_proxy": plan.management.package_proxy,
        "msib_circuits": circuits,
        "msib_ssh": ssh_vars,
        "ansible_user": ssh_vars["user"],
    }
    if ssh_vars["user"] != "root":
        all_vars["ansible_become"] = True
    all_vars["ansible_python_interpreter"] = "/usr/bin/python3"
    all_vars["ansible_ssh_common_args"] = ssh_common_args(ssh_vars)
    if ssh_vars["key_file"]:
        all_vars["ansible_ssh_private_key_file"] = ssh_vars["key_file"]

    by_role: dict[str, dict[str, Any]] = {"collector": {}, "ids_sensor": {}, "firewall": {}, "netdev": {}}
    by_circuit: dict[str, dict[str, Any]] = {f"circuit_{c}": {} for c in plan.circuits}
    for cname, app in plan.appliances():
        host: dict[str, Any] = {"ansible_host": str(app.address)}
        if app.port != 22:
            host["ansible_port"] = app.port
        host["msib_circuit"] = cname
        host["msib_appliance"] = _appliance_vars(app)
        if app.suricata_major is not None:  # the role's own variable: --vars may still override it
            host["ids_sensor_suricata_major"] = app.suricata_major
        group: str = app.role if app.is_linux else "netdev"
        if group == "netdev":
            host["msib_device_type"] = app.effective_platform
        by_role[group][app.name] = host
        by_circuit[f"circuit_{cname}"][app.name] = {}

    sb_children: dict[str, Any] = {"collector": {}, "ids_sensor": {}, "firewall": {}}
    if by_role["netdev"]:
        sb_children["netdev"] = {}
    children: dict[str, Any] = {plan.code: {"children": sb_children}}
    for group, hosts in by_role.items():
        if group == "netdev" and not hosts:
            continue
        children[group] = {"hosts": hosts} if hosts else {}
    for group, hosts in by_circuit.items():
        children[group] = {"hosts": hosts} if hosts else {}
    return {"all": {"vars": all_vars, "children": children}}

