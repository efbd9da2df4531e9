"""Appendix + site plan -> the inventory directory every engine, `siem sync` and `check` reads.

One model (:func:`inventory_model`) and its views, written together and atomically:

==========================  ===================================================================
``hosts.yml``               Ansible YAML inventory: the site plan's appliances, groups per role,
                            circuit and SB, and the vars the roles need (docs/inventory-contract.md)
``pyinfra_inventory.py``    a small loader that builds pyinfra groups from ``hosts.yml`` (a view)
``objects.json``            every accepted object of the appendix
``report.json``/``.md``     counts, every rejected row with where to fix it, end-of-life OSes
``site.json``               the site plan as validated, without its ``excluded`` entries
==========================  ===================================================================

The directory is replaced as a whole: a complete new set appears, or the old one stays
(:func:`write_atomically`). The same inputs give byte-identical files; the only date in them is
`as_of`.

Example:
    >>> result = build_inventory("inventories/lab/site.yml",
    ...                          ["inventories/lab/appendix.xlsx"], "/tmp/inv",
    ...                          as_of=dt.date(2025, 7, 1))                    # doctest: +SKIP
    >>> result.objects, result.rejected                                        # doctest: +SKIP
    (33, 8)
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import gc
import json
import os
import re
import shutil
import socket
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import eq, is_, itemgetter
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Final

import orjson
import yaml

from msib.appendix import (
    OS_FAMILIES,
    REASONS,
    Appendix,
    OsFamily,
    ReadResult,
    Reason,
    Rejection,
    check_rows,
    os_table,
    read_appendix,
)
from msib.errors import InputError, MsibError
from msib.site import ROLES, Appliance, CircuitName, SitePlan, load_site

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


@dataclass(frozen=True)
class BuildResult:
    """What one build wrote: counts for people, the lab and schedulers."""

    out_dir: Path
    as_of: dt.date
    data_rows: int
    objects: int
    rejected: int
    excluded: int
    appliances: int
    os_eol: int
    by_reason: Mapping[Reason, int]
    by_circuit: Mapping[CircuitName, int]
    by_os_family: Mapping[OsFamily, int]
    files: tuple[str, ...] = field(default=INVENTORY_FILES)

    def summary(self) -> str:
        """One line for the terminal."""
        circ = ", ".join(f"{c} {n}" for c, n in self.by_circuit.items())
        reasons = ", ".join(f"{r} {n}" for r, n in self.by_reason.items() if n and r != "excluded")
        text = f"{self.objects} objects ({circ or 'none'}), {self.appliances} appliances"
        text += f"; {self.rejected - self.excluded} rows rejected" + (f" ({reasons})" if reasons else "")
        if self.excluded:
            text += f", {self.excluded} excluded"
        if self.os_eol:
            text += f"; {self.os_eol} objects past OS end of life"
        return text


class RowsRejected(MsibError):
    """`--strict` and at least one row was rejected: nothing was written (exit status 1)."""

    exit_code = 1

    def __init__(self, rejected: Sequence[Rejection]) -> None:
        self.rejected = tuple(rejected)
        super().__init__(f"{len(self.rejected)} rows rejected and --strict given: nothing written")


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


# --- rendering --------------------------------------------------------------------------------------


class _Dumper(yaml.CSafeDumper):
    """Plain YAML: no anchors/aliases, block style, Unicode kept."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_SENDERS_MARK: Final = "__msib_senders_{}__"


def _yaml_scalar(ip: str) -> str:
    return ip if ":" not in ip else json.dumps(ip)


def render_hosts_yml(model: Mapping[str, Any]) -> bytes:
    """``hosts.yml`` text of the model.

    The circuits' `senders` lists (one line per object address, possibly tens of thousands) are
    written directly rather than through the YAML representer; the result is the same YAML.
    """
    head = (
        "# Ansible inventory written by `msib inventory build`: do not edit, build again.\n"
        "# pyinfra reads the same hosts through pyinfra_inventory.py beside this file.\n"
    )
    circuits = model["all"]["vars"]["msib_circuits"]
    shallow = {**model["all"], "vars": {**model["all"]["vars"], "msib_circuits": {
        name: {**c, "senders": _SENDERS_MARK.format(name)} for name, c in circuits.items()
    }}}
    body = yaml.dump(
        {"all": shallow}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False,
        width=4096,
    )
    for name, circuit in circuits.items():
        mark = f"senders: {_SENDERS_MARK.format(name)}\n"
        at = body.index(mark)
        indent = body[body.rindex("\n", 0, at) + 1 : at]
        if circuit["senders"]:
            items = circuit["senders"] if not _has_ipv6(circuit["senders"]) else map(_yaml_scalar, circuit["senders"])
            text = f"senders:\n{indent}- " + f"\n{indent}- ".join(items) + "\n"
        else:
            text = "senders: []\n"
        body = body[:at] + text + body[at + len(mark) :]
    return (head + body).encode("utf-8")


PYINFRA_INVENTORY: Final = '''\
"""pyinfra inventory written by `msib inventory build`: do not edit, build again.

A view of hosts.yml beside this file (the one model): the same hosts, groups and data.
Linux appliances only; vendor firewalls (group `netdev`) are driven with netmiko, not pyinfra.

    pyinfra DIR/pyinfra_inventory.py deploy/collector.py
"""

import os as _os

import yaml as _yaml

_SKIP = ("netdev",)


def _load():
    here = _os.path.dirname(_os.path.abspath(__file__))
    with open(_os.path.join(here, "hosts.yml"), encoding="utf-8") as f:
        inventory = _yaml.safe_load(f)["all"]
    common = {k: v for k, v in inventory["vars"].items() if k.startswith("msib_")}
    ssh = inventory["vars"]["msib_ssh"]
    groups = inventory["children"]
    hosts = {}
    for name, group in groups.items():
        if name in _SKIP:
            continue
        for host, hvars in ((group or {}).get("hosts") or {}).items():
            if hvars:
                hosts[host] = hvars

    def data(host):
        hvars = hosts[host]
        out = {
            "ssh_hostname": hvars["ansible_host"],
            "ssh_port": hvars["msib_appliance"]["port"],
            "ssh_user": ssh["user"],
            "ssh_strict_host_key_checking": "yes",
        }
        if ssh.get("key_file"):
            out["ssh_key"] = ssh["key_file"]
        if ssh.get("known_hosts_file"):
            out["ssh_known_hosts_file"] = ssh["known_hosts_file"]
        if ssh.get("config_file"):
            out["ssh_config_file"] = ssh["config_file"]
        if ssh["user"] != "root":
            out["_sudo"] = True
        out.update(common)
        out.update({k: v for k, v in hvars.items() if k.startswith("msib_")})
        return out

    def members(name, seen=()):
        group = groups.get(name) or {}
        found = [h for h in (group.get("hosts") or {}) if h in hosts]
        for child in group.get("children") or {}:
            if child not in _SKIP and child not in seen:
                found += [h for h in members(child, (*seen, name)) if h not in found]
        return found

    return {
        name: [(host, data(host)) for host in members(name)]
        for name in groups
        if name not in _SKIP
    }


for _name, _hosts in _load().items():
    globals()[_name] = _hosts
'''


def _json_bytes(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"


_OBJECTS_BATCH: Final = 2000  # rows per piece written: ~1.4 MB, reused memory rather than fresh pages

#: The keys of an ``objects.json`` entry after ``ip``, whose values are few and are encoded together:
#: the five OS fields (they follow from the OS as typed), the circuit, the source's file and sheet.
_OS_KEYS: Final = ("os", "os_raw", "os_family", "os_eol", "os_eol_date")
_TAIL_KEYS: Final = (*_OS_KEYS, "circuit", "file", "sheet")


def _json_values(values: Sequence[Any], prefix: bytes = b"", suffix: bytes = b"") -> list[bytes]:
    """Each value as ``prefix + JSON + suffix`` (the JSON as orjson writes it), encoded once per distinct value.

    The distinct strings are encoded in one orjson call (see :func:`_json_strings`); a column holding
    other values than strings and None is encoded value by value (``1 == True`` in a dict).
    """
    distinct = set(values)
    strings = [v for v in distinct if type(v) is str]
    if len(strings) + (None in distinct) < len(distinct):
        return [prefix + orjson.dumps(v) + suffix for v in values]
    texts: dict[str | None, bytes] = {None: prefix + b"null" + suffix}
    texts.update(zip(strings, [b'%b"%b"%b' % (prefix, p, suffix) for p in _json_strings(strings)], strict=True))
    return list(map(texts.__getitem__, values))


def _json_strings(values: Sequence[str]) -> list[bytes]:
    """The JSON text of each string without its quotes, all encoded in one orjson call.

    ``orjson.dumps(values)`` is split at ``","``, which never occurs inside a JSON string (its
    quotes are escaped). A value that is not a string makes fewer pieces than values (or, alone,
    has no quotes around it): a TypeError.
    """
    if not values:
        return []
    data = orjson.dumps(values)
    pieces = data[2:-2].split(b'","')
    if len(pieces) != len(values) or data[1:2] != b'"' or data[-2:-1] != b'"':
        raise TypeError(f"not a string: {next(v for v in values if type(v) is not str)!r}")
    return pieces


def _json_tails(columns: Sequence[Sequence[Any]]) -> list[bytes]:
    """The end of each entry from ``ip``'s closing quote to the row number (the columns of
    :data:`_TAIL_KEYS`), encoded once per distinct combination of values.

    A column holding one value throughout (usually the file and the sheet) is left out of the
    combinations: fewer values to hash per row.
    """
    n = len(columns[0])
    varying = [k for k, column in enumerate(columns) if column.count(column[0]) != n]
    rows = list(zip(*(columns[k] for k in varying), strict=True)) if varying else []

    def encode(combo: tuple[Any, ...]) -> bytes:
        values = [column[0] for column in columns]
        for k, value in zip(varying, combo, strict=True):
            values[k] = value
        *os_values, circuit, file, sheet = values
        os_part = b",".join(b"%b:%b" % (orjson.dumps(k), orjson.dumps(v)) for k, v in zip(_OS_KEYS, os_values,
                                                                                        strict=True))
        return b'",%b,"circuit":%b,"source":{"file":%b,"sheet":%b,"row":' % (
            os_part, orjson.dumps(circuit), orjson.dumps(file), orjson.dumps(sheet))

    if not varying:
        return [encode(())] * n
    texts = {combo: encode(combo) for combo in set(rows)}
    return list(map(texts.__getitem__, rows))


def _json_ints(values: Sequence[int]) -> list[bytes]:
    """Each integer as JSON text, all encoded in one orjson call."""
    return orjson.dumps(values)[1:-1].split(b",") if values else []


def iter_objects_json(appendix: Appendix) -> Iterator[bytes]:
    """``objects.json`` in pieces: a JSON array with one object per line (greppable, diffable).

    Each entry is byte for byte ``orjson.dumps(AppendixObject.to_json())`` (a test holds it to
    that). Each column is encoded at once (each distinct value once), then the lines are
    assembled by interleaving the columns with the constant text between them and joined a batch
    at a time: no Python code runs per row, and a 50,000-row appendix is never held whole as
    JSON.
    """
    n = appendix.object_count
    if not n:
        yield b"[]\n"
        return
    col = appendix.column
    parts: list[list[bytes] | bytes] = [  # a column of texts, or a constant text
        _json_values(col("sb"), b'{"sb":', b',"department":'),
        _json_values(col("department")),
        b',"location":',
        _json_values(col("location")),
        b',"responsible":',
        _json_values(col("responsible")),
        b',"hostname":"',
        _json_strings(col("hostname")),
        b'","ip":"',
        _json_strings(col("ip")),
        _json_tails([col(k) for k in _TAIL_KEYS]),
        _json_ints(col("row")),
        b"}},\n",
    ]
    width = len(parts)
    yield b"[\n"
    for start in range(0, n, _OBJECTS_BATCH):
        stop = min(start + _OBJECTS_BATCH, n)
        pieces: list[bytes] = [b""] * (width * (stop - start))
        for k, part in enumerate(parts):
            pieces[k::width] = [part] * (stop - start) if isinstance(part, bytes) else part[start:stop]
        if stop == n:
            pieces[-1] = b"}}\n"
        yield b"".join(pieces)
    yield b"]\n"


def render_objects_json(appendix: Appendix) -> bytes:
    """``objects.json`` as one piece of bytes (see :func:`iter_objects_json`)."""
    return b"".join(iter_objects_json(appendix))


def _counts(plan: SitePlan, appendix: Appendix) -> dict[str, Any]:
    by_reason: Counter[str] = Counter(r.reason for r in appendix.rejected)
    by_circuit: Counter[str] = Counter()
    by_family: Counter[str] = Counter()
    by_eol: Counter[bool | None] = Counter()
    for (circuit, family, eol, _, _), n in appendix.stats.items():
        by_circuit[circuit] += n
        by_family[family] += n
        by_eol[eol] += n
    skipped: Counter[str] = Counter(s.kind for s in appendix.skipped)
    return {
        "data_rows": appendix.data_rows,
        "objects": appendix.object_count,
        "rejected": len(appendix.rejected),
        "excluded": by_reason["excluded"],
        "by_reason": {r: by_reason[r] for r in REASONS},
        "by_circuit": {c: by_circuit[c] for c in plan.circuits},
        "by_os_family": {f: by_family[f] for f in OS_FAMILIES},
        "os_eol": by_eol[True],
        "os_eol_unknown": by_eol[None],
        "appliances": sum(1 for _ in plan.appliances()),
        "skipped_rows": {k: skipped[k] for k in sorted(skipped)},
    }


def _eol_groups(appendix: Appendix) -> list[dict[str, Any]]:
    groups: Counter[tuple[str, str | None]] = Counter()
    for (_, _, eol, name, date), n in appendix.stats.items():
        if eol is True:
            groups[name or "", date] += n
    return [
        {"os": name, "eol_date": date, "objects": n}
        for (name, date), n in sorted(groups.items(), key=lambda kv: (kv[0][1] or "", kv[0][0]))
    ]


def report_data(plan: SitePlan, appendix: Appendix) -> dict[str, Any]:
    """The content of ``report.json``."""
    return {
        "sb": {"code": plan.code, "state_body": plan.state_body},
        "as_of": appendix.as_of.isoformat(),
        "inputs": [i.to_json() for i in appendix.inputs],
        "sheets": [s.to_json() for s in appendix.sheets],
        "counts": _counts(plan, appendix),
        "os_eol": _eol_groups(appendix),
        "rejected": [r.to_json() for r in appendix.rejected],
        "warnings": [w.to_json() for w in appendix.warnings],
        "skipped": [s.to_json() for s in appendix.skipped],
    }


_MD_SPECIAL: Final = re.compile(r"[\\|`]|[^\S ]|  |^ | $")


def _md(text: object) -> str:
    """A value for a Markdown table cell: one line, `|`, `\\` and backquotes escaped."""
    if text is None:
        return ""
    s = str(text)
    if _MD_SPECIAL.search(s) is None:  # the common case: nothing to do
        return s
    s = " ".join(s.split())
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def _where(file: str, sheet: str | None, row: int) -> str:
    if sheet is None:
        return f"{file}, line {row}"
    return f"{file}, sheet {sheet}, row {row}"


def _gather[T](seq: Sequence[T], indexes: Sequence[int]) -> list[T]:
    """`[seq[i] for i in indexes]`, at C speed (tens of thousands of rows)."""
    if len(indexes) == len(seq):
        return list(seq)  # the indexes are always increasing: all of them means every item
    if len(indexes) < 2:
        return [seq[i] for i in indexes]
    return list(itemgetter(*indexes)(seq))


def _eol_object_lines(appendix: Appendix) -> list[str]:
    """The table rows of ``report.md`` naming each object past end of life (OS text and place made
    Markdown once per distinct value)."""
    col = appendix.column
    past = list(compress(range(appendix.object_count), map(is_, col("os_eol"), repeat(True))))
    if not past:
        return []
    raw_md = {raw: _md(raw) for raw in set(_gather(col("os_raw"), past))}
    where_md: dict[tuple[str, str | None], str] = {}
    for file, sheet in set(zip(_gather(col("file"), past), _gather(col("sheet"), past), strict=True)):
        where_md[file, sheet] = _md(_where(file, sheet, 0)).removesuffix(" 0")
    return [
        f"| {host} | {ip} | {circuit} | {raw_md[raw]} | {where_md[file, sheet]} {row} |"
        for host, ip, circuit, raw, file, sheet, row in zip(
            *(_gather(col(name), past) for name in ("hostname", "ip", "circuit", "os_raw", "file", "sheet", "row")),
            strict=True,
        )
    ]


def render_report_md(plan: SitePlan, appendix: Appendix, data: Mapping[str, Any]) -> bytes:
    """``report.md``: the report for a person."""
    counts = data["counts"]
    out: list[str] = [
        f"# Inventory report: {_md(plan.state_body)} (`{plan.code}`)",
        "",
        f"As of {appendix.as_of.isoformat()} (decides which operating systems are past end of life).",
        "",
    ]
    if appendix.inputs:
        out += ["Read:", ""]
        for inp in appendix.inputs:
            extra = f", {inp.encoding}, delimiter {inp.delimiter!r}" if inp.format == "csv" else ""
            out.append(f"- `{_md(inp.file)}` ({inp.format}{extra}; sha256 {inp.sha256[:12]})")
        out.append("")
    else:
        out += ["No appendix given: the inventory holds the site plan's appliances only.", ""]
    out += [
        f"**{counts['objects']} objects** accepted of {counts['data_rows']} data rows; "
        f"**{counts['rejected'] - counts['excluded']} rejected**, {counts['excluded']} excluded by the site plan; "
        f"{counts['appliances']} appliances.",
        "",
        "## Objects per circuit",
        "",
        "| circuit | objects | " + " | ".join(OS_FAMILIES) + " | past end of life | end of life unknown |",
        "|---|---:|" + "---:|" * len(OS_FAMILIES) + "---:|---:|",
    ]
    fam_by: Counter[tuple[str, str]] = Counter()
    eol_by: Counter[tuple[str, bool | None]] = Counter()
    for (circ, family, past, _, _), n in appendix.stats.items():
        fam_by[circ, family] += n
        eol_by[circ, past] += n
    for cname in plan.circuits:
        fam = {f: fam_by[cname, f] for f in OS_FAMILIES}
        objs = sum(fam.values())
        n_eol, n_unknown = eol_by[cname, True], eol_by[cname, None]
        out.append(
            f"| {cname} | {objs} | " + " | ".join(str(fam[f]) for f in OS_FAMILIES) + f" | {n_eol} | {n_unknown} |"
        )
    fam_all = counts["by_os_family"]
    out.append(
        f"| **all** | {counts['objects']} | " + " | ".join(str(fam_all[f]) for f in OS_FAMILIES)
        + f" | {counts['os_eol']} | {counts['os_eol_unknown']} |"
    )
    out += ["", "## Operating systems past end of life", ""]
    if not counts["os_eol"]:
        out += ["None.", ""]
    else:
        out += ["| OS | end of life | objects |", "|---|---|---:|"]
        for g in data["os_eol"]:
            out.append(f"| {_md(g['os'])} | {g['eol_date']} | {g['objects']} |")
        out += ["", "| hostname | IP | circuit | OS as typed | where |", "|---|---|---|---|---|"]
        out += _eol_object_lines(appendix)
        out.append("")
    out += ["## Rejected rows", ""]
    if not appendix.rejected:
        out += ["None: every data row became an object.", ""]
    else:
        by_reason = counts["by_reason"]
        out.append(", ".join(f"`{r}` {n}" for r, n in by_reason.items() if n) + ".")
        out += ["", "| where | column | reason | value | what is wrong and what to do |", "|---|---|---|---|---|"]
        for r in appendix.rejected:
            value = "" if r.reason == "excluded" else _md(r.value)
            out.append(
                f"| {_md(_where(r.file, r.sheet, r.row))} | {r.column or ''} | `{r.reason}` | {value} | "
                f"{_md(r.message)} |"
            )
        out.append("")
    if appendix.warnings:
        out += ["## Worth a look", ""]
        for w in appendix.warnings:
            rows = "; ".join(_where(s.file, s.sheet, s.row) for s in w.rows)
            out.append(f"- `{w.code}`: {_md(w.message)} ({_md(rows)})")
        out.append("")
    skipped = counts["skipped_rows"]
    if skipped:
        out += [
            "## Rows skipped on purpose",
            "",
            "Not objects: " + ", ".join(f"{k} {n}" for k, n in skipped.items())
            + " (each listed in report.json under `skipped`).",
            "",
        ]
    hidden = [s for s in appendix.sheets if s.status in ("hidden", "not_a_worksheet")]
    if hidden:
        out.append("Sheets not read: " + ", ".join(f"{_md(s.sheet)} ({s.status})" for s in hidden) + ".")
        out.append("")
    return ("\n".join(out).rstrip("\n") + "\n").encode("utf-8")


def render_site_json(plan: SitePlan) -> bytes:
    """``site.json``: the validated site plan without `excluded`."""
    data = plan.model_dump(mode="json", exclude={"excluded"})
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def iter_inventory_files(
    plan: SitePlan, appendix: Appendix, *, ssh: SshSettings | None = None, site_dir: Path | None = None
) -> Iterator[tuple[str, bytes | Iterable[bytes]]]:
    """Render the inventory files one by one, the largest (objects.json, itself in pieces) first.

    A generator, so that :func:`write_atomically` can write one file while the next is rendered.
    """
    yield "objects.json", iter_objects_json(appendix)
    yield "hosts.yml", render_hosts_yml(inventory_model(plan, appendix, ssh=ssh, site_dir=site_dir))
    yield "pyinfra_inventory.py", PYINFRA_INVENTORY.encode("utf-8")
    report = report_data(plan, appendix)
    yield "report.json", _json_bytes(report)
    yield "report.md", render_report_md(plan, appendix, report)
    yield "site.json", render_site_json(plan)


def render_inventory(
    plan: SitePlan, appendix: Appendix, *, ssh: SshSettings | None = None, site_dir: Path | None = None
) -> dict[str, bytes]:
    """Every file of the inventory directory, as bytes, in :data:`INVENTORY_FILES` order (nothing is written)."""
    files = {
        name: data if isinstance(data, bytes) else b"".join(data)
        for name, data in iter_inventory_files(plan, appendix, ssh=ssh, site_dir=site_dir)
    }
    return {name: files[name] for name in INVENTORY_FILES}


# --- atomic directory replacement -------------------------------------------------------------------

_RENAME_EXCHANGE: Final = 2
_AT_FDCWD: Final = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False when not supported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_out_dir(out: Path) -> None:
    """Refuse an output path that is a file, or a directory holding files msib did not write.

    Raises:
        InputError: naming the path and what to do (nothing is written).
    """
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "exists and is not a directory", fix="choose a directory for the inventory")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in INVENTORY_FILES)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
            raise InputError(
                str(out),
                f"holds files that are not part of an inventory ({shown}); the build replaces the whole directory",
                fix="choose an empty or new directory for --out",
            )


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _write_file(path: Path, data: bytes | Iterable[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    with os.fdopen(fd, "wb") as f:
        if isinstance(data, bytes):
            f.write(data)
        else:
            for chunk in data:
                f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def _write_pieces(pool: ThreadPoolExecutor, path: Path, pieces: Iterable[bytes]) -> Future[None]:
    """Write a file given in pieces: they are produced here and written by a thread of `pool` as
    they come (the thread holds the GIL only between two writes), then flushed to disk there."""
    queue: SimpleQueue[bytes | None] = SimpleQueue()
    done = pool.submit(_write_file, path, iter(queue.get, None))
    try:
        for piece in pieces:
            queue.put(piece)
    finally:
        queue.put(None)  # the end, also when producing failed: the writer thread always finishes
    return done


def write_atomically(
    out: Path,
    files: Mapping[str, bytes | Iterable[bytes]] | Iterable[tuple[str, bytes | Iterable[bytes]]],
    *,
    discard: Callable[[Path], object] = shutil.rmtree,
) -> None:
    """Replace directory `out` by one holding exactly `files`: all of them, or `out` as it was.

    The files are written (and flushed to disk) in a temporary directory beside `out` — by
    background threads while the next file is produced, when `files` is a generator — and swapped
    in with one rename (an atomic exchange when `out` exists, on Linux). Any error, also one raised
    by the generator, removes the temporary directory and leaves `out` untouched.

    A file's content is bytes, or an iterable of byte pieces (produced by the calling thread and
    written by another as they come).

    Args:
        out: the directory to replace (created when missing).
        files: file name -> content, as a mapping or as (name, content) pairs.
        discard: removes the replaced set (a directory beside `out`) once the new one is in place;
            :func:`build_inventory` hands that to a thread.

    Raises:
        InputError: `out` is a file, or a directory holding files that are not an inventory's.
    """
    out = Path(out)
    check_out_dir(out)
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=parent))
    items = files.items() if isinstance(files, Mapping) else files
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        names: set[str] = set()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="msib-write") as pool:
            pending = []
            for name, data in items:
                if name not in INVENTORY_FILES or name in names:
                    raise ValueError(f"not an inventory file, or given twice: {name!r}")
                names.add(name)
                if isinstance(data, bytes):
                    pending.append(pool.submit(_write_file, tmp / name, data))
                else:
                    pending.append(_write_pieces(pool, tmp / name, data))
            for done in pending:
                done.result()
        _fsync_dir(tmp)
        if out.exists():
            if _exchange(tmp, out):
                discard(tmp)  # the old set, now at tmp
            else:
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
                os.rmdir(old)
                os.rename(out, old)
                try:
                    os.rename(tmp, out)
                except BaseException:
                    os.rename(old, out)
                    raise
                discard(old)
        else:
            os.rename(tmp, out)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- the build --------------------------------------------------------------------------------------


def _check_plan_for_build(plan: SitePlan, appendix: Appendix, site: str) -> None:
    if plan.code in _RESERVED_GROUPS:
        raise InputError(site, f"code {plan.code!r} is also the name of an inventory group", where="code",
                         fix="choose another code")
    by_circuit: Counter[CircuitName] = Counter()
    for (circ, *_), n in appendix.stats.items():
        by_circuit[circ] += n
    for cname, n in by_circuit.items():
        circuit = plan.circuits.get(cname)
        if circuit is not None and n and not circuit.by_role("collector"):
            raise InputError(
                site,
                f"the {cname} circuit has {n} objects in the appendix but no collector to send their logs to",
                where=f"circuits.{cname}.appliances",
                fix="add an appliance with role collector to the circuit",
            )


def _check_ssh(ssh: SshSettings) -> None:
    for flag, path in (("--ssh-config", ssh.ssh_config), ("--ssh-key", ssh.identity_file)):
        if path is not None and not Path(path).expanduser().is_file():
            raise InputError(str(path), "no such file", where=flag, fix="check the path")
    if ssh.user is not None:
        import re

        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", ssh.user):
            raise InputError("--ssh-user", f"{ssh.user!r} is not a valid user name", fix="use a POSIX user name")


def build_inventory(
    site_path: str | Path,
    appendix_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    as_of: dt.date | None = None,
    strict: bool = False,
    ssh: SshSettings | None = None,
) -> BuildResult:
    """Build one SB's inventory directory from its site plan and appendix files.

    Args:
        site_path: the site plan (`site.yml`).
        appendix_paths: `.xlsx`/`.csv` appendix files, any mix; may be empty (appliances only).
        out_dir: the inventory directory, replaced as a whole (created if missing).
        as_of: the day that decides what is past end of life (default: today).
        strict: refuse to write anything when a row is rejected.
        ssh: connection settings for the engines (host keys are always checked strictly).

    Returns:
        The counts of what was written.

    Raises:
        InputError: an unusable input or output path (exit status 2); nothing is written.
        RowsRejected: `strict` and some row was rejected (exit status 1); nothing is written.

    Example:
        >>> build_inventory("site.yml", ["appendix.xlsx"], "inv").objects    # doctest: +SKIP
        40
    """
    if as_of is not None and not isinstance(as_of, dt.date):
        raise InputError("--as-of", f"{as_of!r} is not a date", fix="give the date as YYYY-MM-DD")
    out = Path(out_dir)
    ssh = ssh or SshSettings()
    paths = [Path(p) for p in appendix_paths]
    check_out_dir(out)
    _check_ssh(ssh)
    site = Path(site_path)
    with _gc_paused(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="msib-discard") as discarding:
        plan, reads = _read_inputs(site, paths)
        appendix = check_rows(reads, plan, as_of=as_of or dt.date.today())
        _check_plan_for_build(plan, appendix, str(site))
        if strict and appendix.rejected:
            raise RowsRejected(appendix.rejected)
        counts = _counts(plan, appendix)
        day = appendix.as_of
        old_set: list[Future[None]] = []
        files = iter_inventory_files(plan, appendix, ssh=ssh, site_dir=site.absolute().parent)
        # the rows as read are freed once the files are rendered, while they are flushed to disk
        write_atomically(out, _then(files, reads.clear),
                         discard=lambda path: old_set.append(discarding.submit(_remove_old_set, path)))
        del files, appendix  # freed while the replaced set is removed (unlink runs without the GIL)
        for removed in old_set:
            removed.result()
    return BuildResult(
        out_dir=out,
        as_of=day,
        data_rows=counts["data_rows"],
        objects=counts["objects"],
        rejected=counts["rejected"],
        excluded=counts["excluded"],
        appliances=counts["appliances"],
        os_eol=counts["os_eol"],
        by_reason=dict(counts["by_reason"]),
        by_circuit=dict(counts["by_circuit"]),
        by_os_family=dict(counts["by_os_family"]),
    )


def _then[T](items: Iterable[T], finish: Callable[[], object]) -> Iterator[T]:
    """The items, then `finish()` once the last one is taken."""
    yield from items
    finish()


def _remove_old_set(path: Path) -> None:
    """Remove a replaced inventory directory, objects.json first: the file whose unlink takes long
    (freeing tens of megabytes), which then runs while the caller goes on."""
    with suppress(FileNotFoundError, IsADirectoryError):
        os.unlink(path / "objects.json")
    shutil.rmtree(path)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while tens of thousands of rows are built (nothing cyclic is)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_inputs(site: Path, paths: Sequence[Path]) -> tuple[SitePlan, list[ReadResult]]:
    """The site plan and every appendix: files are parsed in threads (calamine releases the GIL)
    while the plan is validated. Errors are raised in a fixed order: the plan, then the files as given."""
    if not paths:
        return load_site(site), []
    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1, 4),
                            thread_name_prefix="msib-read") as pool:
        futures = [pool.submit(read_appendix, p) for p in paths]
        try:
            plan = load_site(site)
            os_table()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return plan, [f.result() for f in futures]


__all__ = [
    "INVENTORY_FILES",
    "BuildResult",
    "RowsRejected",
    "SshSettings",
    "build_inventory",
    "inventory_model",
    "render_inventory",
    "write_atomically",
]
