"""The local lab: real Debian 12 hosts on one machine, shaped by a site plan.

Each host has its own network namespace and addresses in 198.18.0.0/15, its own overlay root
filesystem over one cached base, systemd as PID 1 (systemd-nspawn), a real sshd with a pinned
host key, and apt through the lab's own package proxy (nginx, msib.lab_mirror). See inventories/lab/lab.yml for the
topology and /work/shared/spec/lab.md for the recipe this follows.

Example:
    >>> lab = Lab.from_files("inventories/lab/site.yml")   # doctest: +SKIP
    >>> lab.up(); lab.status()["hosts"][0]["up"]             # doctest: +SKIP
    True
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from msib.errors import InputError, LabError
from msib.lab_mirror import APT_TIMEOUT_S, Mirror, PackageProxy, machine_mirrors
from msib.site import SitePlan, load_site

LabRole = Literal["collector", "ids_sensor", "firewall", "siem", "object", "device"]
LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
DEFAULT_STATE_DIR = Path("/var/lib/msib-lab")
DEFAULT_CACHE_DIR = Path("/var/cache/msib-lab")
SUITE = "bookworm"
# What every lab host has before any role runs: what a freshly installed Debian server has.
BASE_PACKAGES = (
    "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "iproute2", "sudo",
    "ca-certificates", "procps", "netcat-openbsd", "less",
)
INOTIFY_INSTANCES = 1024
BOOT_TIMEOUT_S = 90.0


class Reporter(Protocol):
    """Anything with a rich-like `print` (a rich Console), for progress lines."""

    def print(self, *objects: Any, **kwargs: Any) -> None: ...


class _Quiet:
    def print(self, *objects: Any, **kwargs: Any) -> None:
        return None


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


class LabDevice(_Strict):
    """A vendor firewall of the site plan, stood in for by msib's device simulator."""

    name: str


class LabSpec(_Strict):
    name: str = Field(default="msib", pattern=r"^[a-z][a-z0-9]{1,5}$")
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
        hosts.append(LabHost(app.name, role, cname, app.address, tuple(ifaces), tuple(routes), forwarding))  # type: ignore[arg-type]

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
        tuple(siem_routes)))
    for obj in spec.objects:
        if obj.circuit not in plan.circuits:
            raise InputError("lab.yml", f"object {obj.name}: no circuit {obj.circuit} in the site plan")
        routes = [Route(str(spec.uplink), "eth0", fw_lan[obj.circuit])] if obj.circuit in fw_lan else []
        hosts.append(LabHost(obj.name, "object", obj.circuit, obj.address,
                             (lan_if(obj.circuit, obj.address, "eth0"),), tuple(routes), console_only=True))
    names = [h.name for h in hosts]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError("lab", f"host names used twice: {', '.join(sorted(dup))}")
    return Topology(bridges, hosts, controller_routes)


# --- running commands -----------------------------------------------------------------------------


def _run(argv: list[str], *, check: bool = True, input: str | None = None,
         timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed: run ./scripts/setup") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from None
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv[:6])} failed ({proc.returncode}): {err[-1] if err else ''}")
    return proc


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "-netns", netns, *args] if netns else ["ip", *args]
    return _run(argv, check=check)


def _sysctl(key: str, value: str, netns: str | None = None) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    if netns:
        _run(["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > {path}"])
    else:
        Path(path).write_text(value + "\n")


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (killed, not yet reaped: PID 1 here may never reap) is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _mirrors() -> dict[str, str]:
    """The machine's Debian mirrors (main archive and security) for the lab's release."""
    return machine_mirrors((SUITE,))


def _cgroup_roots() -> list[Path]:
    """The cgroup hierarchies a lab host must be placed in (hybrid: name=systemd and unified)."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.procs").exists():  # pure cgroup v2
        return [base]
    return [p for p in (base / "systemd", base / "unified") if (p / "cgroup.procs").exists()]


# --- the lab --------------------------------------------------------------------------------------

_SUPERVISOR = """#!/bin/bash
# Keeps one lab host booted: systemd-nspawn exits 133 when the host reboots; start it again.
pidfile=$1; shift
while :; do
  "$@" &
  echo $! > "$pidfile"
  wait $!; rc=$?
  [ "$rc" -eq 133 ] || exit "$rc"
done
"""


class Lab:
    """One lab on this machine: its plan, its topology and its state directory."""

    def __init__(self, plan: SitePlan, spec: LabSpec, *, site_path: Path,
                 state_dir: Path | None = None, cache_dir: Path | None = None) -> None:
        self.plan = plan
        self.spec = spec
        self.site_path = site_path
        self.topology = build_topology(plan, spec)
        self.hosts = self.topology.hosts
        self.state_dir = Path(state_dir or os.environ.get("MSIB_LAB_DIR") or DEFAULT_STATE_DIR)
        self.cache_dir = Path(cache_dir or os.environ.get("MSIB_LAB_CACHE") or DEFAULT_CACHE_DIR)
        self.ssh_config = self.state_dir / "ssh_config"
        self.known_hosts = self.state_dir / "known_hosts"
        self.identity = self.state_dir / "id_ed25519"
        self.inventory_dir = self.state_dir / "inventory"
        self.cgroup_name = f"msib-lab-{spec.name}"

    @classmethod
    def from_files(cls, site: str | Path, *, lab_file: str | Path | None = None,
                   state_dir: Path | None = None, cache_dir: Path | None = None) -> Lab:
        """Load the site plan and the lab.yml beside it (or `lab_file`)."""
        site = Path(site)
        plan = load_site(site)
        lab_path = Path(lab_file) if lab_file else site.with_name("lab.yml")
        try:
            data = yaml.safe_load(lab_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(str(lab_path), f"cannot read the lab plan: {exc.strerror}",
                             fix="put a lab.yml beside the site plan") from None
        except yaml.YAMLError:
            raise InputError(str(lab_path), "not valid YAML", fix="fix the YAML syntax") from None
        try:
            spec = LabSpec.model_validate(data)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(p) for p in e["loc"])
            raise InputError(str(lab_path), str(e["msg"]), where=where, fix="correct the lab plan") from None
        return cls(plan, spec, site_path=site, state_dir=state_dir, cache_dir=cache_dir)

    # -- names ----------------------------------------------------------------------------------

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise InputError(name, "no such lab host",
                         fix=f"one of: {', '.join(h.name for h in self.hosts)}")

    def _host_dir(self, h: LabHost) -> Path:
        return self.state_dir / "hosts" / h.name

    def _veth(self, idx: int, ifidx: int) -> str:
        return f"{self.spec.name}{idx}e{ifidx}"

    @property
    def controller_address(self) -> str:
        return str(self.spec.controller.ip)

    @property
    def proxy_url(self) -> str:
        return f"http://{self.spec.controller.ip}:{self.spec.proxy_port}"

    # -- base image -----------------------------------------------------------------------------

    def base_dir(self) -> Path:
        mirrors = _mirrors()
        key = json.dumps([SUITE, BASE_PACKAGES, mirrors, _SUPERVISOR, 2], sort_keys=True)
        return self.cache_dir / f"base-{SUITE}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def ensure_base(self, progress: Reporter) -> Path:
        """Build the base root filesystem once (mmdebstrap) and cache it."""
        base = self.base_dir()
        if (base / "etc/os-release").exists():
            return base
        m = _mirrors()
        progress.print(f"building the base image (Debian {SUITE}, mmdebstrap) into {base} ...")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = base.with_name(base.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        sources = [
            f"deb {m['main']} {SUITE} main",
            f"deb {m['main']} {SUITE}-updates main",
            f"deb {m['security']} {SUITE}-security main",
            f"deb {m['main']} {SUITE}-backports main",
        ]
        hooks = [
            'rm -f "$1"/etc/ssh/ssh_host_*',
            # apt-daily timers grab the dpkg lock mid-run; an appliance gets updates from msib
            'for t in apt-daily.timer apt-daily-upgrade.timer; do ln -sf /dev/null "$1/etc/systemd/system/$t"; done',
            # units that cannot work in a container and would leave the system "degraded"
            'for u in systemd-networkd-wait-online.service systemd-timesyncd.service getty@tty1.service; '
            'do ln -sf /dev/null "$1/etc/systemd/system/$u"; done',
            'echo "" > "$1/etc/machine-id"',
        ]
        argv = ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                "--skip=cleanup/apt/lists", "--aptopt=Acquire::Retries \"3\"",
                *[f"--customize-hook={h}" for h in hooks], SUITE, str(tmp), *sources]
        t0 = time.monotonic()
        _run(argv, timeout=900)
        tmp.rename(base)
        progress.print(f"base image built in {time.monotonic() - t0:.0f}s")
        return base

    # -- package proxy --------------------------------------------------------------------------

    @property
    def package_proxy(self) -> PackageProxy:
        """The lab's package proxy (nginx in front of the machine's Debian mirrors; lab_mirror)."""
        m = _mirrors()
        return PackageProxy([Mirror.parse(m["main"]), Mirror.parse(m["security"])],
                            listen=str(self.spec.controller.ip), port=self.spec.proxy_port,
                            state_dir=self.state_dir / "proxy", cache_dir=self.cache_dir / "packages")

    def _start_proxy(self) -> None:
        self.package_proxy.start()

    def _stop_proxy(self) -> None:
        self.package_proxy.stop()

    # -- network --------------------------------------------------------------------------------

    def _net_up(self) -> None:
        for br in self.topology.bridges:
            _ip("link", "add", br.name, "type", "bridge")
            _sysctl(f"net.ipv6.conf.{br.name}.disable_ipv6", "1")
            if br.hub:
                # ageing 0: the bridge learns nothing and floods every frame, as a SPAN port sees it
                _ip("link", "set", br.name, "type", "bridge", "ageing_time", "0")
            if br.address:
                _ip("addr", "add", str(br.address), "dev", br.name)
            _ip("link", "set", br.name, "up")
        mgmt = self.topology.bridges[0].name
        for net in self.topology.controller_routes:
            _ip("route", "replace", net, "dev", mgmt, "src", self.controller_address)
        for idx, h in enumerate(self.hosts):
            ns = h.netns(self.spec.name)
            _ip("netns", "add", ns)
            _sysctl("net.ipv6.conf.all.disable_ipv6", "1", ns)
            _sysctl("net.ipv6.conf.default.disable_ipv6", "1", ns)
            _ip("link", "set", "lo", "up", netns=ns)
            for ifidx, iface in enumerate(h.ifaces):
                veth = self._veth(idx, ifidx)
                _ip("link", "add", veth, "type", "veth", "peer", "name", iface.name, "netns", ns)
                _sysctl(f"net.ipv6.conf.{veth}.disable_ipv6", "1")
                _ip("link", "set", veth, "master", iface.bridge, "up")
                if iface.address:
                    _ip("addr", "add", str(iface.address), "dev", iface.name, netns=ns)
                _ip("link", "set", iface.name, "up", netns=ns)
            for r in h.routes:
                args = ["route", "replace", r.dest, "dev", r.dev] + (["via", r.via] if r.via else [])
                _ip(*args, netns=ns)
            _sysctl("net.ipv4.ip_forward", "1" if h.forwarding else "0", ns)

    def _net_down(self) -> None:
        prefix = f"{self.spec.name}-"
        netns = _run(["ip", "netns", "list"], check=False).stdout.split("\n")
        for line in netns:
            ns = line.split(" ")[0]
            if ns.startswith(prefix):
                _ip("netns", "delete", ns, check=False)
                Path("/run/netns", ns).unlink(missing_ok=True)
        links = json.loads(_run(["ip", "-j", "link", "show"]).stdout or "[]")
        veth_re = re.compile(rf"^{re.escape(self.spec.name)}\d+e\d+$")
        for link in links:
            name = link.get("ifname", "")
            if name.startswith(prefix) or veth_re.match(name):
                _ip("link", "delete", name, check=False)

    # -- hosts ----------------------------------------------------------------------------------

    def _prepare_root(self, h: LabHost, base: Path, pubkey: str) -> Path:
        d = self._host_dir(h)
        upper, work, root = d / "upper", d / "work", d / "root"
        shutil.rmtree(d, ignore_errors=True)
        for p in (upper, work, root):
            p.mkdir(parents=True)
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={base},upperdir={upper},workdir={work}", str(root)])
        etc = root / "etc"
        (etc / "hostname").write_text(h.name + "\n")
        lines = ["127.0.0.1 localhost", f"127.0.1.1 {h.name}"]
        lines += [f"{x.address} {x.name}" for x in self.hosts if not x.console_only and x is not h]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        (etc / "machine-id").write_text(secrets.token_hex(16) + "\n")
        key = etc / "ssh" / "ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{h.name}", "-f", str(key)])
        (etc / "ssh" / "sshd_config.d" / "00-msib-lab.conf").write_text(
            "# lab host: one pinned host key, keys only\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n")
        if not h.console_only:  # objects are SB workstations: no management path, no proxy
            proxy = self.plan.management.package_proxy or self.proxy_url
            # bounded waits and retries: a proxy that does not answer fails a run instead of hanging it
            (etc / "apt" / "apt.conf.d" / "01msib-proxy").write_text(
                f'// the lab\'s package proxy, as a closed circuit has\nAcquire::http::Proxy "{proxy}";\n'
                f'Acquire::http::Timeout "{APT_TIMEOUT_S}";\nAcquire::Retries "3";\n')
        user = self.plan.management.ssh_user
        if user != "root":
            _run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", user])
            (etc / "sudoers.d" / "msib").write_text(f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n")
            (etc / "sudoers.d" / "msib").chmod(0o440)
        for home in {Path("/root"), Path(f"/home/{user}") if user != "root" else Path("/root")}:
            ssh_dir = root / home.relative_to("/") / ".ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            (ssh_dir / "authorized_keys").write_text(pubkey)
            (ssh_dir / "authorized_keys").chmod(0o600)
            if home != Path("/root"):
                _run(["chroot", str(root), "chown", "-R", f"{user}:{user}", str(home / ".ssh")])
        return root

    def _boot(self, h: LabHost, root: Path) -> None:
        d = self._host_dir(h)
        ns = h.netns(self.spec.name)
        supervisor = self.state_dir / "supervisor.sh"
        # stale leftovers of a crashed run would stop nspawn from starting
        shutil.rmtree(Path("/run/systemd/nspawn/propagate") / h.name, ignore_errors=True)
        argv = ["/bin/bash", str(supervisor), str(d / "nspawn.pid"),
                "systemd-nspawn", "--boot", "--register=no", "--keep-unit", f"--directory={root}",
                f"--machine={h.name}", f"--network-namespace-path=/run/netns/{ns}",
                "--capability=CAP_NET_ADMIN,CAP_IPC_LOCK,CAP_NET_RAW,CAP_SYS_NICE",
                "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only"]
        proc = self._spawn(h, argv)
        (d / "supervisor.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 10
        while not self._running(h):  # the supervisor writes nspawn's PID as it starts it
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"lab host {h.name} did not start: see {d / 'console.log'}")
            time.sleep(0.01)

    def _spawn(self, h: LabHost, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a host's process detached, in the host's own cgroup (in every hierarchy), logging to its console."""
        cgroups = []
        for r in _cgroup_roots():
            cg = r / self.cgroup_name / h.name
            cg.mkdir(parents=True, exist_ok=True)
            cgroups.append(cg / "cgroup.procs")

        def enter_cgroup() -> None:  # runs in the child before exec
            for procs in cgroups:
                procs.write_text(str(os.getpid()))

        with open(self._host_dir(h) / "console.log", "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, preexec_fn=enter_cgroup)

    def _start(self, h: LabHost, base: Path, pubkey: str) -> None:
        """Start one host: a booted Debian system, or for a vendor device msib's simulator."""
        if h.role == "device":
            self._start_device(h)
        else:
            self._boot(h, self._prepare_root(h, base, pubkey))

    def _host_key_pub(self, h: LabHost) -> Path:
        if h.role == "device":
            return self._host_dir(h) / "devsim" / "ssh_host_ed25519_key.pub"
        return self._host_dir(h) / "upper/etc/ssh/ssh_host_ed25519_key.pub"

    def device_credentials(self) -> dict[str, str]:
        """The lab devices' login (generated once; kept 0600 in the lab state, never printed)."""
        path = self.state_dir / "devices" / "credentials.env"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.write_text(f"MSIB_DEVICE_USERNAME={self.plan.management.ssh_user}\n"
                           f"MSIB_DEVICE_PASSWORD={secrets.token_urlsafe(18)}\n"
                           f"MSIB_DEVICE_ENABLE={secrets.token_urlsafe(18)}\n")
            tmp.replace(path)
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)

    def _start_device(self, h: LabHost) -> None:
        """A vendor firewall: msib's IOS simulator (msib.devsim) listening in the host's namespace."""
        d = self._host_dir(h)
        shutil.rmtree(d, ignore_errors=True)
        state = d / "devsim"
        state.mkdir(parents=True)
        # the host key is made here, so that the lab pins it before the first connection
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{h.name}", "-f",
              str(state / "ssh_host_ed25519_key")])
        creds = self.device_credentials()
        env = {**os.environ, **creds}
        argv = ["ip", "netns", "exec", h.netns(self.spec.name), sys.executable, "-m", "msib.devsim",
                "--listen", str(h.address), "--port", "22", "--state", str(state),
                "--username", creds["MSIB_DEVICE_USERNAME"], "--password-env", "MSIB_DEVICE_PASSWORD",
                "--enable-env", "MSIB_DEVICE_ENABLE", "--hostname", h.name]
        proc = self._spawn(h, argv, env)
        (d / "nspawn.pid").write_text(f"{proc.pid}\n")

    def _wait_device(self, h: LabHost, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not self._running(h):
                tail = (self._host_dir(h) / "console.log").read_text(errors="replace")[-400:]
                raise LabError(f"lab device {h.name} stopped while starting: {tail.strip()}")
            with contextlib.suppress(OSError), socket.create_connection((str(h.address), 22), timeout=1):
                return
            time.sleep(0.1)
        raise LabError(f"lab device {h.name} did not listen on SSH within {BOOT_TIMEOUT_S:.0f}s")

    def _wait_ssh(self, h: LabHost, deadline: float) -> None:
        if h.role == "device":
            self._wait_device(h, deadline)
            return
        while time.monotonic() < deadline:
            if not self._running(h):
                tail = (self._host_dir(h) / "console.log").read_text(errors="replace")[-400:]
                raise LabError(f"lab host {h.name} stopped while booting: {tail.strip()}")
            proc = subprocess.run(self.ssh_argv(h.name, ["systemctl", "is-system-running", "--wait"]),
                                  capture_output=True, text=True, timeout=BOOT_TIMEOUT_S)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                if state == "degraded":
                    failed = subprocess.run(self.ssh_argv(h.name, ["systemctl", "--failed", "--plain",
                                                                   "--no-legend"]),
                                            capture_output=True, text=True, timeout=30).stdout
                    raise LabError(f"lab host {h.name} booted degraded: {failed.strip()}")
                return
            time.sleep(0.2)
        raise LabError(f"lab host {h.name} did not answer over SSH within {BOOT_TIMEOUT_S:.0f}s")

    def _running(self, h: LabHost) -> bool:
        return _read_pid(self._host_dir(h) / "nspawn.pid") is not None

    def _stop_host(self, h: LabHost) -> int | None:
        """Ask the host to power off (SIGTERM to nspawn); returns the PID to wait for."""
        d = self._host_dir(h)
        (d / "stopping").touch() if d.exists() else None
        pid = _read_pid(d / "nspawn.pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        return pid

    def _cgroup_procs(self, host: str | None = None) -> list[int]:
        pids: list[int] = []
        for r in _cgroup_roots():
            top = r / self.cgroup_name / host if host else r / self.cgroup_name
            if top.exists():
                for procs in top.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError):
                        pids += [int(p) for p in procs.read_text().split()]
        return sorted(set(pids))

    def _remove_cgroups(self) -> None:
        for r in _cgroup_roots():
            top = r / self.cgroup_name
            if not top.exists():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()

    def _mounts(self, host: str | None = None) -> list[str]:
        hosts_dir = str(self.state_dir / "hosts" / host if host else self.state_dir / "hosts") + "/"
        out = []
        with open("/proc/self/mounts") as f:
            for line in f:
                target = line.split()[1].replace("\\040", " ")
                if target.startswith(hosts_dir):
                    out.append(target)
        return sorted(out, key=len, reverse=True)

    # -- client files ---------------------------------------------------------------------------

    def _write_client_files(self) -> None:
        keys = []
        host_blocks = []
        for h in self.hosts:
            pub = self._host_key_pub(h).read_text().split()
            keys.append(f"{h.name},{h.address} {pub[0]} {pub[1]}")
            block = [f"Host {h.name}", f"    HostName {h.address}"]
            if h.console_only:
                # objects have no management path: the lab reaches them through their namespace
                block.append(f"    ProxyCommand ip netns exec {h.netns(self.spec.name)} nc %h %p")
            host_blocks.append("\n".join(block))
        self.known_hosts.write_text("\n".join(keys) + "\n")
        self.ssh_config.write_text(
            "# written by `msib lab up`: strict host keys, pinned known_hosts, no agent, no prompts\n"
            + "\n".join(host_blocks)
            + f"\n\nHost *\n    User {self.plan.management.ssh_user}\n    IdentityFile {self.identity}\n"
            f"    IdentitiesOnly yes\n    UserKnownHostsFile {self.known_hosts}\n"
            "    StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 10\n"
            "    ServerAliveInterval 15\n    LogLevel ERROR\n")

    def _provision_siem(self, rep: Reporter) -> None:
        from msib.siemlab.host import provision

        t0 = time.monotonic()
        ep = provision(self)
        rep.print(f"  {self.spec.siem.name}: lab SIEM receiver (TLS 6514, RELP 2514) and API {ep.api_url} "
                  f"up in {time.monotonic() - t0:.1f}s")

    def _write_inventory(self) -> None:
        try:
            from msib import inventory  # type: ignore[attr-defined,unused-ignore]
        except ImportError:  # the inventory builder lands separately
            return
        build = getattr(inventory, "build_inventory", None)
        if build is None:
            return
        appendices = sorted(self.site_path.parent.glob("appendix*.xlsx"))
        ssh = inventory.SshSettings(ssh_config=self.ssh_config, known_hosts=self.known_hosts,
                                    identity_file=self.identity, user=self.plan.management.ssh_user)
        build(self.effective_site(), appendices, self.inventory_dir, ssh=ssh)

    def effective_site(self) -> Path:
        """The lab's site plan as the engines see it: the committed one plus the CA made at `up`."""
        data = yaml.safe_load(self.site_path.read_text(encoding="utf-8"))
        ca = self.state_dir / "pki" / "ca.pem"
        if ca.exists() and not data["siem"].get("ca_file"):
            data["siem"]["ca_file"] = str(ca)
        out = self.state_dir / "site.yml"
        out.write_text("# written by `msib lab up` from " + str(self.site_path) + ": do not edit\n"
                       + yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        return out

    def ssh_argv(self, name: str, command: list[str] | None = None) -> list[str]:
        """The ssh command line to reach lab host `name` (strict host keys, the lab's config)."""
        self.host(name)
        return ["ssh", "-F", str(self.ssh_config), name, *(command or [])]

    # -- up / down / status ---------------------------------------------------------------------

    def up(self, progress: Reporter | None = None) -> None:
        """Bring the whole lab up from whatever state it is in; idempotent when already up."""
        rep = progress or _Quiet()
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, mounts, systemd-nspawn)")
        if self.is_up():
            rep.print("lab is already up")
            self._write_client_files()
            self._write_inventory()
            return
        self.down(progress=_Quiet())
        t0 = time.monotonic()
        base = self.ensure_base(rep)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        (self.state_dir / "supervisor.sh").write_text(_SUPERVISOR)
        if not self.identity.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "msib-lab-controller",
                  "-f", str(self.identity)])
        pubkey = Path(str(self.identity) + ".pub").read_text()
        inotify = Path("/proc/sys/fs/inotify/max_user_instances")
        old = inotify.read_text().strip()
        if int(old) < INOTIFY_INSTANCES:
            # two dozen systemd hosts exhaust the default 128 instances
            (self.state_dir / "inotify.saved").write_text(old)
            inotify.write_text(str(INOTIFY_INSTANCES))
        try:
            rep.print(f"network: {len(self.topology.bridges)} bridges, {len(self.hosts)} namespaces")
            self._net_up()
            self._start_proxy()
            for h in self.hosts:
                self._start(h, base, pubkey)
            self._write_client_files()
            deadline = time.monotonic() + BOOT_TIMEOUT_S
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(self.hosts))) as pool:
                futures = {pool.submit(self._wait_ssh, h, deadline): h for h in self.hosts}
                for fut in concurrent.futures.as_completed(futures):
                    fut.result()
                    rep.print(f"  {futures[fut].name}: up")
            self._provision_siem(rep)
            self._write_inventory()
            (self.state_dir / "up").write_text(json.dumps({"since": time.time()}))
        except BaseException:
            self.down(progress=_Quiet())
            raise
        rep.print(f"lab up in {time.monotonic() - t0:.1f}s")

    def reset(self, names: list[str], progress: Reporter | None = None) -> None:
        """Give hosts a fresh root filesystem and boot them again (as if newly installed).

        The network stays as it is; each reset host gets a new pinned host key.
        """
        rep = progress or _Quiet()
        if not self.is_up():
            raise LabError("the lab is not up: run `msib lab up` first")
        hosts = [self.host(n) for n in names] if names else list(self.hosts)
        base = self.ensure_base(rep)
        pubkey = Path(str(self.identity) + ".pub").read_text()
        for h in hosts:
            self._teardown([h], host=h.name)
            self._start(h, base, pubkey)
        self._write_client_files()
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
            for h, fut in [(h, pool.submit(self._wait_ssh, h, deadline)) for h in hosts]:
                fut.result()
                rep.print(f"  {h.name}: reset and up")
        if any(h.role == "siem" for h in hosts):
            self._provision_siem(rep)

    def _teardown(self, hosts: list[LabHost], host: str | None = None) -> None:
        """Power hosts off (SIGTERM to nspawn), kill what is left in their cgroups, unmount them.

        `host` narrows the cgroup and mount sweep to one host (reset); None sweeps the whole lab.
        """
        pids = [p for p in (self._stop_host(h) for h in hosts) if p]
        deadline = time.monotonic() + 15
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _pid_alive(p)]
            time.sleep(0.1)
        for _ in range(3):
            left = self._cgroup_procs(host)
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        for h in hosts:
            sup = _read_pid(self._host_dir(h) / "supervisor.pid")
            if sup:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(sup, signal.SIGKILL)
        for target in self._mounts(host):
            if _run(["umount", target], check=False).returncode != 0:
                _run(["umount", "-l", target], check=False)

    def is_up(self) -> bool:
        return (self.state_dir / "up").exists() and all(self._running(h) for h in self.hosts)

    def down(self, progress: Reporter | None = None) -> None:
        """Power every host off and remove every trace of the lab; safe to run at any time."""
        rep = progress or _Quiet()
        (self.state_dir / "up").unlink(missing_ok=True)
        self._teardown(self.hosts)
        self._remove_cgroups()
        self._stop_proxy()
        self._net_down()
        shutil.rmtree(self.state_dir / "hosts", ignore_errors=True)
        saved = self.state_dir / "inotify.saved"
        if saved.exists():
            Path("/proc/sys/fs/inotify/max_user_instances").write_text(saved.read_text())
            saved.unlink()
        rep.print("lab down")

    def status(self) -> dict[str, Any]:
        """What `msib lab status --json` prints."""
        return {
            "hosts": [{"name": h.name, "role": h.role, "circuit": h.circuit, "address": str(h.address),
                       "up": self._running(h)} for h in self.hosts],
            "ssh_config": str(self.ssh_config),
            "known_hosts": str(self.known_hosts),
            "inventory": str(self.inventory_dir),
            "controller_address": self.controller_address,
        }

    def check(self) -> dict[str, str]:
        """Each host's `systemctl is-system-running`, asked over SSH with strict host keys."""

        def ask(h: LabHost) -> str:
            if h.role == "device":  # no systemd to ask: an SSH server that answers is a running device
                try:
                    with socket.create_connection((str(h.address), 22), timeout=5) as sock:
                        return "running" if sock.recv(64).startswith(b"SSH-2.0") else "no SSH banner"
                except OSError as exc:
                    return f"unreachable: {exc}"
            try:
                proc = subprocess.run(self.ssh_argv(h.name, ["systemctl", "is-system-running"]),
                                      capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                return "timeout"
            return proc.stdout.strip() or (proc.stderr.strip().splitlines() or ["unreachable"])[-1]

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(self.hosts))) as pool:
            return dict(zip([h.name for h in self.hosts], pool.map(ask, self.hosts), strict=True))

    def leftovers(self) -> list[str]:
        """Everything of this lab still present on the machine (empty after `down`)."""
        found: list[str] = []
        prefix = f"{self.spec.name}-"
        for line in _run(["ip", "netns", "list"], check=False).stdout.splitlines():
            if line.startswith(prefix):
                found.append(f"netns {line.split()[0]}")
        veth_re = re.compile(rf"^{re.escape(self.spec.name)}\d+e\d+$")
        for link in json.loads(_run(["ip", "-j", "link", "show"]).stdout or "[]"):
            name = link.get("ifname", "")
            if name.startswith(prefix) or veth_re.match(name):
                found.append(f"link {name}")
        found += [f"mount {m}" for m in self._mounts()]
        found += [f"process {p}" for p in self._cgroup_procs()]
        found += [f"cgroup {r / self.cgroup_name}" for r in _cgroup_roots() if (r / self.cgroup_name).exists()]
        if self.package_proxy.pid():
            found.append("process nginx (the package proxy)")
        return found


def write_synthetic_lab(directory: Path, *, name: str, collectors: int, octet: int = 200,
                        proxy_port: int = 3143, devices: int = 0) -> Path:
    """Write a small site plan + lab.yml of `collectors` collectors, one object host and a SIEM.

    For tests and benchmarks that need a lab of their own beside the shared one: it lives in
    198.19.<octet>.0/21 (the shared lab keeps below 198.19.128.0), under its own `name` and proxy
    port, so both can be up at once. The lab has `collectors + devices + 2` hosts (`devices` vendor
    firewalls of platform cisco_ios, stood in for by msib.devsim). Returns the site.yml path.
    """
    if not 128 <= octet <= 248 or octet % 8:
        raise ValueError("octet must be a multiple of 8 in 128..248")
    if not 1 <= collectors <= 200:
        raise ValueError("collectors must be 1..200")
    p = f"198.19.{octet}"
    lan, mgmt, ctl, up = f"198.19.{octet}", f"198.19.{octet + 1}", f"198.19.{octet + 2}", f"198.19.{octet + 3}"
    site = {
        "state_body": f"Synthetic lab {name}", "code": name,
        "siem": {"syslog": {"host": f"{up}.10", "port": 6514, "transport": "tls"}},
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
