"""`msib siem sync`: reconcile one SB's sources with the SIEM, never by "register all again".

Reads the inventory directory (docs/inventory-contract.md), and the SIEM's current state under
this SB's prefix, then:

- **appliances** (hosts of the groups `collector`, `ids_sensor`, `firewall`, `netdev` that carry
  `msib_appliance`) are agents named `<code>.<appliance>`: missing ones are registered one by one,
  those that left the site plan (or changed address) are deregistered with
  `status=all&older_than=0s&purge=true`, the rest are left alone;
- **objects** (DIR/objects.json) are one CDB list `msib-<code>-objects`, key = IP, value
  `<hostname>,<circuit>,<os_family>`, published in one request when it differs.

Ownership is proven by the name: a code is a DNS label and never holds the '.', so `<code>.`
starts this SB's agents and no other SB's (`mcri.` is not a prefix of `mcri-kz.col-1`). Agents of
other SBs are never listed as ours, so never touched. When SIEM and inventory agree, no write
request is sent.

Example:
    >>> inv = sb_inventory(Path("inventories/lab/build"))                     # doctest: +SKIP
    >>> with WazuhDriver(inv.api_url, credentials.resolve(), ca_file=inv.ca_file) as siem:
    ...     result = sync(inv, siem)                                         # doctest: +SKIP
    >>> result.as_json()["requests"]                                          # doctest: +SKIP
    {'read': 3, 'write': 0}
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from msib import contract
from msib.errors import InputError
from msib.siem.base import Agent, SiemDriver
from msib.site import SB_CODE_PATTERN

ROLE_GROUPS = contract.ROLE_GROUPS
CIRCUITS = ("internal", "external")
OS_FAMILIES = ("windows", "linux", "network", "other")
#: between SB code and appliance in an agent name: no SB code can hold it (a code is a DNS label,
#: enforced by the site plan's schema), so the code of `mcri-kz.col-1` is `mcri-kz` and nothing else
SEPARATOR = "."
_CODE_RE = re.compile(SB_CODE_PATTERN)
_AGENT_RE = re.compile(r"^[a-z0-9._-]{1,128}$")
_VALUE_BAD = re.compile(r"[,:\"\n\r]")


def agent_name(code: str, appliance: str) -> str:
    """The SIEM source name of an appliance: `<code>.<appliance>`.

    >>> agent_name("mcri-kz", "col-int-1")
    'mcri-kz.col-int-1'
    """
    return f"{code}{SEPARATOR}{appliance}"


def owner(agent: str) -> str | None:
    """The SB code an agent name proves it belongs to, or None for a name msib did not make.

    The code is everything before the first separator, and only if that is a valid code: a code
    never holds the separator, so no other SB's name can start with `<code>.`.

    >>> owner("mcri-kz.col-int-1"), owner("mcri.kz-col-1"), owner("mcri-kz-col-1")
    ('mcri-kz', 'mcri', None)
    """
    code, sep, rest = agent.partition(SEPARATOR)
    return code if sep and rest and _CODE_RE.fullmatch(code) else None


@dataclass(frozen=True)
class Source:
    """One appliance as the SIEM should know it: agent name and address."""

    name: str
    ip: str


@dataclass(frozen=True)
class SbInventory:
    """What sync needs from one inventory directory."""

    directory: Path
    code: str
    appliances: tuple[Source, ...]
    objects: Mapping[str, str]
    api_url: str | None = None
    ca_file: Path | None = None
    driver: str = "wazuh"

    @property
    def prefix(self) -> str:
        """The agent-name prefix of this SB: `<code>.` (the names that prove it is theirs)."""
        return agent_name(self.code, "")

    def owns(self, agent: str) -> bool:
        """True when `agent` is this SB's by its name (:func:`owner`)."""
        return owner(agent) == self.code

    @property
    def legacy_names(self) -> frozenset[str]:
        """The names msib gave this SB's appliances before the separator (`<code>-<appliance>`)."""
        return frozenset(f"{self.code}-{s.name.removeprefix(self.prefix)}" for s in self.appliances)

    @property
    def list_name(self) -> str:
        """This SB's object list at the SIEM."""
        return f"msib-{self.code}-objects"


ListAction = Literal["none", "publish", "delete"]


@dataclass(frozen=True)
class Plan:
    """The difference between inventory and SIEM, and what closes it."""

    add: tuple[Source, ...]
    remove: tuple[Agent, ...]
    unchanged: tuple[Agent, ...]
    objects_add: int
    objects_remove: int
    objects_unchanged: int
    list_action: ListAction
    list_name: str
    desired_list: Mapping[str, str] = field(repr=False)
    # agents under this SB's names from before the separator: reported, never touched
    legacy: tuple[Agent, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        """True when the SIEM already matches the inventory."""
        return not self.add and not self.remove and self.list_action == "none"


@dataclass(frozen=True)
class SyncResult:
    """A plan, whether it was applied, and the HTTP requests sent for it."""

    plan: Plan
    applied: bool
    read_requests: int
    write_requests: int

    def as_json(self) -> dict[str, Any]:
        """The `--json` document: plan and outcome."""
        p = self.plan
        return {
            "agents": {"add": [s.name for s in p.add], "remove": [a.name for a in p.remove],
                       "unchanged": len(p.unchanged), "legacy": [a.name for a in p.legacy]},
            "objects": {"add": p.objects_add, "remove": p.objects_remove, "unchanged": p.objects_unchanged},
            "requests": {"read": self.read_requests, "write": self.write_requests},
        }


# --- reading the inventory ------------------------------------------------------------------------


def _sources(inv: contract.Inventory) -> tuple[str, list[Source]]:
    """The SB code and the appliances (agents) of an inventory, validated for the SIEM."""
    file = str(inv.hosts_file)
    code = inv.sb_code
    if code is None or not _CODE_RE.fullmatch(code):
        raise InputError(file, f"missing or invalid SB code {code!r}", where="all.vars.msib_sb_code",
                         fix="a code is a DNS label of 2..32 characters: a-z, 0-9 and inner '-'")
    sources: dict[str, Source] = {}
    for host in sorted(inv.of(*ROLE_GROUPS), key=lambda a: a.name):
        app = host.vars.get("msib_appliance")
        if app is None:
            continue
        where = f"host {host.name}: msib_appliance"
        name, address = app.get("name"), app.get("address")
        if not isinstance(name, str) or not name:
            raise InputError(file, "an appliance needs a name", where=f"{where}.name")
        agent = agent_name(code, name)
        if not _AGENT_RE.fullmatch(agent):
            raise InputError(file, f"agent name {agent!r} is not [a-z0-9._-]", where=f"{where}.name",
                             fix="use lower-case letters, digits, '.', '_' and '-'")
        try:
            ip = ipaddress.ip_address(str(address)).compressed
        except ValueError:
            raise InputError(file, f"{address!r} is not an IP address", where=f"{where}.address") from None
        if agent in sources and sources[agent].ip != ip:
            raise InputError(file, f"appliance {name!r} appears twice with different addresses", where=where)
        sources[agent] = Source(agent, ip)
    return code, list(sources.values())


def _read_objects(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), "no objects.json in the inventory directory",
                         fix="point --inventory at a directory written by `msib inventory build`") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(str(path), "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"not valid JSON ({exc.msg})", where=f"line {exc.lineno}, column {exc.colno}",
                         fix="rebuild the inventory") from None
    if isinstance(data, dict) and isinstance(data.get("objects"), list):
        data = data["objects"]
    if not isinstance(data, list):
        raise InputError(str(path), "objects.json holds a JSON list of objects", fix="rebuild the inventory")
    out: dict[str, str] = {}
    for i, entry in enumerate(data):
        where = f"entry {i}"
        if not isinstance(entry, dict):
            raise InputError(str(path), "an object is a JSON object", where=where)
        for key in ("ip", "hostname", "circuit", "os_family"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise InputError(str(path), f"missing or empty {key!r}", where=f"{where}, key {key}",
                                 fix="rebuild the inventory")
        try:
            ip = ipaddress.ip_address(entry["ip"].strip()).compressed
        except ValueError:
            raise InputError(str(path), f"{entry['ip']!r} is not an IP address", where=f"{where}, key ip") from None
        if entry["circuit"] not in CIRCUITS:
            raise InputError(str(path), f"circuit {entry['circuit']!r} is not one of {', '.join(CIRCUITS)}",
                             where=f"{where}, key circuit")
        if entry["os_family"] not in OS_FAMILIES:
            raise InputError(str(path), f"os_family {entry['os_family']!r} is not one of {', '.join(OS_FAMILIES)}",
                             where=f"{where}, key os_family")
        if _VALUE_BAD.search(entry["hostname"]):
            raise InputError(str(path), f"hostname {entry['hostname']!r} holds ',', ':', '\"' or a line break",
                             where=f"{where}, key hostname", fix="hostnames are DNS names")
        value = f"{entry['hostname']},{entry['circuit']},{entry['os_family']}"
        if ip in out and out[ip] != value:
            raise InputError(str(path), f"IP {ip} appears twice with different objects", where=where,
                             fix="an IP belongs to one object; rebuild the inventory")
        out[ip] = value
    return out


def sb_inventory(directory: str | Path, *, url: str | None = None, ca_file: Path | None = None) -> SbInventory:
    """What sync needs of an inventory directory: its hosts.yml (:func:`msib.contract.load`) and objects.json.

    Args:
        directory: the directory `msib inventory build` wrote.
        url: overrides `all.vars.msib_siem.api.url`.
        ca_file: overrides `all.vars.msib_siem.api.ca_file`, else `all.vars.msib_siem.ca_file`
            (relative paths there are relative to the directory).

    Raises:
        InputError: naming the file and the place, before any request is sent.
    """
    inv = contract.load(directory)
    directory = inv.directory
    code, appliances = _sources(inv)
    objects = _read_objects(directory / "objects.json")
    api = inv.siem.api
    api_url = url or api.url
    if api_url is not None and not api_url.startswith("https://"):
        raise InputError(str(inv.hosts_file) if not url else "--url", f"{api_url!r} is not an https:// URL",
                         where=None if url else "all.vars.msib_siem.api.url", fix="the SIEM API is reached over TLS")
    if api.driver != "wazuh":
        raise InputError(str(inv.hosts_file), f"SIEM driver {api.driver!r} is not supported",
                         where="all.vars.msib_siem.api.driver", fix="use wazuh")
    ca = ca_file
    # the API's own CA file, else the SIEM's (site plan `siem.ca_file`, for syslog and API alike)
    named = api.ca_file or inv.siem.ca_file
    if ca is None and named:
        ca = Path(named)
        if not ca.is_absolute():
            ca = directory / ca
    return SbInventory(directory, code, tuple(appliances), objects, api_url, ca, api.driver)


# --- planning and applying ------------------------------------------------------------------------


def make_plan(inventory: SbInventory, siem: SiemDriver) -> Plan:
    """Read the SIEM's state under this SB's prefix (reads only) and compute the changes.

    Only agents whose name proves they are this SB's (`<code>.`, :func:`owner`) can be removed.
    The listing searches the bare code, so the same request also finds this SB's names from
    before the separator (`<code>-<appliance>`): those are reported as legacy and left alone.
    """
    listed = siem.list_agents(inventory.code)
    current = [a for a in listed if inventory.owns(a.name)]
    legacy = tuple(a for a in listed if a.name in inventory.legacy_names)
    wanted = {s.name: s for s in inventory.appliances}
    by_name: dict[str, list[Agent]] = {}
    for agent in current:
        by_name.setdefault(agent.name, []).append(agent)
    add: list[Source] = []
    remove: list[Agent] = []
    unchanged: list[Agent] = []
    for name, agents in sorted(by_name.items()):
        want = wanted.get(name)
        keep = next((a for a in agents if want is not None and a.ip == want.ip), None)
        for agent in agents:
            (unchanged if agent is keep else remove).append(agent)
    for name, source in sorted(wanted.items()):
        if not any(a.name == name for a in unchanged):
            add.append(source)
    current_list = siem.read_list(inventory.list_name)
    desired = dict(inventory.objects)
    have = current_list or {}
    same = sum(1 for k, v in desired.items() if have.get(k) == v)
    objects_add = len(desired) - same
    objects_remove = len(have) - same
    action: ListAction = "none"
    if desired and (current_list is None or objects_add or objects_remove):
        action = "publish"
    elif not desired and current_list is not None:
        action = "delete"
    return Plan(tuple(add), tuple(remove), tuple(unchanged), objects_add, objects_remove, same, action,
                inventory.list_name, desired, legacy)


def apply_plan(plan: Plan, siem: SiemDriver) -> None:
    """Carry the plan out: deregister first (so a changed address can re-register), then register,
    then publish the list. Sends nothing when there is nothing to do."""
    if plan.remove:
        siem.deregister(plan.remove)
    for source in plan.add:
        siem.register(source.name, source.ip)
    if plan.list_action == "publish":
        siem.publish_list(plan.list_name, plan.desired_list)
    elif plan.list_action == "delete":
        siem.delete_list(plan.list_name)


def sync(inventory: SbInventory, siem: SiemDriver, *, dry_run: bool = False) -> SyncResult:
    """Plan, and unless `dry_run`, apply; counts the requests this sync sent.

    Raises:
        SiemError: the SIEM refused or failed (what was done before stays done; run again).
    """
    before_r, before_w = siem.counts.read, siem.counts.write
    plan = make_plan(inventory, siem)
    if not dry_run and not plan.nothing_to_do:
        apply_plan(plan, siem)
    return SyncResult(plan, not dry_run and not plan.nothing_to_do,
                      siem.counts.read - before_r, siem.counts.write - before_w)


def describe(result: SyncResult, inventory: SbInventory, url: str, dry_run: bool) -> list[str]:
    """The plan and outcome as lines for a person."""
    p = result.plan
    n_objects = len(p.desired_list)
    lines = [f"SIEM {url}, SB {inventory.code}: {len(inventory.appliances)} appliances, {n_objects} objects"]
    if p.legacy:
        lines.append(f"note: {len(p.legacy)} agent(s) carry this SB's names from before the '.' separator "
                     f"({inventory.code}-<appliance>): "
                     f"{', '.join(a.name for a in p.legacy)}. A name without the '.' cannot prove which SB it "
                     "belongs to, so msib leaves them; remove them at the SIEM once these are registered as "
                     f"{inventory.prefix}<appliance>")
    if p.nothing_to_do:
        lines.append(f"nothing to do: {len(p.unchanged)} agents and list {p.list_name} ({p.objects_unchanged} "
                     f"objects) already match ({result.read_requests} read, {result.write_requests} write requests)")
        return lines
    lines.append(f"agents: add {len(p.add)}, remove {len(p.remove)}, unchanged {len(p.unchanged)}")
    lines += [f"  + {s.name} ({s.ip})" for s in p.add]
    lines += [f"  - {a.name} ({a.ip}, id {a.id})" for a in p.remove]
    what = {"none": "unchanged", "publish": "publish", "delete": "delete"}[p.list_action]
    lines.append(f"objects (list {p.list_name}, {what}): add {p.objects_add}, remove {p.objects_remove}, "
                 f"unchanged {p.objects_unchanged}")
    if dry_run:
        lines.append(f"dry run: nothing changed ({result.read_requests} read requests)")
    else:
        lines.append(f"applied: {result.write_requests} write, {result.read_requests} read requests")
    return lines


def run_sync(
    inventory_dir: Path,
    *,
    dry_run: bool = False,
    url: str | None = None,
    ca_file: Path | None = None,
    vault_file: Path | None = None,
    vault_password_file: Path | None = None,
    timeout: float = 30.0,
    system_ca: bool = False,
) -> tuple[SyncResult, SbInventory, str]:
    """What `msib siem sync` does: read the inventory and credentials, connect, sync.

    The SIEM's certificate is verified against the site's CA (`ca_file`, else the inventory's); the
    system's trust store only when asked (`system_ca`): a public CA vouches for anyone's name.

    Raises:
        InputError: bad inventory, arguments or credentials (exit 2).
        SiemError: the SIEM refused or failed (exit 1).
    """
    from msib.siem import credentials
    from msib.siem.wazuh import WazuhDriver

    inventory = sb_inventory(inventory_dir, url=url, ca_file=ca_file)
    if inventory.api_url is None:
        raise InputError(str(inventory_dir / "hosts.yml"), "no SIEM API URL", where="all.vars.msib_siem.api.url",
                         fix="set it in the site plan, or pass --url")
    if inventory.ca_file is None and not system_ca:
        raise InputError(str(inventory_dir / "hosts.yml"), "no CA for the SIEM's certificate",
                         where="all.vars.msib_siem.api.ca_file",
                         fix="set siem.ca_file in the site plan or pass --ca-file; --system-ca trusts the system's "
                             "store instead (any public CA could then vouch for the SIEM)")
    creds = credentials.resolve(vault_file, vault_password_file)
    with WazuhDriver(inventory.api_url, creds, ca_file=inventory.ca_file, timeout=timeout) as siem:
        result = sync(inventory, siem, dry_run=dry_run)
    return result, inventory, inventory.api_url
