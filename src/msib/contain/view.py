"""The inventory as containment sees it: the firewalls per circuit and everything that must never be blocked."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from msib.contain.request import IPv4Net, Protected
from msib.contract import Inventory, Ssh
from msib.errors import InputError


@dataclass(frozen=True)
class Firewall:
    """One firewall of a circuit: how it is driven and reached (its management address only)."""

    name: str
    circuit: str
    platform: str
    address: str
    port: int = 22

    @property
    def is_nftables(self) -> bool:
        return self.platform == "nftables"


@dataclass(frozen=True)
class ContainInventory:
    """The firewalls per circuit and everything that must never be blocked."""

    path: Path
    circuits: Mapping[str, tuple[IPv4Net, ...]]
    firewalls: tuple[Firewall, ...]
    protected: tuple[Protected, ...]
    ssh: Ssh = field(repr=False)
    source: Inventory | None = field(default=None, repr=False, compare=False)

    def select_circuits(self, target: IPv4Net, requested: Sequence[str] = ()) -> tuple[str, ...]:
        """The circuits to block `target` in: `requested`, else those whose networks hold it, else all.

        Raises:
            InputError: a requested circuit is not in the inventory.
        """
        if requested:
            unknown = [c for c in requested if c not in self.circuits]
            if unknown:
                raise InputError("--circuit", f"no circuit {', '.join(unknown)} in {self.path / 'hosts.yml'}",
                                 fix=f"one of: {', '.join(self.circuits) or '(none)'}")
            return tuple(dict.fromkeys(requested))
        inside = tuple(c for c, nets in self.circuits.items() if any(target.overlaps(n) for n in nets))
        return inside or tuple(self.circuits)

    def firewalls_of(self, circuits: Sequence[str]) -> tuple[Firewall, ...]:
        return tuple(f for f in self.firewalls if f.circuit in circuits)


def _ip_networks(values: Any, where: str, file: str) -> list[IPv4Net]:
    out: list[IPv4Net] = []
    for i, v in enumerate(values if isinstance(values, list) else [values]):
        if v in (None, ""):
            continue
        try:
            net = ipaddress.ip_network(str(v), strict=False)
        except ValueError:
            raise InputError(file, f"{v!r} is not an IP address or network", where=f"{where}[{i}]") from None
        if isinstance(net, ipaddress.IPv4Network):
            out.append(net)
    return out


def _resolve(host: str, where: str, file: str) -> list[IPv4Net]:
    """An address literal, or the IPv4 addresses a name resolves to (a name that does not resolve is refused)."""
    try:
        return _ip_networks([host], where, file)
    except InputError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET)
    except OSError:
        raise InputError(file, f"cannot resolve {host!r}, so a block cannot be proven not to cut the SIEM off",
                         where=where, fix="give the SIEM as an IP address in the site plan") from None
    return sorted({IPv4Net(f"{info[4][0]}/32") for info in infos})



def contain_inventory(inv: Inventory) -> ContainInventory:
    """The circuits, firewalls (groups ``firewall``, ``netdev``) and protected addresses of `inv`.

    Raises:
        InputError: a firewall without circuit, or a SIEM host name that does not resolve.
    """
    file = str(inv.hosts_file)
    protected: list[Protected] = []
    for net in _ip_networks(list(inv.controllers), "all.vars.msib_controllers", file):
        protected.append(Protected(net, "the management path (msib_controllers)"))
    if inv.siem.syslog is not None:
        for net in _resolve(inv.siem.syslog.host, "all.vars.msib_siem.syslog.host", file):
            protected.append(Protected(net, "the SIEM's syslog receiver"))
    api_host = urlsplit(inv.siem.api.url).hostname if inv.siem.api.url else None
    if api_host:
        for net in _resolve(api_host, "all.vars.msib_siem.api.url", file):
            protected.append(Protected(net, "the SIEM's API"))
    circuits: dict[str, tuple[IPv4Net, ...]] = {}
    for cname, circuit in inv.circuits.items():
        where = f"all.vars.msib_circuits.{cname}"
        circuits[cname] = tuple(_ip_networks(list(circuit.networks), f"{where}.networks", file))
        for what, members in (("collector", circuit.collectors), ("appliance", circuit.appliances)):
            for m in members:
                for net in _ip_networks([m.address, m.service_address], f"{where}.{what}s", file):
                    protected.append(Protected(net, f"{what} {m.name}"))
    firewalls: list[Firewall] = []
    for a in inv.appliances:
        where = f"all.children.{a.role}.hosts.{a.name}"
        app: Any = a.vars.get("msib_appliance") or {}
        for key, value in (("address", app.get("address")), ("lan_address", a.lan_address),
                           ("uplink_address", a.uplink_address)):
            for net in _ip_networks([value], f"{where}.msib_appliance.{key}", file):
                protected.append(Protected(net, f"appliance {a.name} ({key.replace('_', ' ')})"))
        for net in _ip_networks([a.address], f"{where}.ansible_host", file):
            protected.append(Protected(net, f"appliance {a.name} (management)"))
        for net in _ip_networks(a.vars.get("firewall_siem_addresses") or [], f"{where}.firewall_siem_addresses",
                                file):
            protected.append(Protected(net, "the SIEM's syslog receiver"))
        if a.role not in ("firewall", "netdev"):
            continue
        if not a.circuit:
            raise InputError(file, "a firewall needs msib_circuit and ansible_host", where=where)
        platform = "nftables" if a.role == "firewall" else str(a.platform)
        firewalls.append(Firewall(a.name, a.circuit, platform, a.address, a.port))
    return ContainInventory(inv.directory, circuits, tuple(firewalls), tuple(protected), inv.ssh, inv)
