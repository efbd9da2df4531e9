"""The lab's network: bridges, one network namespace per host, veth pairs, routes (and their removal)."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

from msib.lab.plan import LAB_RANGE, Topology
from msib.lab.system import ip, run, sysctl


def veth(lab: str, idx: int, ifidx: int) -> str:
    """The controller side of host `idx`'s interface `ifidx` (short: interface names have 15 bytes)."""
    return f"{lab}{idx}e{ifidx}"


def guard_metric(lab: str) -> int:
    """The metric of lab `lab`'s unreachable route for the whole lab range (one per lab, so labs side
    by side each add and remove their own)."""
    return 40000 + zlib.crc32(lab.encode()) % 20000


def guard_routes(lab: str) -> list[str]:
    """Lab `lab`'s guard route, if present on the machine."""
    out = run(["ip", "-j", "route", "show", "type", "unreachable", str(LAB_RANGE)], check=False).stdout
    return [f"unreachable {r.get('dst')} metric {r.get('metric')}" for r in json.loads(out or "[]")
            if r.get("metric") == guard_metric(lab)]


def net_up(topology: Topology, lab: str, controller_address: str) -> None:
    """Make the bridges, the namespaces, their interfaces, addresses and routes of `topology`."""
    # Nothing the controller sends to the lab range leaves the machine: an address of the range
    # that no lab route covers (a host's circuit-side address, say) is unreachable, not routed
    # out of the default gateway (the lab's routes are more specific and win).
    ip("route", "replace", "unreachable", str(LAB_RANGE), "metric", str(guard_metric(lab)))
    for br in topology.bridges:
        ip("link", "add", br.name, "type", "bridge")
        sysctl(f"net.ipv6.conf.{br.name}.disable_ipv6", "1")
        if br.hub:
            # ageing 0: the bridge learns nothing and floods every frame, as a SPAN port sees it
            ip("link", "set", br.name, "type", "bridge", "ageing_time", "0")
        if br.address:
            ip("addr", "add", str(br.address), "dev", br.name)
        ip("link", "set", br.name, "up")
    mgmt = topology.bridges[0].name
    for net in topology.controller_routes:
        ip("route", "replace", net, "dev", mgmt, "src", controller_address)
    for idx, h in enumerate(topology.hosts):
        ns = h.netns(lab)
        ip("netns", "add", ns)
        sysctl("net.ipv6.conf.all.disable_ipv6", "1", ns)
        sysctl("net.ipv6.conf.default.disable_ipv6", "1", ns)
        ip("link", "set", "lo", "up", netns=ns)
        for ifidx, iface in enumerate(h.ifaces):
            name = veth(lab, idx, ifidx)
            ip("link", "add", name, "type", "veth", "peer", "name", iface.name, "netns", ns)
            sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
            ip("link", "set", name, "master", iface.bridge, "up")
            if iface.address:
                ip("addr", "add", str(iface.address), "dev", iface.name, netns=ns)
            ip("link", "set", iface.name, "up", netns=ns)
        for r in h.routes:
            args = ["route", "replace", r.dest, "dev", r.dev] + (["via", r.via] if r.via else [])
            ip(*args, netns=ns)
        sysctl("net.ipv4.ip_forward", "1" if h.forwarding else "0", ns)


def namespaces(lab: str) -> list[str]:
    """The network namespaces of lab `lab` present on the machine."""
    out = run(["ip", "netns", "list"], check=False).stdout.splitlines()
    return [line.split()[0] for line in out if line.startswith(f"{lab}-")]


def links(lab: str) -> list[str]:
    """The bridges and veths of lab `lab` present on the machine."""
    veth_re = re.compile(rf"^{re.escape(lab)}\d+e\d+$")
    names = [link.get("ifname", "") for link in json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")]
    return [name for name in names if name.startswith(f"{lab}-") or veth_re.match(name)]


def net_down(lab: str) -> None:
    """Remove every namespace and link of lab `lab` (safe when there are none)."""
    for ns in namespaces(lab):
        ip("netns", "delete", ns, check=False)
        Path("/run/netns", ns).unlink(missing_ok=True)
    for name in links(lab):
        ip("link", "delete", name, check=False)
    if guard_routes(lab):
        ip("route", "delete", "unreachable", str(LAB_RANGE), "metric", str(guard_metric(lab)), check=False)
