"""The lab's plan: lab.yml (what only a lab has), the topology it makes of a site plan, test labs.

The site plan says which appliances a site has; lab.yml adds the controller's address, the
uplink, the SIEM host, the LANs and the object hosts. :func:`build_topology` wires them into
bridges, hosts with their interfaces and routes (198.18.0.0/15 only). Nothing here touches the
machine: :class:`msib.lab.core.Lab` does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from msib.errors import InputError
from msib.site import DebianRelease, SitePlan

LabRole = Literal["collector", "ids_sensor", "firewall", "siem", "object", "device"]
LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")


# --- the lab's own plan (lab.yml) -----------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabSiem(_Strict):
    name: str = Field(default="siem", pattern=r"^[a-z0-9-]{1,32}$")
    management_address: ipaddress.IPv4Address
    address: ipaddress.IPv4Address


class LabObject(_Strict):
    name: str = Field(pattern=r"^[a-z0-9-]{1,32}$")
    circuit: Literal["internal", "external"]
    address: ipaddress.IPv4Address


class LabSpec(_Strict):
    name: str = Field(default="msib", pattern=r"^[a-z][a-z0-9]{1,5}$")
    # the Debian release of the lab's own hosts (SIEM, objects) and of appliances whose site plan
    # entry names none
    release: DebianRelease = "bookworm"
    controller: ipaddress.IPv4Interface
    proxy_port: int = Field(default=3142, ge=1024, le=65535)
    uplink: ipaddress.IPv4Network
    siem: LabSiem
    lans: dict[Literal["internal", "external"], ipaddress.IPv4Network]
    objects: list[LabObject] = Field(default_factory=list)
    mgmt_prefix: int = Field(default=24, ge=8, le=30)


# --- the computed topology ------------------------------------------------------------------------


@dataclass(frozen=True)
class Iface:
    """One interface of a lab host: its name inside the host, its bridge, its address (or none)."""

    name: str
    bridge: str
    address: ipaddress.IPv4Interface | None = None


@dataclass(frozen=True)
class Route:
    dest: str
    dev: str
    via: str | None = None


@dataclass(frozen=True)
class LabHost:
    """One lab host: what it is, how it is wired and how the controller reaches it."""

    name: str
    role: LabRole
    circuit: str | None
    address: ipaddress.IPv4Address  # what the controller connects to (management, or console)
    ifaces: tuple[Iface, ...]
    routes: tuple[Route, ...]
    forwarding: bool = False
    console_only: bool = False  # objects: no management path, reached via ip netns (lab console)
    release: str | None = None  # the Debian release it runs (None: a vendor device, no Debian)

    def netns(self, lab: str) -> str:
        return f"{lab}-{self.name}"


@dataclass
class Bridge:
    name: str
    address: ipaddress.IPv4Interface | None = None
    hub: bool = False  # flood every frame to every port (a SPAN port for the IDS sensor)


@dataclass
class Topology:
    bridges: list[Bridge]
    hosts: list[LabHost]
    controller_routes: list[str] = field(default_factory=list)


def _check_range(what: str, net: Any) -> None:
    if isinstance(net, ipaddress.IPv4Network):
        ok = net.subnet_of(ipaddress.IPv4Network(LAB_RANGE))
    else:
        ok = ipaddress.ip_address(net) in LAB_RANGE
    if not ok:
        raise InputError("lab", f"{what} {net} is outside the lab range {LAB_RANGE}",
                         fix="lab hosts only ever use 198.18.0.0/15")


def build_topology(plan: SitePlan, spec: LabSpec) -> Topology:
    """Wire the site plan's appliances, the SIEM and the object hosts into bridges and routes."""
    lab = spec.name
    mgmt = Bridge(f"{lab}-mgmt", spec.controller)
    uplink = Bridge(f"{lab}-up")
    bridges = [mgmt, uplink]
    lan_bridge: dict[str, Bridge] = {}
    for i, cname in enumerate(plan.circuits):
        if cname not in spec.lans:
            raise InputError("lab.yml", f"no LAN for circuit {cname}", where="lans", fix=f"add lans.{cname}")
        lan_bridge[cname] = Bridge(f"{lab}-lan{i}", hub=True)
        bridges.append(lan_bridge[cname])
    controller_net = spec.controller.network
    _check_range("controller network", controller_net)
    _check_range("uplink", spec.uplink)
    hosts: list[LabHost] = []
    controller_routes: list[str] = []
    fw_uplink: dict[str, str] = {}
    fw_lan: dict[str, str] = {}
    for cname, app in plan.appliances():
        if app.role == "firewall" and app.uplink_address and app.lan_address:
            fw_uplink.setdefault(cname, str(app.uplink_address))
            fw_lan.setdefault(cname, str(app.lan_address))

    def lan_if(cname: str, addr: Any, name: str = "eth1") -> Iface:
        net = spec.lans[cname]  # type: ignore[index]
        if addr is not None and ipaddress.ip_address(addr) not in net:
            raise InputError("lab", f"{addr} is outside the lab LAN {net} of circuit {cname}")
        return Iface(name, lan_bridge[cname].name,
                     ipaddress.IPv4Interface(f"{addr}/{net.prefixlen}") if addr is not None else None)

    for cname, app in plan.appliances():
        _check_range(f"appliance {app.name}", app.address)
        mgmt_if = ipaddress.ip_interface(f"{app.address}/{spec.mgmt_prefix}")
        if str(mgmt_if.network) not in controller_routes:
            controller_routes.append(str(mgmt_if.network))
        ifaces = [Iface("eth0", mgmt.name, mgmt_if)]  # type: ignore[arg-type]
        routes = [Route(str(controller_net), "eth0")]
        forwarding = False
        role: LabRole = app.role
        if not app.is_linux:
            role = "device"
        elif app.role == "collector":
            if app.lan_address:
                ifaces.append(lan_if(cname, app.lan_address))
                if cname in fw_lan:
                    routes.append(Route(str(spec.uplink), "eth1", fw_lan[cname]))
        elif app.role == "ids_sensor":
            ifaces.append(lan_if(cname, None, app.capture_interface or "eth1"))
        elif app.role == "firewall":
            if app.lan_address:
                ifaces.append(lan_if(cname, app.lan_address))
            if app.uplink_address:
                if app.uplink_address not in spec.uplink:
                    raise InputError("site.yml", f"{app.name}: uplink_address {app.uplink_address} is "
                                     f"outside the lab uplink {spec.uplink}")
                ifaces.append(Iface("eth2", uplink.name,
                                    ipaddress.ip_interface(f"{app.uplink_address}/{spec.uplink.prefixlen}")))  # type: ignore[arg-type]
            forwarding = True
        hosts.append(LabHost(app.name, role, cname, app.address, tuple(ifaces), tuple(routes), forwarding,  # type: ignore[arg-type]
                             release=None if role == "device" else (app.release or spec.release)))

    s = spec.siem
    _check_range("siem", s.address)
    _check_range("siem", s.management_address)
    if s.management_address not in controller_net:
        raise InputError("lab.yml", "siem.management_address must lie in the controller's network",
                         where="siem.management_address")
    siem_routes = [Route(str(n), "eth0", fw_uplink[c]) for c, circ in plan.circuits.items()
                   if c in fw_uplink for n in circ.networks]
    hosts.append(LabHost(
        s.name, "siem", None, s.management_address,
        (Iface("eth0", uplink.name, ipaddress.ip_interface(f"{s.address}/{spec.uplink.prefixlen}")),  # type: ignore[arg-type]
         Iface("eth1", mgmt.name, ipaddress.ip_interface(f"{s.management_address}/{controller_net.prefixlen}"))),  # type: ignore[arg-type]
        tuple(siem_routes), release=spec.release))
    for obj in spec.objects:
        if obj.circuit not in plan.circuits:
            raise InputError("lab.yml", f"object {obj.name}: no circuit {obj.circuit} in the site plan")
        routes = [Route(str(spec.uplink), "eth0", fw_lan[obj.circuit])] if obj.circuit in fw_lan else []
        hosts.append(LabHost(obj.name, "object", obj.circuit, obj.address,
                             (lan_if(obj.circuit, obj.address, "eth0"),), tuple(routes), console_only=True,
                             release=spec.release))
    names = [h.name for h in hosts]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError("lab", f"host names used twice: {', '.join(sorted(dup))}")
    return Topology(bridges, hosts, controller_routes)


def load_spec(lab_path: Path) -> LabSpec:
    """Read and validate a lab.yml.

    Raises:
        InputError: an unreadable file, bad YAML, or a plan that does not validate.
    """
    try:
        data = yaml.safe_load(lab_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(str(lab_path), f"cannot read the lab plan: {exc.strerror}",
                         fix="put a lab.yml beside the site plan") from None
    except yaml.YAMLError:
        raise InputError(str(lab_path), "not valid YAML", fix="fix the YAML syntax") from None
    try:
        return LabSpec.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in e["loc"])
        raise InputError(str(lab_path), str(e["msg"]), where=where, fix="correct the lab plan") from None


class LabView(Protocol):
    """What the lab's helpers (its SIEM host, its load) need of a running lab: a :class:`~msib.lab.core.Lab`."""

    @property
    def spec(self) -> LabSpec: ...

    @property
    def plan(self) -> SitePlan: ...

    @property
    def state_dir(self) -> Path: ...

    def host(self, name: str) -> LabHost: ...

    def ssh_argv(self, name: str, command: list[str] | None = None) -> list[str]: ...


# --- labs of their own, for tests and benchmarks ----------------------------------------------------


def write_synthetic_lab(directory: Path, *, name: str, collectors: int, octet: int = 200,
                        proxy_port: int = 3143, devices: int = 0) -> Path:
    """Write a small site plan + lab.yml of `collectors` collectors, one object host and a SIEM.

    For tests and benchmarks that need a lab of their own beside the shared one: it lives in
    198.19.<octet>.0/21 (the shared lab keeps below 198.19.128.0), under its own `name` and proxy
    port, so both can be up at once. The lab has `collectors + devices + 2` hosts (`devices` vendor
    firewalls of platform cisco_ios, stood in for by msib.lab.devsim). Returns the site.yml path.
    """
    if not 128 <= octet <= 248 or octet % 8:
        raise ValueError("octet must be a multiple of 8 in 128..248")
    if not 1 <= collectors <= 200:
        raise ValueError("collectors must be 1..200")
    p = f"198.19.{octet}"
    lan, mgmt, ctl, up = f"198.19.{octet}", f"198.19.{octet + 1}", f"198.19.{octet + 2}", f"198.19.{octet + 3}"
    site = {
        "state_body": f"Synthetic lab {name}", "code": name,
        "siem": {"syslog": {"host": f"{up}.10"}},  # the shipped default transport
        "circuits": {"internal": {
            "networks": [f"{p}.0/23"],
            "appliances": [{"name": f"col-{i + 1}", "role": "collector", "address": f"{mgmt}.{10 + i}",
                            "lan_address": f"{lan}.{10 + i}"} for i in range(collectors)]
            + [{"name": f"fw-dev-{i + 1}", "role": "firewall", "platform": "cisco_ios",
                "address": f"{mgmt}.{250 - i}"} for i in range(devices)],
        }},
        "management": {"ssh_user": "msib", "controllers": [f"{ctl}.1/32"],
                       "package_proxy": f"http://{ctl}.1:{proxy_port}"},
    }
    lab = {
        "name": name, "controller": f"{ctl}.1/24", "proxy_port": proxy_port, "uplink": f"{up}.0/24",
        "siem": {"name": "siem", "management_address": f"{ctl}.10", "address": f"{up}.10"},
        "lans": {"internal": f"{lan}.0/24"},
        "objects": [{"name": "obj-1", "circuit": "internal", "address": f"{lan}.200"}],
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "site.yml").write_text(yaml.safe_dump(site, allow_unicode=True, sort_keys=False))
    (directory / "lab.yml").write_text(yaml.safe_dump(lab, sort_keys=False))
    return directory / "site.yml"
