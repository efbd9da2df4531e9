"""The site plan (`site.yml`): what STS puts into one state body's network.

Typed and validated as strictly as the appendix: unknown keys, wrong types, overlapping circuits
or an appliance address outside its circuit are :class:`~msib.errors.InputError` naming the file,
the key path and what to do. :func:`json_schema` publishes the schema for editors.

Example:
    >>> plan = load_site("inventories/lab/site.yml")     # doctest: +SKIP
    >>> [a.name for a in plan.appliances()]                # doctest: +SKIP
    ['col-int-1', 'ids-int-1', 'fw-int-1', ...]
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from msib.circuits import CIRCUITS as CIRCUITS
from msib.circuits import CircuitName as CircuitName
from msib.errors import InputError

Role = Literal["collector", "ids_sensor", "firewall"]
ExclusionReason = Literal["state_secrets", "classified_system", "special_network", "national_bank"]
SyslogTransport = Literal["tls", "relp+tls"]
# the Debian releases of msib.releases (src/msib/data/debian_releases.yml)
DebianRelease = Literal["bookworm", "trixie"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ROLES: tuple[Role, ...] = ("collector", "ids_sensor", "firewall")

# Every site-plan string ends up in a config file, a template context or an inventory, so each
# has a pattern (in the model and in the published JSON Schema alike; the escapes below mean the
# same to Python, to pydantic's regex engine and to ECMA-262 validators in editors).
#: control characters (C0, DEL, C1), line and paragraph separators, and the invisible format
#: characters that reorder or hide text (bidi overrides and marks, zero-width, soft hyphen, BOM)
_CONTROL = r"\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
#: free text (the SB's name): anything printable, on one line
FREE_TEXT_PATTERN = rf"^[^{_CONTROL}]+$"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: a DNS name (dotted IPv4 addresses match too)
DNS_NAME_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*$"
#: a DNS name, an IPv4 or an IPv6 address (checked again by :func:`_host`)
HOST_PATTERN = rf"^(?:{_LABEL}(?:\.{_LABEL})*|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$"
_URL_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
#: the SIEM API: https, a host, a port, a plain path
API_URL_PATTERN = rf"^https://{_URL_HOST}(?::[0-9]{{1,5}})?(?:/[A-Za-z0-9._~/-]*)?$"
#: an apt proxy: http(s), a host, a port
PROXY_URL_PATTERN = rf"^https?://{_URL_HOST}(?::[0-9]{{1,5}})?/?$"
#: a file on the controller (relative to the site plan): no spaces, quotes, braces or controls
PATH_PATTERN = r"^[A-Za-z0-9._/+@~-]{1,1024}$"
#: a hostname pattern of an exclusion (fnmatch): no white space, no controls
GLOB_PATTERN = rf"^[^\s{_CONTROL}]+$"

NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
INTERFACE_PATTERN = r"^[a-zA-Z0-9_.-]{1,15}$"
PLATFORM_PATTERN = r"^[a-z0-9_]{1,64}$"
DRIVER_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
#: an SB code is a DNS label of 2..32 characters (fleet.md): letters, digits and inner hyphens,
#: never a '.', which is what makes `<code>.<appliance>` name exactly one SB at the SIEM
SB_CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$"
FreeText = Annotated[str, Field(min_length=1, max_length=500, pattern=FREE_TEXT_PATTERN)]
FilePath = Annotated[str, Field(pattern=PATH_PATTERN)]


def _host(value: str) -> str:
    if ":" in value:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither a host name nor an IPv6 address") from None
    return value


Host = Annotated[str, Field(max_length=253, pattern=HOST_PATTERN), AfterValidator(_host)]
DnsName = Annotated[str, Field(max_length=253, pattern=DNS_NAME_PATTERN)]


class _Strict(BaseModel):
    """Base for every site-plan model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: The receiver's port when the site plan gives none, per transport.
DEFAULT_SYSLOG_PORTS: dict[str, int] = {"relp+tls": 2514, "tls": 6514}


class SyslogEndpoint(_Strict):
    """Where collectors relay events: the SIEM's syslog receiver.

    RELP over TLS unless the site plan says ``tls``: the SIEM acknowledges every event, so the one
    in flight when a connection breaks is sent again; plain RFC 5425 TLS has no acknowledgement and
    loses it (docs/delivery.md). The port defaults to the transport's (2514 RELP, 6514 TLS).
    """

    host: Host
    port: int = Field(default=DEFAULT_SYSLOG_PORTS["relp+tls"], ge=1, le=65535,
                      description="default: 2514 for relp+tls, 6514 for tls")
    transport: SyslogTransport = "relp+tls"
    # the name the SIEM's certificate carries, when it differs from `host`
    peer_name: DnsName | None = None

    @model_validator(mode="before")
    @classmethod
    def _port_of_the_transport(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None:
            transport = data.get("transport") or "relp+tls"
            if transport in DEFAULT_SYSLOG_PORTS:
                return {**data, "port": DEFAULT_SYSLOG_PORTS[transport]}
        return data


class SiemApi(_Strict):
    """The SIEM's management API (registration of sources)."""

    url: str = Field(max_length=2048, pattern=API_URL_PATTERN)
    driver: str = Field(default="wazuh", pattern=DRIVER_PATTERN)
    ca_file: FilePath | None = None


class Siem(_Strict):
    syslog: SyslogEndpoint
    api: SiemApi | None = None
    # CA that signed the SIEM's certificates (syslog and API), relative to the site plan
    ca_file: FilePath | None = None


class Appliance(_Strict):
    """One event source STS installs: a collector, an IDS sensor or a firewall."""

    name: Name
    role: Role
    # the management address: the only address msib ever connects to
    address: IPAddress
    # dual-homed appliances: the address on the circuit LAN (objects send logs to a collector's)
    lan_address: IPAddress | None = None
    # firewalls: the address on the uplink towards the SIEM
    uplink_address: IPAddress | None = None
    # ids_sensor: the interface that sees the circuit's traffic (SPAN port)
    capture_interface: str | None = Field(default=None, pattern=INTERFACE_PATTERN)
    # firewall: "nftables" (Linux appliance) or a netmiko device_type (vendor device)
    platform: str | None = Field(default=None, pattern=PLATFORM_PATTERN)
    # SSH port of the management address
    port: int = Field(default=22, ge=1, le=65535)
    # Linux appliances: the Debian release it runs (the lab builds it so; msib check compares)
    release: DebianRelease | None = None
    # ids_sensor: Suricata's major version (7 unless given; 8 needs release trixie)
    suricata_major: Literal[7, 8] | None = None

    @model_validator(mode="after")
    def _role_fields(self) -> Appliance:
        if self.role == "ids_sensor" and not self.capture_interface:
            raise ValueError("an ids_sensor needs capture_interface (the interface on the SPAN port)")
        if self.role != "ids_sensor" and self.capture_interface:
            raise ValueError("capture_interface is only for role ids_sensor")
        if self.role != "firewall" and self.platform:
            raise ValueError("platform is only for role firewall")
        if self.role != "firewall" and self.uplink_address:
            raise ValueError("uplink_address is only for role firewall")
        if self.role != "ids_sensor" and self.suricata_major is not None:
            raise ValueError("suricata_major is only for role ids_sensor")
        if self.release is not None and not self.is_linux:
            raise ValueError("release is only for Linux appliances (a vendor firewall runs its vendor's system)")
        if self.suricata_major == 8 and self.release == "bookworm":
            raise ValueError("suricata_major 8 needs release trixie (Debian 13: trixie-backports)")
        return self

    @property
    def effective_platform(self) -> str:
        """The firewall platform, `nftables` unless the plan names a vendor device type."""
        return self.platform or ("nftables" if self.role == "firewall" else "linux")

    @property
    def is_linux(self) -> bool:
        """True when the appliance is a Linux host driven by Ansible/pyinfra (not netmiko)."""
        return self.role != "firewall" or self.effective_platform == "nftables"

    @property
    def service_address(self) -> IPAddress:
        """Where the circuit's objects reach this appliance (LAN address, else management)."""
        return self.lan_address or self.address


class Circuit(_Strict):
    """One circuit of the Rules (internal or external LAN) and the sources STS puts in it."""

    networks: list[IPNetwork] = Field(min_length=1)
    appliances: list[Appliance] = Field(default_factory=list)

    @field_validator("networks", mode="before")
    @classmethod
    def _strict_networks(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                try:
                    ipaddress.ip_network(str(item), strict=True)
                except ValueError as exc:
                    raise ValueError(f"{item!r} is not a network address with prefix ({exc})") from exc
        return value

    def contains(self, ip: IPAddress) -> bool:
        """True when `ip` lies in one of the circuit's networks."""
        return any(ip.version == net.version and ip in net for net in self.networks)

    def by_role(self, role: Role) -> list[Appliance]:
        """The circuit's appliances of one role, in plan order."""
        return [a for a in self.appliances if a.role == role]


class Exclusion(_Strict):
    """Out of scope by the Rules: never in an inventory, never registered, never connected to."""

    network: IPNetwork | None = None
    hostname: str | None = Field(default=None, max_length=253, pattern=GLOB_PATTERN)
    reason: ExclusionReason

    @model_validator(mode="after")
    def _one_of(self) -> Exclusion:
        if (self.network is None) == (self.hostname is None):
            raise ValueError("an exclusion has exactly one of network or hostname")
        return self

    def matches(self, hostname: str | None, ip: IPAddress | None) -> bool:
        """True when the object (hostname, ip) falls under this exclusion."""
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        assert self.hostname is not None
        if not hostname:
            return False
        pattern = self.hostname.lower()
        name = hostname.lower()
        short = name.split(".", 1)[0]
        return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(short, pattern)


class Management(_Strict):
    """How msib reaches the appliances."""

    # apt proxy the appliances use (a closed circuit has no other way to updates)
    package_proxy: str | None = Field(default=None, max_length=2048, pattern=PROXY_URL_PATTERN)
    # user msib logs in as; not root means privilege escalation with sudo
    ssh_user: str = Field(default="msib", pattern=USER_PATTERN)
    # where msib connects from: the management path every firewall keeps open first
    controllers: list[IPNetwork] = Field(default_factory=list)
    # known_hosts of the site (relative to the site plan); first contact is an explicit step
    known_hosts: FilePath | None = None


class SitePlan(_Strict):
    """One state body's site plan."""

    # free text: printable, one line; it reaches the inventory as data and is never templated
    state_body: FreeText
    aliases: list[FreeText] = Field(default_factory=list)
    code: str = Field(pattern=SB_CODE_PATTERN)
    siem: Siem
    circuits: dict[CircuitName, Circuit] = Field(min_length=1)
    excluded: list[Exclusion] = Field(default_factory=list)
    management: Management = Field(default_factory=Management)

    @model_validator(mode="after")
    def _consistent(self) -> SitePlan:
        seen: dict[str, str] = {}
        for cname, circuit in self.circuits.items():
            for i, app in enumerate(circuit.appliances):
                where = f"circuits.{cname}.appliances[{i}]"
                if app.name in seen:
                    raise ValueError(f"{where}: appliance name {app.name!r} is used twice (also {seen[app.name]})")
                seen[app.name] = where
                if not circuit.contains(app.address):
                    raise ValueError(
                        f"{where}.address: {app.address} is outside the circuit's networks "
                        f"{', '.join(map(str, circuit.networks))}"
                    )
                if app.lan_address is not None and not circuit.contains(app.lan_address):
                    raise ValueError(f"{where}.lan_address: {app.lan_address} is outside the circuit's networks")
        addresses: dict[IPAddress, str] = {}
        for cname, circuit in self.circuits.items():
            for i, app in enumerate(circuit.appliances):
                where = f"circuits.{cname}.appliances[{i}]"
                for key in ("address", "lan_address", "uplink_address"):
                    addr = getattr(app, key)
                    if addr is None:
                        continue
                    if addr in addresses:
                        raise ValueError(f"{where}.{key}: {addr} is also {addresses[addr]}")
                    addresses[addr] = f"{where}.{key}"
                    for j, excl in enumerate(self.excluded):
                        if excl.network is not None and excl.matches(None, addr):
                            raise ValueError(f"{where}.{key}: {addr} lies in excluded[{j}] {excl.network}")
            nets = circuit.networks
            for i, na in enumerate(nets):
                for nb in nets[i + 1 :]:
                    if na.version == nb.version and na.overlaps(nb):
                        raise ValueError(f"circuits.{cname}.networks: {na} overlaps {nb}")
        names = list(self.circuits)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                for na in self.circuits[a].networks:
                    for nb in self.circuits[b].networks:
                        if na.version == nb.version and na.overlaps(nb):
                            raise ValueError(f"circuits.{a}.networks {na} overlaps circuits.{b}.networks {nb}")
        return self

    def appliances(self) -> Iterator[tuple[CircuitName, Appliance]]:
        """Every appliance with its circuit, in plan order."""
        for cname, circuit in self.circuits.items():
            for app in circuit.appliances:
                yield cname, app

    def appliance(self, name: str) -> tuple[CircuitName, Appliance]:
        """The appliance called `name` with its circuit; KeyError if there is none."""
        for cname, app in self.appliances():
            if app.name == name:
                return cname, app
        raise KeyError(name)

    def names_state_body(self, name: str) -> bool:
        """True when `name` is the plan's SB name or one of its aliases (case and spaces folded)."""
        wanted = _fold(name)
        return any(_fold(n) == wanted for n in [self.state_body, *self.aliases])

    def exclusion_for(self, hostname: str | None, ip: IPAddress | None) -> Exclusion | None:
        """The first exclusion the object falls under, or None."""
        return next((e for e in self.excluded if e.matches(hostname, ip)), None)


def _fold(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split()).casefold()


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            out += ("." if out else "") + (text if text.isprintable() else repr(text))  # one line, always
    return out or "(top level)"


_FIXES = {
    "extra_forbidden": "remove the key or check its spelling against the schema",
    "missing": "add the key",
    "literal_error": "use one of the allowed values",
}


#: what a value of each pattern is, and how to write one (for errors a person can act on)
_PATTERN_HELP: dict[str, tuple[str, str]] = {
    FREE_TEXT_PATTERN: ("text on one line", "remove line breaks, control and invisible formatting characters"),
    HOST_PATTERN: ("a host name or an IP address",
                   "give a DNS name (letters, digits, '-' and '.') or an IP address, nothing else on the line"),
    DNS_NAME_PATTERN: ("a DNS name", "give letters, digits, '-' and '.' only"),
    API_URL_PATTERN: ("an https:// URL of a host", "give https://HOST[:PORT][/PATH], no spaces, quotes or query"),
    PROXY_URL_PATTERN: ("an http(s):// proxy URL", "give http://HOST:PORT, no path, spaces, quotes or ';'"),
    PATH_PATTERN: ("a file path msib can pass on safely",
                   "use letters, digits and . _ / + @ ~ - only (no spaces, quotes, braces or line breaks)"),
    GLOB_PATTERN: ("a hostname pattern", "give a name or a pattern such as kgs-*, without spaces or controls"),
    NAME_PATTERN: ("an appliance name", "up to 32 characters: a-z, 0-9 and '-', starting with a letter or digit"),
    INTERFACE_PATTERN: ("a network interface name", "up to 15 characters: letters, digits, '_', '.' and '-'"),
    PLATFORM_PATTERN: ("a platform", "nftables, or a netmiko device_type such as cisco_ios"),
    DRIVER_PATTERN: ("a SIEM driver name", "use wazuh"),
    USER_PATTERN: ("a login name", "up to 32 characters: a-z, 0-9, '_' and '-', not starting with a digit"),
    SB_CODE_PATTERN: ("an SB code", "a DNS label of 2..32 characters: a-z, 0-9 and '-' inside (never '.', which "
                                    "separates the SB code from the appliance name at the SIEM)"),
}
_BAD_CHAR = re.compile(rf"[{_CONTROL}]")
_CHAR_NAMES = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", "\x00": "a NUL byte"}


def _show(value: Any) -> str:
    """A value for an error line: repr (line breaks and controls escaped), shortened."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _pattern_message(value: Any, pattern: str) -> tuple[str, str]:
    what, fix = _PATTERN_HELP[pattern]
    bad = _BAD_CHAR.search(value) if isinstance(value, str) else None
    if bad is not None:
        char = bad.group()
        name = _CHAR_NAMES.get(char) or unicodedata.name(char, "a control character")
        return (f"{_show(value)} holds U+{ord(char):04X} ({name}) "
                f"at character {bad.start() + 1}: it must be {what}", fix)
    return f"{_show(value)} is not {what}", fix


_LEADING_KEY_PATH = re.compile(r"^(?P<where>[a-z_]+(?:\.[a-z_]+|\[\d+\])+)(?::\s*|\s+)(?P<message>.+)$", re.S)


def parse_site(data: Any, file: str) -> SitePlan:
    """Validate parsed YAML as a site plan.

    Raises:
        InputError: naming `file`, the key path and what to do.
    """
    if not isinstance(data, dict):
        raise InputError(file, "a site plan is a YAML mapping (state_body, code, siem, circuits, ...)")
    try:
        return SitePlan.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
        msg = str(err["msg"]).removeprefix("Value error, ")
        fix = _FIXES.get(err["type"], "correct the value")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "string_pattern_mismatch":
            msg, fix = _pattern_message(err.get("input"), str(err.get("ctx", {}).get("pattern", "")))
        lead = _LEADING_KEY_PATH.match(msg) if not loc else None
        if lead:  # a rule across keys names its key path first: make that the place
            where = lead["where"]
            more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise InputError(file, lead["message"] + more, where=where, fix="correct the value") from None
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(file, msg + more, where=_key_path(loc), fix=fix) from None


def load_site(path: str | Path) -> SitePlan:
    """Read and validate a site plan file.

    Raises:
        InputError: the file is unreadable, not YAML, or not a valid site plan.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), f"cannot read the site plan: {exc.strerror}", fix="check the path") from None
    except UnicodeDecodeError:
        raise InputError(str(path), "the site plan is not UTF-8 text", fix="save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise InputError(str(path), "not valid YAML", where=where, fix="fix the YAML syntax") from None
    return parse_site(data, str(path))


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the site plan (for editors and CI linting)."""
    schema = SitePlan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "msib site plan"
    return schema


def json_schema_text() -> str:
    """:func:`json_schema` as the text committed in ``schemas/site.schema.json`` (stable formatting).

    Example:
        >>> json_schema_text().startswith("{")
        True
    """
    import json

    return json.dumps(json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
