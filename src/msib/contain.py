"""Containment through the sources: block an address on every firewall of its circuit(s), with a TTL.

``msib contain`` puts an address (or network) on the firewalls of the circuit(s) it lives in:

* nftables firewalls (group ``firewall``): an element with a timeout in the named set
  ``inet msib msib_blocked`` (the ruleset's containment rules drop what matches, with counters);
  the kernel removes it when the timeout passes;
* vendor firewalls (group ``netdev``): the deny entries of the ``MSIB-CONTAIN`` ACL through
  :meth:`msib.netdev.NetDevice.block`; IOS has no per-entry expiry, so msib keeps the expiry in
  the audit log and removes expired entries itself on every ``msib contain`` run (a *sweep*).

Before anything changes the request is checked: the management path (``msib_controllers``), the
collectors, the SIEM (syslog and API hosts), every appliance address (management, LAN, uplink),
loopback/unspecified/multicast, and any network containing one of those are refused (exit 2).
Every action appends one JSON line to the audit log (who, when, what, why, until when, the
outcome per firewall), fsynced, under an exclusive lock that also serialises concurrent runs.

Example:
    >>> parse_ttl("1h30m")
    5400
    >>> str(parse_target("198.18.16.100"))
    '198.18.16.100/32'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from msib.errors import InputError, MsibError

IPv4Net = ipaddress.IPv4Network

#: the nftables set the firewall role declares (roles/firewall/templates/ruleset.nft.j2)
NFT_TABLE = ("inet", "msib")
NFT_SET = "msib_blocked"
#: longest TTL accepted (a block is an emergency measure, not a policy)
MAX_TTL_S = 30 * 86400
DEFAULT_TTL = "1h"
#: a block already present is left alone when it expires at most this share of the TTL earlier
#: than requested (capped at GRACE_MAX_S): running the same command twice changes nothing
GRACE_SHARE = 0.1
GRACE_MAX_S = 300
#: ... and at least this much (nft reports whole seconds, and a run takes a moment)
GRACE_MIN_S = 2
SSH_TIMEOUT_S = 60.0
ENV_AUDIT = "MSIB_CONTAIN_AUDIT"

Platform = Literal["nftables", "cisco_ios"]
Action = Literal["block", "release", "expire", "refused"]
#: what happened on one firewall
Result = Literal["added", "extended", "present", "removed", "absent", "would-add", "would-extend",
                 "would-remove", "conflict", "error"]
CHANGED: frozenset[str] = frozenset({"added", "extended", "removed"})
FAILED: frozenset[str] = frozenset({"conflict", "error"})


class ContainRefused(InputError):
    """The address may not be blocked (it would cut the management path, the logs or an appliance)."""


class ContainError(MsibError):
    """A firewall could not be read or changed."""


# --- parsing the request (pure) -------------------------------------------------------------------

_TTL_RE = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """A TTL such as ``90s``, ``30m``, ``1h``, ``1h30m``, ``2d`` (or plain seconds) in seconds.

    Raises:
        InputError: not a duration, zero, or longer than :data:`MAX_TTL_S`.
    """
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    elif value and _TTL_RE.sub("", value) == "":
        seconds = sum(int(n) * _UNIT_S[u] for n, u in _TTL_RE.findall(value))
    else:
        raise InputError("--ttl", f"{text!r} is not a duration", fix="give e.g. 90s, 30m, 1h, 1h30m, 2d")
    if seconds <= 0:
        raise InputError("--ttl", "must be longer than 0 s")
    if seconds > MAX_TTL_S:
        raise InputError("--ttl", f"{text} is longer than {MAX_TTL_S // 86400} days",
                         fix="containment is an emergency measure; make it permanent in the site plan instead")
    return seconds


def parse_target(text: str, option: str = "--ip") -> IPv4Net:
    """The IPv4 address or network to block (``A.B.C.D`` or ``A.B.C.D/NN`` without host bits).

    Raises:
        InputError: not an IPv4 address/network, IPv6 (the set is ``ipv4_addr``), or host bits set.
    """
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise InputError(option, f"{text!r} is not an address or network ({exc})",
                         fix="give A.B.C.D or A.B.C.D/NN with no host bits") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise InputError(option, f"{text} is IPv6; containment sets and ACLs are IPv4 only")
    return net


@dataclass(frozen=True)
class Protected:
    """A network msib never blocks, and why."""

    network: IPv4Net
    what: str


#: always refused, whatever the inventory says
SPECIAL: tuple[Protected, ...] = (
    Protected(IPv4Net("0.0.0.0/32"), "the unspecified address"),
    Protected(IPv4Net("127.0.0.0/8"), "loopback"),
    Protected(IPv4Net("224.0.0.0/4"), "multicast"),
    Protected(IPv4Net("255.255.255.255/32"), "the broadcast address"),
)


def refusal(target: IPv4Net, protected: Sequence[Protected]) -> str | None:
    """Why blocking `target` is refused (it overlaps a protected network), or None when allowed.

    Overlap covers both ways: the target contains a protected address (``198.18.0.0/24`` holds
    the controller) or lies inside a protected network (one address of a controllers' /24).

    >>> refusal(IPv4Net("198.18.0.0/24"), [Protected(IPv4Net("198.18.0.1/32"), "the controller")])
    '198.18.0.0/24 contains 198.18.0.1/32 (the controller)'
    """
    for p in (*SPECIAL, *protected):
        if not target.overlaps(p.network):
            continue
        if target == p.network:
            return f"{target} is {p.what}"
        if p.network.subnet_of(target):
            return f"{target} contains {p.network} ({p.what})"
        return f"{target} lies in {p.network} ({p.what})"
    return None


def grace_s(ttl_s: int) -> int:
    """How much earlier than requested an existing block may expire and still count as present."""
    return min(GRACE_MAX_S, max(GRACE_MIN_S, int(ttl_s * GRACE_SHARE)))


# --- the inventory, as containment sees it ----------------------------------------------------------


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
    ssh: Mapping[str, Any] = field(repr=False)

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


def load_inventory(inventory_dir: Path) -> ContainInventory:
    """Read the circuits, firewalls and protected addresses of an inventory directory's hosts.yml.

    Raises:
        InputError: no hosts.yml, not an inventory msib wrote, or an unusable address in it.
    """
    path = inventory_dir / "hosts.yml"
    file = str(path)
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(file, f"cannot read the inventory: {exc.strerror}",
                         fix="pass the directory `msib inventory build` wrote") from None
    except yaml.YAMLError:
        raise InputError(file, "not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("all"), dict):
        raise InputError(file, "no `all` group", fix="write it with `msib inventory build`")
    vars_: Mapping[str, Any] = data["all"].get("vars") or {}
    groups: Mapping[str, Any] = data["all"].get("children") or {}
    protected: list[Protected] = []
    for net in _ip_networks(vars_.get("msib_controllers") or [], "all.vars.msib_controllers", file):
        protected.append(Protected(net, "the management path (msib_controllers)"))
    siem = vars_.get("msib_siem") or {}
    syslog_host = (siem.get("syslog") or {}).get("host")
    if syslog_host:
        for net in _resolve(str(syslog_host), "all.vars.msib_siem.syslog.host", file):
            protected.append(Protected(net, "the SIEM's syslog receiver"))
    api_url = (siem.get("api") or {}).get("url")
    if api_url:
        api_host = urlsplit(str(api_url)).hostname
        if api_host:
            for net in _resolve(api_host, "all.vars.msib_siem.api.url", file):
                protected.append(Protected(net, "the SIEM's API"))
    circuits: dict[str, tuple[IPv4Net, ...]] = {}
    for cname, circuit in (vars_.get("msib_circuits") or {}).items():
        circuit = circuit or {}
        where = f"all.vars.msib_circuits.{cname}"
        circuits[str(cname)] = tuple(_ip_networks(circuit.get("networks") or [], f"{where}.networks", file))
        for i, col in enumerate(circuit.get("collectors") or []):
            for key in ("address", "service_address"):
                for net in _ip_networks([(col or {}).get(key)], f"{where}.collectors[{i}].{key}", file):
                    protected.append(Protected(net, f"collector {(col or {}).get('name', '?')}"))
        for i, app in enumerate(circuit.get("appliances") or []):
            for key in ("address", "service_address"):
                for net in _ip_networks([(app or {}).get(key)], f"{where}.appliances[{i}].{key}", file):
                    protected.append(Protected(net, f"appliance {(app or {}).get('name', '?')}"))
    firewalls: list[Firewall] = []
    for gname, group in groups.items():
        for name, hv in ((group or {}).get("hosts") or {}).items():
            hv = hv or {}
            app = hv.get("msib_appliance") or {}
            where = f"all.children.{gname}.hosts.{name}"
            for key in ("address", "lan_address", "uplink_address"):
                for net in _ip_networks([app.get(key)], f"{where}.msib_appliance.{key}", file):
                    protected.append(Protected(net, f"appliance {name} ({key.replace('_', ' ')})"))
            for net in _ip_networks([hv.get("ansible_host")], f"{where}.ansible_host", file):
                protected.append(Protected(net, f"appliance {name} (management)"))
            for net in _ip_networks(hv.get("firewall_siem_addresses") or [], f"{where}.firewall_siem_addresses",
                                    file):
                protected.append(Protected(net, "the SIEM's syslog receiver"))
            if gname not in ("firewall", "netdev"):
                continue
            platform = "nftables" if gname == "firewall" else str(hv.get("msib_device_type") or app.get("platform"))
            circuit_name = hv.get("msib_circuit")
            address = hv.get("ansible_host") or app.get("address")
            if not circuit_name or not address:
                raise InputError(file, "a firewall needs msib_circuit and ansible_host", where=where)
            try:
                port = int(hv.get("ansible_port") or app.get("port") or 22)
            except (TypeError, ValueError):
                raise InputError(file, "port is not a number", where=f"{where}.ansible_port") from None
            firewalls.append(Firewall(str(name), str(circuit_name), platform, str(address), port))
    ssh = dict(vars_.get("msib_ssh") or {})
    ssh.setdefault("user", vars_.get("ansible_user"))
    ssh.setdefault("key_file", vars_.get("ansible_ssh_private_key_file"))
    ssh["common_args"] = vars_.get("ansible_ssh_common_args") or ""
    return ContainInventory(inventory_dir, circuits, tuple(firewalls), tuple(protected), ssh)


# --- nftables: facts and the one operation (pure) -----------------------------------------------------


@dataclass(frozen=True)
class NftElement:
    """One element of the containment set: a network and the seconds until it expires (None: never)."""

    network: IPv4Net
    expires_s: int | None


def parse_nft_set(text: str) -> tuple[NftElement, ...]:
    """The elements of ``nft -j list set inet msib msib_blocked`` output.

    Raises:
        ContainError: not that output, or the set is missing.

    >>> parse_nft_set('{"nftables": [{"set": {"name": "msib_blocked", "elem": '
    ...               '[{"elem": {"val": "198.18.16.100", "timeout": 60, "expires": 59}}]}}]}')
    (NftElement(network=IPv4Network('198.18.16.100/32'), expires_s=59),)
    """
    try:
        data = json.loads(text)
        sets = [o["set"] for o in data["nftables"] if "set" in o]
    except (ValueError, KeyError, TypeError):
        raise ContainError(f"cannot read the set {NFT_SET}: not nft JSON output") from None
    if not sets:
        raise ContainError(f"no set {NFT_SET} on the firewall (deploy the firewall role first)")
    out: list[NftElement] = []
    for item in sets[0].get("elem") or []:
        elem = item.get("elem", item) if isinstance(item, dict) else item
        val = elem.get("val") if isinstance(elem, dict) else elem
        expires = elem.get("expires") if isinstance(elem, dict) else None
        for net in _nft_networks(val):
            out.append(NftElement(net, int(expires) if expires is not None else None))
    return tuple(out)


def _nft_networks(val: Any) -> list[IPv4Net]:
    if isinstance(val, str):
        return [IPv4Net(val)]
    if isinstance(val, dict) and "prefix" in val:
        return [IPv4Net(f"{val['prefix']['addr']}/{val['prefix']['len']}")]
    if isinstance(val, dict) and "range" in val:
        lo, hi = (ipaddress.IPv4Address(a) for a in val["range"])
        return list(ipaddress.summarize_address_range(lo, hi))
    raise ContainError(f"unexpected element in set {NFT_SET}: {val!r}")


def _nft_elem(net: IPv4Net) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


@dataclass(frozen=True)
class NftPlan:
    """What the containment operation does on one nftables firewall: a script, or why nothing."""

    result: Result
    script: str = ""
    detail: str = ""
    expires_s: int | None = None


def nft_block(current: Sequence[NftElement], target: IPv4Net, ttl_s: int) -> NftPlan:
    """Block `target` for `ttl_s` seconds given the set's `current` elements (one transaction).

    Present with an expiry no earlier than requested (less :func:`grace_s`) → ``present`` and no
    script; present but expiring sooner → delete + add in one ``nft -f`` transaction (a kernel
    that cannot update an element's timeout still gets the new one); absent → ``add``. Another
    element overlapping `target` → ``conflict`` (interval sets refuse overlaps; release it first).

    >>> nft_block([], IPv4Net("198.18.16.100/32"), 60).script
    'add element inet msib msib_blocked { 198.18.16.100 timeout 60s }\\n'
    """
    t_set = f"{' '.join(NFT_TABLE)} {NFT_SET}"
    add = f"add element {t_set} {{ {_nft_elem(target)} timeout {ttl_s}s }}\n"
    for e in current:
        if e.network == target:
            if e.expires_s is None or e.expires_s >= ttl_s - grace_s(ttl_s):
                return NftPlan("present", detail="already blocked", expires_s=e.expires_s)
            return NftPlan("extended", f"delete element {t_set} {{ {_nft_elem(target)} }}\n" + add,
                           detail=f"expiry extended (was {e.expires_s}s)", expires_s=ttl_s)
        if e.network.overlaps(target):
            if target.subnet_of(e.network) and (e.expires_s is None or e.expires_s >= ttl_s - grace_s(ttl_s)):
                return NftPlan("present", detail=f"covered by the block of {e.network}", expires_s=e.expires_s)
            return NftPlan("conflict", detail=f"overlaps the block of {e.network} (expires in {e.expires_s}s); "
                                              f"release that first")
    return NftPlan("added", add, expires_s=ttl_s)


def nft_release(current: Sequence[NftElement], target: IPv4Net) -> NftPlan:
    """Remove `target`'s element; ``absent`` when there is none, ``conflict`` when a larger block holds it."""
    t_set = f"{' '.join(NFT_TABLE)} {NFT_SET}"
    for e in current:
        if e.network == target:
            return NftPlan("removed", f"delete element {t_set} {{ {_nft_elem(target)} }}\n")
    for e in current:
        if e.network.overlaps(target):
            return NftPlan("conflict", detail=f"inside the block of {e.network}; release that instead")
    return NftPlan("absent", detail="not blocked")


# --- SSH to the nftables firewalls (the engines' settings, strict host keys) ----------------------------


class NftRemote:
    """Runs ``nft`` as root on nftables firewalls over SSH: the inventory's ssh settings, strict host keys.

    One multiplexed master per firewall for the run (closed by :meth:`close`). A host whose
    effective ssh settings do not check host keys strictly is refused before any connection.
    """

    def __init__(self, inv: ContainInventory, firewalls: Sequence[Firewall], timeout: float = SSH_TIMEOUT_S) -> None:
        self.timeout = timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="msib-contain-"))
        control = self.workdir / "cm"
        control.mkdir(mode=0o700)
        self.config = self.workdir / "ssh_config"
        self.user = str(inv.ssh.get("user") or "root")
        self.firewalls = list(firewalls)
        lines = ["# written by msib contain for one run: strict host keys, one master per firewall"]
        for f in firewalls:
            lines += [f"Host {f.name}", f"    HostName {f.address}", f"    Port {f.port}"]
        lines += ["Host *", "    StrictHostKeyChecking yes", "    BatchMode yes", "    ConnectTimeout 10",
                  "    ControlMaster auto", f"    ControlPath {control}/%C", "    ControlPersist 30s",
                  f"    User {self.user}"]
        key = inv.ssh.get("key_file")
        if key:
            lines += [f"    IdentityFile {key}", "    IdentitiesOnly yes"]
        known = inv.ssh.get("known_hosts_file") or _known_hosts_in_args(str(inv.ssh.get("common_args") or ""))
        if known:
            lines.append(f"    UserKnownHostsFile {known}")
        config_file = inv.ssh.get("config_file") or _config_in_args(str(inv.ssh.get("common_args") or ""))
        if config_file:
            lines.append(f"Include {config_file}")
        self.config.write_text("\n".join(lines) + "\n")

    def check_strict(self, fw: Firewall) -> None:
        """Raise ContainError unless ssh would check `fw`'s host key strictly against a pinned file."""
        proc = subprocess.run(["ssh", "-G", "-F", str(self.config), fw.name], capture_output=True, text=True,
                              timeout=30, check=False)
        conf = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
        if conf.get("stricthostkeychecking") not in ("true", "yes"):
            raise ContainError(f"{fw.name}: StrictHostKeyChecking is {conf.get('stricthostkeychecking')!r}, "
                               f"not yes: refusing to connect")

    def run(self, fw: Firewall, command: str, stdin: str = "") -> str:
        """Run `command` as root on `fw`; its stdout. Raises ContainError naming the firewall."""
        remote = command if self.user == "root" else "sudo -n " + command
        argv = ["ssh", "-F", str(self.config), fw.name, remote]
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=self.timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ContainError(f"{fw.name}: no answer within {self.timeout:.0f} s") from None
        if proc.returncode != 0:
            err = " / ".join(proc.stderr.strip().splitlines()[-2:]) or f"exit {proc.returncode}"
            raise ContainError(f"{fw.name}: `{command}` failed: {err}")
        return proc.stdout

    def elements(self, fw: Firewall) -> tuple[NftElement, ...]:
        """The containment set's elements on `fw` (the fact)."""
        try:
            return parse_nft_set(self.run(fw, f"nft -j list set {' '.join(NFT_TABLE)} {NFT_SET}"))
        except ContainError as exc:
            raise ContainError(f"{fw.name}: {exc}" if not str(exc).startswith(fw.name) else str(exc)) from None

    def apply(self, fw: Firewall, script: str) -> None:
        """Apply `script` atomically (``nft -f -``: all of it or nothing)."""
        self.run(fw, "nft -f -", stdin=script)

    def close(self) -> None:
        for f in self.firewalls:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["ssh", "-F", str(self.config), "-O", "exit", f.name], capture_output=True,
                               timeout=10, stdin=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _ssh_words(args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError:
        return []


def _known_hosts_in_args(args: str) -> str | None:
    words = _ssh_words(args)
    for i, w in enumerate(words):
        for cand in (w[2:] if w.startswith("-o") else None, words[i + 1] if w == "-o" and i + 1 < len(words) else None):
            if cand and cand.lower().startswith("userknownhostsfile="):
                return cand.split("=", 1)[1]
    return None


def _config_in_args(args: str) -> str | None:
    words = _ssh_words(args)
    for i, w in enumerate(words):
        if w == "-F" and i + 1 < len(words):
            return words[i + 1]
    return None


# --- the audit log ------------------------------------------------------------------------------------


def default_audit_path(inventory_dir: Path) -> Path:
    """``$MSIB_CONTAIN_AUDIT``, else ``<inventory dir>.contain-audit.jsonl`` beside the inventory directory.

    (Not inside it: ``msib inventory build`` replaces the inventory directory as a whole.)
    """
    env = os.environ.get(ENV_AUDIT)
    if env:
        return Path(env)
    resolved = inventory_dir.resolve()
    return resolved.parent / f"{resolved.name}.contain-audit.jsonl"


def who() -> dict[str, Any]:
    """The OS user running msib, and the user behind sudo (if any)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "uid": os.getuid(), "sudo_user": os.environ.get("SUDO_USER") or None,
            "host": socket.gethostname(), "pid": os.getpid()}


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(round(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _from_iso(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


class AuditLog:
    """Append-only JSON lines, one per action; ``with log.locked():`` serialises msib contain runs.

    Each record is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced (the
    directory too when the file is created), so a record is either whole or absent.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock (a ``.lock`` file beside the log) for a whole run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, record: Mapping[str, Any]) -> None:
        line = (json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode()
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise ContainError(f"{self.path}: short write of an audit record ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def records(self) -> list[dict[str, Any]]:
        """Every whole record (a torn last line, if any, is skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out


@dataclass(frozen=True)
class Held:
    """A block msib holds on one firewall according to the audit log."""

    firewall: str
    network: IPv4Net
    expires: float | None
    reason: str | None


def held_blocks(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, IPv4Net], Held]:
    """Replay the audit log: the blocks msib put in place and has not released or swept.

    A block record whose firewall result is added/extended sets (firewall, network) → expiry; a
    release or expire record whose result is removed/absent clears it. ``present`` keeps what was
    recorded before (an entry someone else made is not adopted).
    """
    held: dict[tuple[str, IPv4Net], Held] = {}
    for rec in records:
        try:
            net = IPv4Net(rec["address"])
        except (KeyError, ValueError):
            continue
        for fw in rec.get("firewalls") or []:
            key = (str(fw.get("name")), net)
            result = fw.get("result")
            if rec.get("action") == "block" and result in ("added", "extended"):
                held[key] = Held(key[0], net, _from_iso(fw.get("expires")), rec.get("reason"))
            elif rec.get("action") in ("release", "expire") and result in ("removed", "absent"):
                held.pop(key, None)
    return held


# --- runs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FirewallOutcome:
    """What happened (or would happen) on one firewall."""

    name: str
    platform: str
    result: Result
    detail: str = ""
    expires: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "platform": self.platform, "result": self.result, "detail": self.detail,
                "expires": _iso(self.expires)}


@dataclass(frozen=True)
class ContainRun:
    """One msib contain action: the request, the outcome per firewall, and what was swept first."""

    action: Action
    address: IPv4Net
    circuits: tuple[str, ...]
    firewalls: tuple[FirewallOutcome, ...]
    check: bool = False
    ttl_s: int | None = None
    expires: float | None = None
    reason: str | None = None
    swept: tuple[FirewallOutcome, ...] = ()
    audit: Path | None = None
    at: float = field(default_factory=time.time)

    @property
    def changed(self) -> bool:
        return any(f.result in CHANGED for f in self.firewalls)

    @property
    def ok(self) -> bool:
        return not any(f.result in FAILED for f in (*self.firewalls, *self.swept))

    @property
    def outcome(self) -> str:
        if self.action == "refused":
            return "refused"
        if not self.ok:
            return "partial" if self.changed else "failed"
        if self.check:
            return "check"
        return "changed" if self.changed else "unchanged"

    def exit_code(self) -> int:
        return 2 if self.action == "refused" else (0 if self.ok else 1)

    def record(self) -> dict[str, Any]:
        """The audit record of this action."""
        return {"ts": _iso(self.at), "action": self.action, **who(), "address": str(self.address),
                "circuits": list(self.circuits), "ttl_s": self.ttl_s, "expires": _iso(self.expires),
                "reason": self.reason, "outcome": self.outcome, "check": self.check,
                "firewalls": [f.to_json() for f in self.firewalls]}

    def to_json(self) -> dict[str, Any]:
        return {**self.record(), "exit_code": self.exit_code(), "swept": [f.to_json() for f in self.swept],
                "audit_log": str(self.audit) if self.audit else None}


@dataclass(frozen=True)
class Options:
    """Connection settings of a run (credentials for vendor devices are resolved only when needed)."""

    audit_log: Path | None = None
    backup_dir: Path | None = None
    known_hosts: Path | None = None
    vault_file: Path | None = None
    vault_password_file: Path | None = None
    timeout: float = 20.0
    env: Mapping[str, str] | None = None


class _Runner:
    """Reaches the firewalls of one run: SSH for nftables, netmiko for vendor devices."""

    def __init__(self, inv: ContainInventory, firewalls: Sequence[Firewall], opts: Options) -> None:
        from msib import netdev

        self.inv = inv
        self.opts = opts
        vendor = [f for f in firewalls if not f.is_nftables]
        self.creds: Any = None
        self.targets: dict[str, Any] = {}
        if vendor:
            nd = netdev.load_inventory(inv.path)
            self.targets = {d.name: d for d in nd.devices}
            self.known_hosts = opts.known_hosts or nd.known_hosts
            self.creds = netdev.DeviceCredentials.resolve(opts.vault_file, opts.vault_password_file, env=opts.env)
        nft = [f for f in firewalls if f.is_nftables]
        self.nft = NftRemote(inv, nft, timeout=max(opts.timeout, 10.0)) if nft else None
        if self.nft is not None:
            for f in nft:
                self.nft.check_strict(f)

    def device(self, fw: Firewall) -> Any:
        from msib.device_cli import default_backup_dir
        from msib.netdev import NetDevice

        return NetDevice(self.targets[fw.name], self.creds, known_hosts=self.known_hosts,
                         backup_dir=self.opts.backup_dir or default_backup_dir(), timeout=self.opts.timeout)

    def close(self) -> None:
        if self.nft is not None:
            self.nft.close()


def _validate(inventory: Path) -> ContainInventory:
    inv = load_inventory(inventory)
    if not inv.firewalls:
        raise InputError(str(inventory / "hosts.yml"), "no firewalls (groups firewall, netdev) in the inventory")
    return inv


def _block_one(r: _Runner, fw: Firewall, target: IPv4Net, ttl_s: int, now: float, check: bool,
               held: Mapping[tuple[str, IPv4Net], Held]) -> FirewallOutcome:
    try:
        if fw.is_nftables:
            assert r.nft is not None
            plan = nft_block(r.nft.elements(fw), target, ttl_s)
            expires = now + plan.expires_s if plan.expires_s is not None else None
            if plan.result in ("added", "extended") and check:
                return FirewallOutcome(fw.name, fw.platform, "would-add" if plan.result == "added" else "would-extend",
                                       plan.script.strip().replace("\n", "; "), expires)
            if plan.script:
                r.nft.apply(fw, plan.script)
                # read back: the element is there, with (about) the timeout just set
                got = [e for e in r.nft.elements(fw) if e.network == target]
                if not got or (got[0].expires_s is not None and got[0].expires_s < ttl_s - grace_s(ttl_s) - 5):
                    raise ContainError(f"{fw.name}: {target} is not in {NFT_SET} with its timeout after the change")
            return FirewallOutcome(fw.name, fw.platform, plan.result, plan.detail, expires)
        prior = held.get((fw.name, target))
        with r.device(fw) as dev:
            res = dev.block(target, dry_run=check)
        if res.changed:
            return FirewallOutcome(fw.name, fw.platform, "would-add" if check else "added", "; ".join(
                x.strip() for x in res.lines), now + ttl_s)
        if prior is None:
            return FirewallOutcome(fw.name, fw.platform, "present",
                                   "already in the ACL, not by msib: no expiry is kept for it", None)
        if prior.expires is not None and prior.expires < now + ttl_s - grace_s(ttl_s):
            # the ACL entry stays; only msib's record of when to remove it moves
            return FirewallOutcome(fw.name, fw.platform, "would-extend" if check else "extended",
                                   f"expiry extended (was {_iso(prior.expires)})", now + ttl_s)
        return FirewallOutcome(fw.name, fw.platform, "present", "already blocked", prior.expires)
    except MsibError as exc:
        return FirewallOutcome(fw.name, fw.platform, "error", str(exc))


def _release_one(r: _Runner, fw: Firewall, target: IPv4Net, check: bool) -> FirewallOutcome:
    try:
        if fw.is_nftables:
            assert r.nft is not None
            plan = nft_release(r.nft.elements(fw), target)
            if plan.result == "removed" and check:
                return FirewallOutcome(fw.name, fw.platform, "would-remove", plan.script.strip())
            if plan.script:
                r.nft.apply(fw, plan.script)
                if nft_release(r.nft.elements(fw), target).result != "absent":
                    raise ContainError(f"{fw.name}: {target} is still in {NFT_SET} after the change")
            return FirewallOutcome(fw.name, fw.platform, plan.result, plan.detail)
        with r.device(fw) as dev:
            res = dev.unblock(target, dry_run=check)
        if res.changed:
            return FirewallOutcome(fw.name, fw.platform, "would-remove" if check else "removed",
                                   "; ".join(x.strip() for x in res.lines))
        return FirewallOutcome(fw.name, fw.platform, "absent", "not blocked")
    except MsibError as exc:
        return FirewallOutcome(fw.name, fw.platform, "error", str(exc))


def _due(inv: ContainInventory, log: AuditLog, now: float) -> list[Held]:
    """Vendor blocks msib holds whose expiry (kept in the audit log) has passed."""
    vendors = {f.name for f in inv.firewalls if not f.is_nftables}
    return [h for h in held_blocks(log.records()).values()
            if h.firewall in vendors and h.expires is not None and h.expires <= now]


def _with_due(inv: ContainInventory, firewalls: Sequence[Firewall], due: Sequence[Held]) -> list[Firewall]:
    """`firewalls` plus the vendor firewalls that have an expired block to sweep."""
    names = {h.firewall for h in due}
    chosen = {f.name: f for f in firewalls}
    chosen.update({f.name: f for f in inv.firewalls if f.name in names})
    return list(chosen.values())


def _sweep(inv: ContainInventory, log: AuditLog, r: _Runner, due: Sequence[Held], now: float,
           check: bool) -> tuple[FirewallOutcome, ...]:
    """Remove vendor ACL entries whose expiry has passed; one ``expire`` record each (none in check mode)."""
    by_name = {f.name: f for f in inv.firewalls}
    out: list[FirewallOutcome] = []
    for h in due:
        fw = by_name[h.firewall]
        o = _release_one(r, fw, h.network, check)
        o = replace(o, detail=f"expired {_iso(h.expires)}" + (f": {o.detail}" if o.detail else ""))
        out.append(o)
        if not check:
            log.append(ContainRun("expire", h.network, (fw.circuit,), (o,), reason=h.reason, at=now,
                                  expires=h.expires).record())
    return tuple(out)


def _refused_run(inv: ContainInventory, log: AuditLog, target: IPv4Net, circuits: tuple[str, ...], why: str,
                 ttl_s: int, reason: str | None, check: bool) -> ContainRefused:
    run = ContainRun("refused", target, circuits, (), check=check, ttl_s=ttl_s, reason=reason)
    rec = run.record()
    rec["refusal"] = why
    if not check:
        with log.locked():
            log.append(rec)
    return ContainRefused("--ip", f"refused: {why}; nothing was changed",
                          fix="containment never cuts the management path, the log path or an appliance")


def contain(inventory: Path, address: str, *, ttl: str = DEFAULT_TTL, circuits: Sequence[str] = (),
            reason: str | None = None, check: bool = False, opts: Options = Options()) -> ContainRun:
    """Block `address` on every firewall of its circuit(s) for `ttl`.

    Args:
        inventory: the inventory directory (hosts.yml).
        address: ``A.B.C.D`` or ``A.B.C.D/NN``.
        ttl: how long (``1h``, ``30m``...); nftables expires it itself, vendor entries are swept by msib.
        circuits: restrict to these circuits (default: the circuits whose networks hold the address, else all).
        reason: why (goes to the audit record).
        check: read the firewalls and say what would change; change nothing, write no record.
        opts: audit log path, device credentials, timeouts.

    Returns:
        The run, with one outcome per firewall (exit code 0, or 1 when a firewall failed).

    Raises:
        InputError: bad address, TTL or circuit, or no device credentials (exit 2, nothing changed).
        ContainRefused: the address is protected (exit 2, nothing changed, a ``refused`` record written).

    Example:
        >>> contain(Path("inv"), "198.18.16.100", ttl="30m", reason="beaconing")  # doctest: +SKIP
    """
    target = parse_target(address)
    ttl_s = parse_ttl(ttl)
    reason = reason.strip() if reason and reason.strip() else None
    inv = _validate(inventory)
    chosen = inv.select_circuits(target, circuits)
    log = AuditLog(opts.audit_log or default_audit_path(inventory))
    why = refusal(target, inv.protected)
    if why is not None:
        raise _refused_run(inv, log, target, chosen, why, ttl_s, reason, check)
    firewalls = inv.firewalls_of(chosen)
    if not firewalls:
        raise InputError(str(inventory / "hosts.yml"), f"no firewalls in circuit(s) {', '.join(chosen)}")
    with log.locked():
        now = time.time()
        due = _due(inv, log, now)
        runner = _Runner(inv, _with_due(inv, firewalls, due), opts)
        try:
            swept = _sweep(inv, log, runner, due, now, check)
            held = held_blocks(log.records())
            outcomes = tuple(_block_one(runner, f, target, ttl_s, now, check, held) for f in firewalls)
        finally:
            runner.close()
        run = ContainRun("block", target, chosen, outcomes, check=check, ttl_s=ttl_s, expires=now + ttl_s,
                         reason=reason, swept=swept, audit=log.path, at=now)
        if not check:
            log.append(run.record())
    return run


def release(inventory: Path, address: str, *, circuits: Sequence[str] = (), reason: str | None = None,
            check: bool = False, opts: Options = Options()) -> ContainRun:
    """Remove the block of `address` from every firewall that has it (default: every firewall).

    Raises:
        InputError: bad address or circuit, no device credentials (exit 2, nothing changed).
    """
    target = parse_target(address, "--release")
    reason = reason.strip() if reason and reason.strip() else None
    inv = _validate(inventory)
    chosen = inv.select_circuits(target, circuits) if circuits else tuple(inv.circuits)
    firewalls = inv.firewalls_of(chosen)
    log = AuditLog(opts.audit_log or default_audit_path(inventory))
    with log.locked():
        now = time.time()
        due = _due(inv, log, now)
        runner = _Runner(inv, _with_due(inv, firewalls, due), opts)
        try:
            swept = _sweep(inv, log, runner, due, now, check)
            outcomes = tuple(_release_one(runner, f, target, check) for f in firewalls)
        finally:
            runner.close()
        run = ContainRun("release", target, chosen, outcomes, check=check, reason=reason, swept=swept,
                         audit=log.path, at=now)
        if not check:
            log.append(run.record())
    return run


@dataclass(frozen=True)
class Block:
    """An active block as ``--list`` shows it."""

    address: IPv4Net
    firewalls: tuple[str, ...]
    expires: float | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"address": str(self.address), "firewalls": list(self.firewalls), "expires": _iso(self.expires),
                "reason": self.reason}


@dataclass(frozen=True)
class BlockList:
    """Active blocks read from the firewalls themselves, and the firewalls that could not be read."""

    blocks: tuple[Block, ...]
    errors: tuple[FirewallOutcome, ...] = ()
    swept: tuple[FirewallOutcome, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"blocks": [b.to_json() for b in self.blocks], "errors": [e.to_json() for e in self.errors],
                "swept": [s.to_json() for s in self.swept]}

    def exit_code(self) -> int:
        return 1 if self.errors or any(s.result in FAILED for s in self.swept) else 0


def list_blocks(inventory: Path, *, opts: Options = Options()) -> BlockList:
    """Sweep expired vendor entries, then read every firewall's active blocks.

    `expires` of a block is the latest expiry over its firewalls (None when one of them holds it
    without expiry, e.g. an ACL entry msib did not make); `reason` comes from the audit log.
    """
    inv = _validate(inventory)
    log = AuditLog(opts.audit_log or default_audit_path(inventory))
    seen: dict[IPv4Net, dict[str, float | None]] = {}
    errors: list[FirewallOutcome] = []
    with log.locked():
        now = time.time()
        runner = _Runner(inv, inv.firewalls, opts)
        try:
            swept = _sweep(inv, log, runner, _due(inv, log, now), now, False)
            held = held_blocks(log.records())
            for fw in inv.firewalls:
                try:
                    if fw.is_nftables:
                        assert runner.nft is not None
                        for e in runner.nft.elements(fw):
                            seen.setdefault(e.network, {})[fw.name] = (
                                now + e.expires_s if e.expires_s is not None else None)
                    else:
                        with runner.device(fw) as dev:
                            for net in dev.blocks():
                                h = held.get((fw.name, net))
                                seen.setdefault(net, {})[fw.name] = h.expires if h else None
                except MsibError as exc:
                    errors.append(FirewallOutcome(fw.name, fw.platform, "error", str(exc)))
        finally:
            runner.close()
    # why: the record that put the block on a firewall (a later identical run does not erase it)
    reasons = {net: h.reason for (_fw, net), h in held.items() if h.reason}
    blocks = []
    for net, per_fw in sorted(seen.items()):
        exps = list(per_fw.values())
        expires = None if any(x is None for x in exps) else max(x for x in exps if x is not None)
        blocks.append(Block(net, tuple(sorted(per_fw)), expires, reasons.get(net)))
    return BlockList(tuple(blocks), tuple(errors), swept)


# --- what the CLI prints ------------------------------------------------------------------------------


_VERB = {"added": "blocked", "extended": "blocked, expiry extended", "present": "unchanged",
         "removed": "released", "absent": "unchanged", "would-add": "would block",
         "would-extend": "would extend the expiry", "would-remove": "would release",
         "conflict": "CONFLICT", "error": "FAILED"}


def describe(run: ContainRun) -> list[str]:
    """Human-readable lines for a contain/release run."""
    lines: list[str] = []
    for s in run.swept:
        lines.append(f"swept {s.name} ({s.platform}): {_VERB[s.result]}: {s.detail}")
    head = "check: " if run.check else ""
    if run.action == "block":
        lines.append(f"{head}contain {run.address} for {run.ttl_s}s (until {_iso(run.expires)}) in circuit(s) "
                     f"{', '.join(run.circuits)}" + (f": {run.reason}" if run.reason else ""))
    else:
        lines.append(f"{head}release {run.address} in circuit(s) {', '.join(run.circuits)}")
    for f in run.firewalls:
        until = f" until {_iso(f.expires)}" if f.expires and f.result not in ("error", "conflict") else ""
        detail = f": {f.detail}" if f.detail else ""
        lines.append(f"  {f.name} ({f.platform}): {_VERB[f.result]}{until}{detail}")
    if run.check:
        lines.append("check mode: nothing was changed, no audit record written")
    elif not run.ok:
        lines.append(f"{sum(f.result in FAILED for f in run.firewalls)} firewall(s) failed; audit: {run.audit}")
    elif run.changed:
        lines.append(f"changed on {sum(f.result in CHANGED for f in run.firewalls)} firewall(s); audit: {run.audit}")
    else:
        lines.append(f"nothing changed: already {'contained' if run.action == 'block' else 'released'} "
                     f"everywhere; audit: {run.audit}")
    return lines


def describe_list(bl: BlockList) -> list[str]:
    """Human-readable lines for ``--list``."""
    lines = [f"swept {s.name} ({s.platform}): {_VERB[s.result]}: {s.detail}" for s in bl.swept]
    if not bl.blocks:
        lines.append("no active blocks")
    for b in bl.blocks:
        until = f"until {_iso(b.expires)}" if b.expires else "no expiry known"
        lines.append(f"{b.address}: {', '.join(b.firewalls)}; {until}" + (f"; {b.reason}" if b.reason else ""))
    for e in bl.errors:
        lines.append(f"{e.name} ({e.platform}): could not be read: {e.detail}")
    return lines
