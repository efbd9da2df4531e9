"""The one reader of an inventory directory (hosts.yml, site.json): a typed, frozen model of it.

``msib inventory build`` (and ``msib lab up``) writes the directory; every command that acts on
appliances reads it only through :func:`load` (docs/inventory-contract.md). The model holds the SB
code, the SIEM, the controllers, the package proxy, the circuits, the appliances with their role,
circuit, management address, platform and variables, and how msib connects to them
(:class:`Ssh`, from ``msib_ssh``).

Example:
    >>> inv = load("/var/lib/msib-lab/inventory")                      # doctest: +SKIP
    >>> [a.name for a in inv.of("collector")]                            # doctest: +SKIP
    ['col-int-1', 'col-ext-1']
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from msib.errors import InputError

if TYPE_CHECKING:
    from msib.site import SitePlan

#: The Linux appliance roles, in the order they are deployed (sensors send to collectors).
LINUX_ROLES: tuple[str, ...] = ("collector", "ids_sensor", "firewall")
#: Every group whose hosts are appliances: the Linux roles, then the vendor firewalls.
ROLE_GROUPS: tuple[str, ...] = (*LINUX_ROLES, "netdev")

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BUILD_FIX = "rebuild it with `msib inventory build` (docs/inventory-contract.md)"
_EMPTY: Mapping[str, Any] = MappingProxyType({})


# --- SSH: how msib connects (msib_ssh) ---------------------------------------------------------------


class Reachable(Protocol):
    """A host msib connects to: its name, management address and SSH port."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class Ssh:
    """How msib reaches the appliances (``all.vars.msib_ssh``); host keys are always checked strictly.

    Paths are absolute (relative ones in hosts.yml are taken from the inventory directory).
    """

    user: str | None = None
    config_file: str | None = None
    known_hosts_file: str | None = None
    key_file: str | None = None

    def effective(self) -> Ssh:
        """These settings, completed from the ``Host *`` block of `config_file` where they are unset.

        Raises:
            InputError: the ssh_config cannot be read.
        """
        if not self.config_file or (self.known_hosts_file and self.key_file and self.user):
            return self
        found = ssh_config_all(Path(self.config_file))
        return replace(self, user=self.user or found.get("user"),
                       known_hosts_file=self.known_hosts_file or found.get("userknownhostsfile"),
                       key_file=self.key_file or found.get("identityfile"))

    def verified(self) -> Ssh:
        """These settings (completed from the ssh_config, :meth:`effective`), refused without a known_hosts.

        Every command that connects asks for this first: host keys are checked against the site's
        known_hosts and nothing else (never ``~/.ssh/known_hosts``, never the system-wide file).

        Raises:
            InputError: no known_hosts (in msib_ssh or the ssh_config's ``Host *`` block).
        """
        ssh = self.effective()
        if not ssh.known_hosts_file:
            raise InputError("hosts.yml", "no known_hosts for the hosts: msib connects with strict host keys "
                             "against the site's known_hosts only", where="all.vars.msib_ssh.known_hosts_file",
                             fix="build the inventory with --known-hosts, or an --ssh-config whose Host * block "
                                 "names a UserKnownHostsFile")
        return ssh

    def host_key_options(self) -> list[str]:
        """``-o`` options of ``ssh``: strict host keys against this known_hosts only (call on :meth:`verified`)."""
        opts = ["-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.known_hosts_file:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts_file}"]
        return opts

    def argv(self, *, fresh: bool = False) -> list[str]:
        """``ssh`` and its options (no host): batch mode, strict host keys, this inventory's files.

        `fresh` opens a NEW connection whatever multiplexing an ssh_config sets up (no master).
        """
        argv = ["ssh"]
        if self.config_file:
            argv += ["-F", self.config_file]
        argv += ["-o", "BatchMode=yes", *self.host_key_options(), "-o", "ConnectTimeout=10"]
        if fresh:
            argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        if self.key_file:
            argv += ["-i", self.key_file]
        if self.user:
            argv += ["-l", self.user]
        return argv

    def run_config(self, hosts: Iterable[Reachable], control_dir: Path, *, persist: str = "60s",
                   header: str = "written by msib for one run") -> str:
        """An ssh_config for one run: each host by name at its address, strict host keys, one master per host."""
        lines = [f"# {header}: strict host keys, connections multiplexed per host"]
        for h in hosts:
            lines += [f"Host {h.name}", f"    HostName {h.address}", f"    Port {h.port}"]
        lines += ["Host *", "    StrictHostKeyChecking yes", "    GlobalKnownHostsFile /dev/null", "    BatchMode yes",
                  "    ConnectTimeout 10",
                  "    ControlMaster auto", f"    ControlPath {control_dir}/%C", f"    ControlPersist {persist}"]
        if self.user:
            lines.append(f"    User {self.user}")
        if self.key_file:
            lines += [f"    IdentityFile {self.key_file}", "    IdentitiesOnly yes"]
        if self.known_hosts_file:
            lines.append(f"    UserKnownHostsFile {self.known_hosts_file}")
        if self.config_file:
            lines.append(f"Include {self.config_file}")
        return "\n".join(lines) + "\n"


def ssh_config_all(path: Path) -> dict[str, str]:
    """The options of the ``Host *`` block of an ssh_config (lower-case keys, first value wins).

    Raises:
        InputError: the file cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), f"cannot read the ssh_config: {exc.strerror}") from None
    found: dict[str, str] = {}
    in_all = False
    for line in text.splitlines():
        parts = line.strip().replace("=", " ", 1).split(None, 1)
        if not parts or parts[0].startswith("#"):
            continue
        key = parts[0].lower()
        if key in ("host", "match"):
            in_all = key == "host" and parts[1:] == ["*"]
            continue
        if in_all and len(parts) == 2:
            found.setdefault(key, parts[1].strip())
    return found


# --- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """An appliance as a circuit lists it: where it is managed and where the circuit reaches it."""

    name: str
    address: str
    service_address: str
    role: str | None = None


@dataclass(frozen=True)
class Circuit:
    """One circuit (``msib_circuits.<name>``): its networks, collectors, appliances and senders."""

    name: str
    networks: tuple[str, ...] = ()
    collectors: tuple[Member, ...] = ()
    appliances: tuple[Member, ...] = ()
    objects: int = 0
    senders: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Syslog:
    """The SIEM's syslog receiver (``msib_siem.syslog``)."""

    host: str
    port: int = 2514
    transport: str = "relp+tls"
    peer_name: str | None = None


@dataclass(frozen=True)
class SiemApi:
    """The SIEM's management API (``msib_siem.api``); `url` None when hosts.yml gives none."""

    url: str | None = None
    driver: str = "wazuh"
    ca_file: str | None = None


@dataclass(frozen=True)
class Siem:
    """Where the SB's events go (``msib_siem``); never credentials."""

    syslog: Syslog | None = None
    api: SiemApi = field(default_factory=SiemApi)
    ca_file: str | None = None


@dataclass(frozen=True)
class Appliance:
    """One host of a role group: its role, management address and every variable it has.

    `vars` are Ansible's for the host (all.vars < group vars < host vars, group_vars/ and
    host_vars/ beside hosts.yml included); treat them as read-only.
    """

    name: str
    role: str
    address: str
    port: int = 22
    vars: Mapping[str, Any] = field(default=_EMPTY, repr=False, compare=False)
    circuit: str | None = None
    platform: str | None = None
    lan_address: str | None = None
    uplink_address: str | None = None
    capture_interface: str | None = None
    #: the Debian release the site plan says it runs (msib_appliance.release); None: not said
    release: str | None = None

    @property
    def is_linux(self) -> bool:
        """True for the hosts Ansible/pyinfra deploy (not the vendor firewalls of group netdev)."""
        return self.role in LINUX_ROLES

    def with_vars(self, extra: Mapping[str, Any]) -> Appliance:
        """This appliance with `extra` variables on top (``msib deploy --vars``: highest precedence)."""
        return replace(self, vars=MappingProxyType({**self.vars, **extra})) if extra else self

    def pyinfra_data(self, ssh: Ssh) -> dict[str, Any]:
        """pyinfra's host data: the connection (strict host keys) and every non-``ansible_*`` variable.

        Raises:
            InputError: no known_hosts (in msib_ssh or the ssh_config's ``Host *`` block).
        """
        ssh = ssh.verified()
        data = {k: v for k, v in self.vars.items() if not k.startswith("ansible_")}
        data.update({"ssh_hostname": self.address, "ssh_port": self.port, "ssh_strict_host_key_checking": "yes",
                     "ssh_known_hosts_file": ssh.known_hosts_file})
        for key, value in (("ssh_user", ssh.user), ("ssh_key", ssh.key_file), ("ssh_config_file", ssh.config_file)):
            if value:
                data[key] = value
        if ssh.user and ssh.user != "root" and self.vars.get("ansible_become", True):
            data["_sudo"] = True
        return data


@dataclass(frozen=True)
class Inventory:
    """An inventory directory as msib wrote it (docs/inventory-contract.md)."""

    directory: Path
    sb_code: str | None
    state_body: str | None
    siem: Siem
    controllers: tuple[str, ...]
    package_proxy: str | None
    circuits: Mapping[str, Circuit]
    ssh: Ssh
    appliances: tuple[Appliance, ...]
    vars: Mapping[str, Any] = field(repr=False, compare=False)
    #: every group of hosts.yml and its hosts, children's included, in file order
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def hosts_file(self) -> Path:
        """``DIR/hosts.yml`` (what Ansible is given with ``-i``)."""
        return self.directory / "hosts.yml"

    def of(self, *roles: str) -> tuple[Appliance, ...]:
        """The appliances of `roles` (of every role group when none is given), in inventory order."""
        return tuple(a for a in self.appliances if not roles or a.role in roles)

    def appliance(self, name: str, roles: Sequence[str] = LINUX_ROLES) -> Appliance:
        """The appliance called `name` among `roles`.

        Raises:
            InputError: no such appliance.
        """
        for a in self.of(*roles):
            if a.name == name:
                return a
        raise InputError(str(self.hosts_file), f"no appliance named {name!r}",
                         fix=f"one of: {', '.join(a.name for a in self.of(*roles)) or '(none)'}")

    def with_vars(self, extra: Mapping[str, Any]) -> Inventory:
        """This inventory with `extra` variables on top of every appliance's (``--vars`` files)."""
        if not extra:
            return self
        return replace(self, appliances=tuple(a.with_vars(extra) for a in self.appliances))

    def pyinfra_groups(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """pyinfra's view of this inventory: each group but ``netdev`` as (host, host data) of its Linux appliances.

        The data of a host is :meth:`Appliance.pyinfra_data` (what ``msib deploy`` connects with).

        Raises:
            InputError: no known_hosts for the hosts (strict host keys only).
        """
        data = {a.name: a.pyinfra_data(self.ssh) for a in self.of(*LINUX_ROLES)}
        return {name: [(h, data[h]) for h in members if h in data]
                for name, members in self.groups.items() if name != "netdev"}

    @functools.cached_property
    def site(self) -> SitePlan | None:
        """``site.json``: the site plan as validated at build time; None when the directory has none.

        Raises:
            InputError: site.json is not JSON or not a valid site plan.
        """
        from msib.site import parse_site

        path = self.directory / "site.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(str(path), f"cannot read the site plan: {exc}", fix=_BUILD_FIX) from None
        return parse_site(data, str(path))


# --- reading ---------------------------------------------------------------------------------------


def load(directory: str | Path) -> Inventory:
    """Read an inventory directory: ``hosts.yml`` (with group_vars/ and host_vars/, as Ansible does).

    Raises:
        InputError: naming the file and the key path when the directory is not an inventory in the
            contract's shape (no hosts.yml, bad YAML, an appliance without an address, a bad address).
    """
    directory = Path(directory).absolute()  # the checks' and the worker's own processes read it too
    path = directory / "hosts.yml"
    if not directory.is_dir():
        raise InputError(str(directory), "not a directory", fix="give the inventory directory (--inventory DIR)")
    data = _read_yaml(path, required=True)
    root = data.get("all")
    if not isinstance(root, dict):
        raise InputError(str(path), "not an Ansible YAML inventory in the contract's shape", where="all",
                         fix=_BUILD_FIX)
    file = str(path)
    all_vars = dict(_mapping(root.get("vars"), file, "all.vars"))
    all_vars.update(_read_yaml(directory / "group_vars" / "all.yml"))
    groups = _walk_groups(_mapping(root.get("children"), file, "all.children"), file)
    appliances = tuple(_appliances(directory, groups, all_vars, file))
    return Inventory(
        directory=directory,
        sb_code=_text(all_vars.get("msib_sb_code")),
        state_body=_text(all_vars.get("msib_state_body")),
        siem=_siem(all_vars.get("msib_siem"), file),
        controllers=tuple(_networks(all_vars.get("msib_controllers"), file, "all.vars.msib_controllers")),
        package_proxy=_text(all_vars.get("msib_package_proxy")),
        circuits=MappingProxyType(_circuits(all_vars.get("msib_circuits"), file)),
        ssh=_ssh(all_vars, directory, file),
        appliances=appliances,
        vars=MappingProxyType(all_vars),
        groups=MappingProxyType({name: _members(groups, name) for name in groups}),
    )


def read_vars(files: Sequence[str | Path]) -> dict[str, Any]:
    """Role variables of YAML files, as given to ``msib deploy --vars`` (later files win).

    Raises:
        InputError: a file is missing, not YAML or not a mapping.
    """
    extra: dict[str, Any] = {}
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise InputError(str(p), "no such vars file")
        extra.update(_read_yaml(p))
    return extra


def _read_yaml(path: Path, *, required: bool = False) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not required:
            return {}
        raise InputError(str(path), "no hosts.yml in the inventory directory",
                         fix="run `msib inventory build` (or `msib lab up`) first, or point --inventory at "
                             "the directory it wrote") from None
    except OSError as exc:
        if not required and not path.exists():
            return {}
        raise InputError(str(path), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(str(path), "not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_LOADER)  # a safe loader (libyaml's when there is one)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise InputError(str(path), "not valid YAML", where=where, fix="rebuild the inventory") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(str(path), "must be a YAML mapping")
    return data


def _mapping(value: Any, file: str, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(file, "not a mapping", where=where, fix=_BUILD_FIX)
    return value


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _address(value: Any, file: str, where: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise InputError(file, f"{value!r} is not an IP address", where=where, fix=_BUILD_FIX) from None


def _networks(values: Any, file: str, where: str) -> list[str]:
    out: list[str] = []
    for i, v in enumerate(values if isinstance(values, list) else ([] if values is None else [values])):
        if v in (None, ""):
            continue
        try:
            out.append(str(ipaddress.ip_network(str(v).strip(), strict=False)))
        except ValueError:
            raise InputError(file, f"{v!r} is not an IP address or network", where=f"{where}[{i}]") from None
    return out


def _siem(value: Any, file: str) -> Siem:
    siem = _mapping(value, file, "all.vars.msib_siem")
    syslog_data = _mapping(siem.get("syslog"), file, "all.vars.msib_siem.syslog")
    syslog = None
    if syslog_data.get("host"):
        from msib.site import DEFAULT_SYSLOG_PORTS  # the site plan's defaults, for a hosts.yml that omits them

        transport = str(syslog_data.get("transport") or "relp+tls")
        try:
            port = int(syslog_data.get("port") or DEFAULT_SYSLOG_PORTS.get(transport, 6514))
        except (TypeError, ValueError):
            raise InputError(file, "not a port number", where="all.vars.msib_siem.syslog.port") from None
        syslog = Syslog(str(syslog_data["host"]), port, transport, _text(syslog_data.get("peer_name")))
    api = _mapping(siem.get("api"), file, "all.vars.msib_siem.api")
    url = api.get("url")
    return Siem(syslog=syslog,
                api=SiemApi(url if isinstance(url, str) and url else None, str(api.get("driver") or "wazuh"),
                            _text(api.get("ca_file"))),
                ca_file=_text(siem.get("ca_file")))


def _member(value: Any, file: str, where: str, role: bool) -> Member:
    m = _mapping(value, file, where)
    address = _address(m.get("address"), file, f"{where}.address")
    service = _address(m["service_address"], file, f"{where}.service_address") if m.get("service_address") \
        else address
    return Member(str(m.get("name") or "?"), address, service, _text(m.get("role")) if role else None)


def _circuits(value: Any, file: str) -> dict[str, Circuit]:
    out: dict[str, Circuit] = {}
    for cname, circuit in _mapping(value, file, "all.vars.msib_circuits").items():
        where = f"all.vars.msib_circuits.{cname}"
        c = _mapping(circuit, file, where)
        senders = c.get("senders") or []
        out[str(cname)] = Circuit(
            name=str(cname),
            networks=tuple(_networks(c.get("networks"), file, f"{where}.networks")),
            collectors=tuple(_member(m, file, f"{where}.collectors[{i}]", False)
                             for i, m in enumerate(c.get("collectors") or [])),
            appliances=tuple(_member(m, file, f"{where}.appliances[{i}]", True)
                             for i, m in enumerate(c.get("appliances") or [])),
            objects=int(c.get("objects") or 0),
            senders=tuple(str(s) for s in senders) if isinstance(senders, list) else (),
        )
    return out


def _ssh(all_vars: Mapping[str, Any], directory: Path, file: str) -> Ssh:
    ssh = _mapping(all_vars.get("msib_ssh"), file, "all.vars.msib_ssh")

    def path(key: str) -> str | None:
        value = _text(ssh.get(key))
        if value is None:
            return None
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (directory / p).absolute())

    return Ssh(user=_text(ssh.get("user") or all_vars.get("ansible_user")), config_file=path("config_file"),
               known_hosts_file=path("known_hosts_file"), key_file=path("key_file"))


@dataclass
class _Group:
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


def _walk_groups(children: Mapping[str, Any], file: str) -> dict[str, _Group]:
    """Every group by name, nested definitions merged, as an Ansible YAML inventory defines them."""
    groups: dict[str, _Group] = {}

    def visit(name: str, value: Any, where: str) -> None:
        g = groups.setdefault(name, _Group())
        data = _mapping(value, file, where)
        g.vars.update(_mapping(data.get("vars"), file, f"{where}.vars"))
        for host, hvars in _mapping(data.get("hosts"), file, f"{where}.hosts").items():
            g.hosts.setdefault(str(host), {}).update(_mapping(hvars, file, f"{where}.hosts.{host}"))
        for child, sub in _mapping(data.get("children"), file, f"{where}.children").items():
            if str(child) not in g.children:
                g.children.append(str(child))
            visit(str(child), sub, f"{where}.children.{child}")

    for name, value in children.items():
        visit(str(name), value, f"all.children.{name}")
    return groups


def _members(groups: Mapping[str, _Group], name: str, seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The hosts of a group and of its children (recursively), each once, in file order."""
    group = groups.get(name)
    if group is None or name in seen:
        return ()
    found = dict.fromkeys(group.hosts)
    for child in group.children:
        found.update(dict.fromkeys(_members(groups, child, seen | {name})))
    return tuple(found)


def _appliances(directory: Path, groups: Mapping[str, _Group], all_vars: Mapping[str, Any],
                file: str) -> list[Appliance]:
    membership = {name: set(_members(groups, name)) for name in groups}
    out: list[Appliance] = []
    seen: set[str] = set()
    for role in ROLE_GROUPS:
        for name in groups[role].hosts if role in groups else ():
            if name in seen:
                continue
            seen.add(name)
            variables = dict(all_vars)
            for gname, group in groups.items():  # Ansible: all < groups < host
                if gname != "all" and name in membership[gname]:
                    variables.update(group.vars)
                    variables.update(_read_yaml(directory / "group_vars" / f"{gname}.yml"))
            for group in groups.values():
                variables.update(group.hosts.get(name) or {})
            variables.update(_read_yaml(directory / "host_vars" / f"{name}.yml"))
            out.append(_appliance(name, role, variables, file))
    return out


def _appliance(name: str, role: str, variables: dict[str, Any], file: str) -> Appliance:
    where = f"all.children.{role}.hosts.{name}"
    app = _mapping(variables.get("msib_appliance"), file, f"{where}.msib_appliance")
    raw = variables.get("ansible_host") or app.get("address")
    if not raw:
        raise InputError(file, "no ansible_host (management address)", where=where, fix=_BUILD_FIX)
    address = _address(raw, file, f"{where}.ansible_host")
    try:
        port = int(variables.get("ansible_port") or app.get("port") or 22)
    except (TypeError, ValueError):
        raise InputError(file, "port is not a number", where=f"{where}.ansible_port") from None
    platform = variables.get("msib_device_type") if role == "netdev" else None
    extra = {key: _address(app[key], file, f"{where}.msib_appliance.{key}") if app.get(key) else None
             for key in ("lan_address", "uplink_address")}
    return Appliance(name=name, role=role, address=address, port=port, vars=MappingProxyType(variables),
                     circuit=_text(variables.get("msib_circuit")),
                     platform=_text(platform or app.get("platform")),
                     capture_interface=_text(app.get("capture_interface")), release=_text(app.get("release")),
                     **extra)
