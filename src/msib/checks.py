"""Compliance checks of the appliances: the catalogue, the inventory view, the runner.

The checks themselves are testinfra tests in ``checks/`` (one file per role, ``checks/test_<role>.py``),
each registered with :func:`check` under an ID of ``checks/catalogue.yml`` (title, severity, the
clause of the Rules or the reason it exists). They can run under plain pytest (molecule's verify)::

    pytest -c checks/pytest.ini checks --hosts ssh://col-int-1 --ssh-config SSH_CONFIG --sudo \\
        --msib-inventory DIR

:func:`run_checks` (``msib check``) runs them over every appliance of an inventory in parallel:
one pytest process per host, over ``ssh://`` with strict host keys (never ``paramiko://``), the
connections multiplexed per host; each result comes back with its evidence.

Example:
    >>> run = run_checks(Path("/var/lib/msib-lab/inventory"))     # doctest: +SKIP
    >>> run.counts()                                               # doctest: +SKIP
    {'passed': 72, 'failed': 0, 'errors': 0}
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

import jinja2
import yaml

from msib import render
from msib.errors import CheckError, InputError

Severity = Literal["critical", "high", "medium", "low"]
Outcome = Literal["passed", "failed", "error"]
CheckRole = Literal["all", "collector", "ids_sensor", "firewall"]

#: Inventory groups whose hosts msib checks (Linux appliances; `netdev` devices are not SSH shells).
CHECKED_ROLES: tuple[str, ...] = ("collector", "ids_sensor", "firewall")
SEVERITIES: tuple[str, ...] = get_args(Severity)
ID_RE = re.compile(r"^MSIB-(HOST|COL|IDS|FW)-\d{3}$")
#: Default number of hosts checked at once.
DEFAULT_WORKERS = 8
#: Seconds one host's checks may take before the host is an error.
HOST_TIMEOUT_S = 600.0
RESULT_PREFIX = "MSIB-RESULT "


class CheckRunError(CheckError):
    """Checking could not start or a host could not be checked at all (exit status 2)."""

    exit_code = 2


def checks_dir() -> Path:
    """Where the checks live: ``$MSIB_CHECKS_DIR`` or ``checks/`` at the repository root."""
    env = os.environ.get("MSIB_CHECKS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checks"


# --- the catalogue and the registry ----------------------------------------------------------------


@dataclass(frozen=True)
class CheckSpec:
    """One catalogue entry: what a check proves, on which appliances, and why it exists."""

    id: str
    role: CheckRole
    title: str
    severity: Severity
    clause: str


@functools.cache
def catalogue(path: Path | None = None) -> dict[str, CheckSpec]:
    """The checks of ``checks/catalogue.yml`` by ID, validated.

    Raises:
        InputError: the file is missing or an entry lacks a field or has a bad value.
    """
    path = path or checks_dir() / "catalogue.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(str(path), f"cannot read the check catalogue: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "the catalogue must be a mapping of check IDs")
    out: dict[str, CheckSpec] = {}
    for cid, entry in data.items():
        where = str(cid)
        if not ID_RE.match(str(cid)):
            raise InputError(str(path), "bad check ID", where=where, fix="MSIB-<HOST|COL|IDS|FW>-NNN")
        if not isinstance(entry, dict) or set(entry) != {"role", "title", "severity", "clause"}:
            raise InputError(str(path), "each check needs exactly role, title, severity, clause", where=where)
        if entry["role"] not in ("all", *CHECKED_ROLES):
            raise InputError(str(path), f"unknown role {entry['role']!r}", where=where,
                             fix=f"one of: all, {', '.join(CHECKED_ROLES)}")
        if entry["severity"] not in SEVERITIES:
            raise InputError(str(path), f"unknown severity {entry['severity']!r}", where=where,
                             fix=f"one of: {', '.join(SEVERITIES)}")
        out[str(cid)] = CheckSpec(id=str(cid), role=entry["role"], title=str(entry["title"]),
                                  severity=entry["severity"], clause=" ".join(str(entry["clause"]).split()))
    return out


def applies(spec: CheckSpec, role: str) -> bool:
    """Whether the check runs on an appliance of `role`.

    >>> applies(CheckSpec("MSIB-HOST-001", "all", "t", "high", "c"), "firewall")
    True
    """
    return spec.role in ("all", role)


def checks_for(role: str) -> list[CheckSpec]:
    """The catalogue's checks that run on an appliance of `role`, in ID order."""
    return [s for s in catalogue().values() if applies(s, role)]


F = TypeVar("F", bound=Callable[..., Any])


def check(check_id: str) -> Callable[[F], F]:
    """Register a testinfra test function as the implementation of catalogue check `check_id`.

    Example:
        >>> @check("MSIB-HOST-005")                         # doctest: +SKIP
        ... def test_systemd_running(host, evidence): ...

    Raises:
        InputError: `check_id` is not in the catalogue.
    """
    spec = catalogue().get(check_id)
    if spec is None:
        raise InputError("checks/catalogue.yml", f"check {check_id} is used in code but not catalogued")

    def mark(func: F) -> F:
        func.msib_check = spec  # type: ignore[attr-defined]
        return func

    return mark


# --- the inventory, as the checks see it -----------------------------------------------------------


@dataclass(frozen=True)
class SshInfo:
    """How to reach the appliances (from ``msib_ssh`` in hosts.yml)."""

    user: str | None = None
    config_file: str | None = None
    known_hosts_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class InventoryHost:
    """One appliance: its name, role, management address and every variable it has."""

    name: str
    role: str
    address: str
    port: int
    variables: dict[str, Any] = field(repr=False)

    def context(self) -> dict[str, Any]:
        """The render context of this host's role (defaults + its ``msib_*``/``<role>_*`` vars)."""
        return render.context(self.role, self.variables)


@dataclass(frozen=True)
class Inventory:
    """The appliances of an inventory directory (docs/inventory-contract.md)."""

    path: Path
    hosts: tuple[InventoryHost, ...]
    ssh: SshInfo

    def host(self, name: str) -> InventoryHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise InputError(str(self.path / "hosts.yml"), f"no appliance named {name!r}",
                         fix=f"one of: {', '.join(h.name for h in self.hosts)}")


def _yaml_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(str(path), f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "must be a YAML mapping")
    return data


def _group_members(groups: Mapping[str, Any], name: str, seen: tuple[str, ...] = ()) -> set[str]:
    group = groups.get(name) or {}
    found = set((group.get("hosts") or {}).keys())
    for child in group.get("children") or {}:
        if child not in seen:
            found |= _group_members(groups, child, (*seen, name))
    return found


@functools.cache
def _load_inventory(directory: Path, mtime: float) -> Inventory:
    hosts_yml = directory / "hosts.yml"
    root = _yaml_file(hosts_yml).get("all")
    if not isinstance(root, dict):
        raise InputError(str(hosts_yml), "no `all` group", fix="build the inventory with `msib inventory build`")
    all_vars = dict(root.get("vars") or {})
    all_vars.update(_yaml_file(directory / "group_vars" / "all.yml"))
    groups: dict[str, Any] = dict(root.get("children") or {})
    hosts: list[InventoryHost] = []
    for role in CHECKED_ROLES:
        for name, hvars in ((groups.get(role) or {}).get("hosts") or {}).items():
            variables = dict(all_vars)
            for gname, group in groups.items():  # group vars (Ansible: all < groups < host)
                if gname != "all" and name in _group_members(groups, gname):
                    variables.update((group or {}).get("vars") or {})
                    variables.update(_yaml_file(directory / "group_vars" / f"{gname}.yml"))
            variables.update(hvars or {})
            variables.update(_yaml_file(directory / "host_vars" / f"{name}.yml"))
            appliance = variables.get("msib_appliance") or {}
            address = variables.get("ansible_host") or appliance.get("address")
            if not address:
                raise InputError(str(hosts_yml), "appliance without ansible_host", where=f"{role}/{name}")
            hosts.append(InventoryHost(name=str(name), role=role, address=str(address),
                                       port=int(appliance.get("port") or variables.get("ansible_port") or 22),
                                       variables=variables))
    ssh = all_vars.get("msib_ssh") or {}
    info = SshInfo(user=ssh.get("user") or all_vars.get("ansible_user"), config_file=ssh.get("config_file"),
                   known_hosts_file=ssh.get("known_hosts_file"), key_file=ssh.get("key_file"))
    return Inventory(path=directory, hosts=tuple(hosts), ssh=info)


def load_inventory(directory: str | Path, vars_files: Sequence[str | Path] = ()) -> Inventory:
    """Read the appliances of an inventory directory (hosts.yml, group_vars/, host_vars/).

    Args:
        directory: the inventory directory.
        vars_files: YAML files of role variables for every host, as given to ``msib deploy --vars``
            (highest precedence, later files win): the checks compare with what was deployed.

    Raises:
        InputError: no hosts.yml, one that is not an inventory msib wrote, or a bad vars file.
    """
    path = Path(directory).resolve()
    hosts_yml = path / "hosts.yml"
    if not hosts_yml.is_file():
        raise InputError(str(hosts_yml), "no such inventory file",
                         fix="pass the directory `msib inventory build` wrote")
    inv = _load_inventory(path, hosts_yml.stat().st_mtime)
    extra: dict[str, Any] = {}
    for f in vars_files:
        p = Path(f)
        if not p.is_file():
            raise InputError(str(p), "no such vars file")
        extra.update(_yaml_file(p))
    if not extra:
        return inv
    hosts = tuple(InventoryHost(h.name, h.role, h.address, h.port, {**h.variables, **extra}) for h in inv.hosts)
    return Inventory(path=inv.path, hosts=hosts, ssh=inv.ssh)


# --- managed files: what each role installs, derived from its own tasks ----------------------------


@dataclass(frozen=True)
class ManagedFile:
    """A file a role installs and the sha256 it must have now (None: cannot be known here)."""

    path: str
    sha256: str | None
    source: str


#: Files a role writes other than through msib.appliances.config tasks.
_EXTRA_MANAGED: dict[str, list[tuple[str, str]]] = {
    # the commit helper copies the confirmed ruleset to /etc/nftables.conf
    "firewall": [("/etc/nftables.conf", "template:ruleset.nft.j2")],
}


def _role_vars(role: str) -> dict[str, Any]:
    return _yaml_file(render.roles_dir() / role / "vars" / "main.yml")


def _jinja() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters.update(render.FILTERS)
    env.filters["dirname"] = os.path.dirname
    env.filters["basename"] = os.path.basename
    env.tests["string"] = lambda v: isinstance(v, str)
    return env


def _evaluate(env: jinja2.Environment, value: Any, scope: Mapping[str, Any]) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    whole = re.fullmatch(r"\{\{(.*)\}\}", text, re.S)
    if whole and "{{" not in whole.group(1):
        return env.compile_expression(whole.group(1).strip())(**scope)
    return env.from_string(value).render(**scope)


def managed_files(role: str, ctx: Mapping[str, Any]) -> list[ManagedFile]:
    """Every file `role` installs with ``msib.appliances.config``, and its sha256 for `ctx` now.

    Read from the role's own ``tasks/*.yml`` (dest, template/file/src, ``when``, ``loop``), so a file
    added to a role is checked without touching the checks. A ``src`` (a controller file such as a
    certificate) is hashed where it is; if it is not readable here its sha256 is None.

    Raises:
        InputError: a task's ``dest``, source or ``when`` cannot be evaluated with `ctx`.
    """
    env = _jinja()
    base = {**_role_vars(role), **ctx}
    found: dict[str, ManagedFile] = {}
    tasks_dir = render.roles_dir() / role / "tasks"
    rendered: dict[str, str] = {}
    for tasks_file in sorted(tasks_dir.glob("*.yml")):
        for task in yaml.safe_load(tasks_file.read_text(encoding="utf-8")) or []:
            args = task.get("msib.appliances.config") if isinstance(task, dict) else None
            if not isinstance(args, dict):
                continue
            where = f"{tasks_file.name}: {task.get('name', '?')}"
            try:
                items = _evaluate(env, task["loop"], base) if "loop" in task else [None]
                for item in items:
                    scope = {**base, "item": item}
                    when = task.get("when")
                    conditions = when if isinstance(when, list) else ([when] if when is not None else [])
                    if not all(bool(_evaluate(env, "{{ " + str(c) + " }}", scope)) for c in conditions):
                        continue
                    dest = str(_evaluate(env, args["dest"], scope))
                    if args.get("template"):
                        name = str(_evaluate(env, args["template"], scope))
                        rendered[name] = render.render(role, name, ctx)
                        found[dest] = ManagedFile(dest, render.sha256(rendered[name]), f"template {name}")
                    elif args.get("file"):
                        name = str(_evaluate(env, args["file"], scope))
                        found[dest] = ManagedFile(dest, render.sha256(render.role_file(role, name)), f"file {name}")
                    else:
                        src = Path(os.path.expanduser(str(_evaluate(env, args["src"], scope))))
                        digest = render.sha256(src.read_bytes()) if src.is_file() else None
                        found[dest] = ManagedFile(dest, digest, f"controller file {src}")
            except (jinja2.TemplateError, KeyError, TypeError) as exc:
                raise InputError(f"roles/{role}/tasks/{tasks_file.name}", f"cannot evaluate: {exc}",
                                 where=where) from None
    for dest, source in _EXTRA_MANAGED.get(role, []):
        name = source.split(":", 1)[1]
        text = rendered.get(name) or render.render(role, name, ctx)
        found.setdefault(dest, ManagedFile(dest, render.sha256(text), f"template {name}"))
    return sorted(found.values(), key=lambda m: m.path)


# --- small pure parsers the checks use (each tested) -----------------------------------------------


def parse_sshd_t(text: str) -> dict[str, str]:
    """``sshd -T`` output as {keyword: value} (keywords lower-case, first value wins).

    >>> parse_sshd_t("permitrootlogin no\\nmaxauthtries 6\\n")["maxauthtries"]
    '6'
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            out.setdefault(key.lower(), value.strip())
    return out


WEAK_SSH = {
    "ciphers": re.compile(r"cbc|3des|arcfour|blowfish|cast128|rijndael", re.I),
    "macs": re.compile(r"md5|-96|ripemd", re.I),
    "kexalgorithms": re.compile(r"group1-sha1|group-exchange-sha1|group14-sha1", re.I),
}


def weak_ssh_algorithms(conf: Mapping[str, str]) -> dict[str, list[str]]:
    """The broken algorithms sshd offers, by keyword (empty when none).

    >>> weak_ssh_algorithms({"ciphers": "aes128-ctr,aes256-cbc", "macs": "hmac-sha2-256"})
    {'ciphers': ['aes256-cbc']}
    """
    out: dict[str, list[str]] = {}
    for key, pattern in WEAK_SSH.items():
        bad = [a for a in conf.get(key, "").split(",") if a and pattern.search(a)]
        if bad:
            out[key] = bad
    return out


_INST_RE = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) (.*?)\)")


def pending_upgrades(apt_simulation: str) -> list[dict[str, Any]]:
    """Upgrades listed by ``apt-get -s upgrade`` (or dist-upgrade), each marked security or not.

    >>> pending_upgrades("Inst libc6 [2.36-9] (2.36-9+deb12u4 Debian-Security:12/stable-security [amd64])")
    [{'package': 'libc6', 'installed': '2.36-9', 'version': '2.36-9+deb12u4', 'security': True}]
    """
    out: list[dict[str, Any]] = []
    for line in apt_simulation.splitlines():
        m = _INST_RE.match(line)
        if m:
            out.append({"package": m.group(1), "installed": m.group(2), "version": m.group(3),
                        "security": "security" in m.group(4).lower()})
    return out


def apt_policy(text: str) -> dict[str, dict[str, str]]:
    """``apt-cache policy PKG...`` as {package: {installed, candidate}}.

    >>> apt_policy("rsyslog:\\n  Installed: 8.2302.0-1\\n  Candidate: 8.2302.0-1+deb12u2\\n")
    {'rsyslog': {'installed': '8.2302.0-1', 'candidate': '8.2302.0-1+deb12u2'}}
    """
    out: dict[str, dict[str, str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1]
            out[current] = {}
        elif current is not None:
            key, _, value = line.strip().partition(":")
            if key in ("Installed", "Candidate"):
                out[current][key.lower()] = value.strip()
    return out


def rsyslog_action(conf: str, name: str) -> dict[str, str] | None:
    """The parameters of the RainerScript ``action(... name="NAME" ...)`` in `conf` (lower-case keys).

    >>> rsyslog_action('action(type="omfwd" name="x" Target="h" queue.size="5")', "x")["queue.size"]
    '5'
    """
    text = re.sub(r"(?m)#.*$", "", conf)
    for m in re.finditer(r"\baction\s*\((.*?)\)", text, re.S):
        params = _rsyslog_params(m.group(1))
        if params.get("name") == name:
            return params
    return None


def _rsyslog_params(text: str) -> dict[str, str]:
    params = {k.lower(): v for k, v in re.findall(r'([\w.]+)\s*=\s*"([^"]*)"', text)}
    # list parameters (tls.permittedPeer=["a","b"])
    for k, v in re.findall(r"([\w.]+)\s*=\s*\[([^\]]*)\]", text):
        params[k.lower()] = ",".join(re.findall(r'"([^"]*)"', v))
    return params


def rsyslog_action_queue(conf: str, name: str) -> tuple[str, dict[str, str]] | None:
    """Where the action named `name` queues: its own queue, else the queue of the ruleset holding it.

    Returns (a description, the queue's parameters with lower-case keys), or None if there is no such
    action. An action without a queue of its own (Direct) runs in its ruleset's queue worker, so a
    message it cannot deliver stays in that ruleset's queue.

    >>> rsyslog_action_queue('ruleset(name="r" queue.size="9") {\\n action(type="omfwd" name="x")\\n}', "x")
    ('ruleset r', {'name': 'r', 'queue.size': '9'})
    """
    action = rsyslog_action(conf, name)
    if action is None:
        return None
    if action.get("queue.type", "Direct").lower() != "direct":
        return f"action {name}", action
    text = re.sub(r"(?m)#.*$", "", conf)
    for m in re.finditer(r"\bruleset\s*\((.*?)\)\s*\{", text, re.S):
        depth, end = 1, m.end()
        while depth and end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        if rsyslog_action(text[m.end():end], name) is not None:
            params = _rsyslog_params(m.group(1))
            return f"ruleset {params.get('name', '?')}", params
    return f"action {name}", action


def nft_base_chains(ruleset: str) -> list[dict[str, str]]:
    """Base chains of an ``nft list ruleset`` text: table, chain, hook, policy.

    >>> nft_base_chains("table inet t {\\n\\tchain i {\\n\\t\\ttype filter hook input priority filter; policy drop;\\n")
    [{'table': 'inet t', 'chain': 'i', 'hook': 'input', 'policy': 'drop'}]
    """
    out: list[dict[str, str]] = []
    table = chain = ""
    for line in ruleset.splitlines():
        s = line.strip()
        if m := re.match(r"table (\w+ [\w-]+) \{", s):
            table = m.group(1)
        elif m := re.match(r"chain ([\w-]+) \{", s):
            chain = m.group(1)
        elif m := re.match(r"type \w+ hook (\w+) .*?(?:policy (\w+);)?$", s):
            out.append({"table": table, "chain": chain, "hook": m.group(1), "policy": m.group(2) or "accept"})
    return out


def nft_comparable(ruleset: str) -> str:
    """A ruleset listing reduced to what a review approves: no dynamic containment elements.

    Entries of the set ``msib_blocked`` are added at run time by containment and are not drift.

    >>> nft_comparable("set msib_blocked {\\n\\ttimeout 1h\\n\\telements = { 1.2.3.4 timeout 1h }\\n}\\n")
    'set msib_blocked {\\n\\ttimeout 1h\\n}\\n'
    """
    out: list[str] = []
    in_blocked = skipping = False
    for line in ruleset.splitlines():
        s = line.strip()
        if s.startswith("set msib_blocked "):
            in_blocked = True
        elif in_blocked and s == "}":
            in_blocked = False
        if in_blocked and s.startswith("elements = "):
            skipping = not s.endswith("}")
            continue
        if skipping:
            skipping = not s.endswith("}")
            continue
        out.append(line.rstrip())
    return "\n".join(out).strip("\n") + "\n"


def unified_diff(expected: str, actual: str, *, expected_name: str, actual_name: str, limit: int = 60) -> str:
    """A short unified diff (at most `limit` lines) for evidence."""
    import difflib

    lines = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(), expected_name, actual_name,
                                      lineterm="", n=1))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)


# --- results and the runner -----------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one host, with the evidence an auditor reads."""

    host: str
    role: str
    check_id: str
    title: str
    severity: str
    clause: str
    outcome: Outcome
    evidence: str
    duration_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "role": self.role, "check": self.check_id, "title": self.title,
                "severity": self.severity, "clause": self.clause, "outcome": self.outcome,
                "evidence": self.evidence, "duration_s": round(self.duration_s, 3)}


@dataclass
class CheckRun:
    """Every result of one `msib check` run."""

    inventory: str
    started: float
    finished: float = 0.0
    hosts: list[InventoryHost] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"passed": sum(r.outcome == "passed" for r in self.results),
                "failed": sum(r.outcome == "failed" for r in self.results),
                "errors": sum(r.outcome == "error" for r in self.results)}

    def summary(self) -> dict[str, Any]:
        """What ``msib check --json`` prints."""
        return {**self.counts(),
                "failures": [{"host": r.host, "check": r.check_id, "evidence": r.evidence}
                             for r in self.results if r.outcome != "passed"]}

    def exit_code(self) -> int:
        """0 all passed; 2 an error prevented checking; 1 a check failed."""
        counts = self.counts()
        if counts["errors"] or not self.results:
            return 2
        return 1 if counts["failed"] else 0

    def by_host(self) -> dict[str, list[CheckResult]]:
        out: dict[str, list[CheckResult]] = {h.name: [] for h in self.hosts}
        for r in self.results:
            out.setdefault(r.host, []).append(r)
        return out


def ssh_config_text(inv: Inventory, hosts: Sequence[InventoryHost], control_dir: Path) -> str:
    """An ssh_config for this run: the inventory's addresses, strict host keys, one master per host."""
    lines = ["# written by msib check for one run: strict host keys, connections multiplexed per host"]
    for h in hosts:
        lines += [f"Host {h.name}", f"    HostName {h.address}", f"    Port {h.port}"]
    lines += ["Host *", "    StrictHostKeyChecking yes", "    BatchMode yes", "    ConnectTimeout 10",
              "    ControlMaster auto", f"    ControlPath {control_dir}/%C", "    ControlPersist 60s"]
    if inv.ssh.user:
        lines.append(f"    User {inv.ssh.user}")
    if inv.ssh.key_file:
        lines += [f"    IdentityFile {inv.ssh.key_file}", "    IdentitiesOnly yes"]
    if inv.ssh.known_hosts_file:
        lines.append(f"    UserKnownHostsFile {inv.ssh.known_hosts_file}")
    if inv.ssh.config_file:
        lines.append(f"Include {inv.ssh.config_file}")
    return "\n".join(lines) + "\n"


def _strict(ssh_config: Path, host: str) -> str | None:
    """None if ssh would check `host`'s key strictly with this config, else the reason why not."""
    proc = subprocess.run(["ssh", "-G", "-F", str(ssh_config), host], capture_output=True, text=True, timeout=30)
    conf = parse_sshd_t(proc.stdout)
    if conf.get("stricthostkeychecking") not in ("true", "yes"):
        return f"StrictHostKeyChecking is {conf.get('stricthostkeychecking')!r}, not yes: refusing to connect"
    return None


def _error_results(h: InventoryHost, message: str) -> list[CheckResult]:
    return [CheckResult(h.name, h.role, s.id, s.title, s.severity, s.clause, "error", message)
            for s in checks_for(h.role)]


def _pytest_argv(h: InventoryHost, ssh_config: Path, inventory: Path, vars_files: Sequence[Path]) -> list[str]:
    cdir = checks_dir()
    return [sys.executable, "-m", "pytest", "-c", str(cdir / "pytest.ini"), "--rootdir", str(cdir),
            "-p", "no:cacheprovider", "-p", "no:terminal", str(cdir),
            f"--hosts=ssh://{h.name}", f"--ssh-config={ssh_config}", "--sudo",
            f"--msib-inventory={inventory}", *[f"--msib-vars={Path(f).resolve()}" for f in vars_files]]


def _check_host(h: InventoryHost, inv: Inventory, vars_files: Sequence[Path], ssh_config: Path, workdir: Path,
                on_result: Callable[[CheckResult], None]) -> list[CheckResult]:
    """Run every check of `h`'s role on it; a host that cannot be checked gives error results."""
    def fail_all(message: str) -> list[CheckResult]:
        results = _error_results(h, message)
        for r in results:
            on_result(r)
        return results

    reason = _strict(ssh_config, h.name)
    if reason:
        return fail_all(reason)
    try:
        pre = subprocess.run(["ssh", "-F", str(ssh_config), h.name, "true"], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return fail_all("ssh: no answer within 60 s")
    if pre.returncode != 0:
        return fail_all("ssh failed: " + (pre.stderr.strip() or f"exit status {pre.returncode}"))
    argv = _pytest_argv(h, ssh_config, inv.path, vars_files)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    got: list[CheckResult] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          stdin=subprocess.DEVNULL, cwd=str(workdir)) as proc:
        timer = threading.Timer(HOST_TIMEOUT_S, proc.kill)
        timer.start()
        other: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(RESULT_PREFIX):
                    r = CheckResult(**json.loads(line[len(RESULT_PREFIX):]))
                    got.append(r)
                    on_result(r)
                else:
                    other.append(line.rstrip())
        finally:
            timer.cancel()
        rc = proc.wait()
    seen = {r.check_id for r in got}
    missing = [s for s in checks_for(h.role) if s.id not in seen]
    if missing:
        tail = "\n".join(other[-25:]) or f"pytest exit status {rc}"
        for r in _error_results(h, f"the check did not run (pytest exit status {rc}):\n{tail}"):
            if r.check_id in {s.id for s in missing}:
                got.append(r)
                on_result(r)
    return got


def run_checks(inventory: str | Path, *, vars_files: Sequence[Path] = (), limit: Sequence[str] = (),
               workers: int = DEFAULT_WORKERS,
               on_result: Callable[[CheckResult], None] | None = None,
               on_start: Callable[[list[InventoryHost]], None] | None = None) -> CheckRun:
    """Run the catalogue's checks on every appliance of `inventory` (or those in `limit`), in parallel.

    Args:
        inventory: the inventory directory.
        vars_files: role variables for every host, as given to ``msib deploy --vars``.
        limit: host names to check (default: every appliance).
        workers: hosts checked at once.
        on_result: called with each result as it arrives (a progress display).
        on_start: called once with the hosts about to be checked.

    Returns:
        The run; ``run.exit_code()`` is what ``msib check`` exits with.

    Raises:
        InputError: an unusable inventory, limit or catalogue.
        CheckRunError: a check file does not match the catalogue.
    """
    if workers < 1:
        raise InputError("--workers", "must be 1 or more")
    inv = load_inventory(inventory, vars_files)
    hosts = [inv.host(n) for n in limit] if limit else list(inv.hosts)
    if not hosts:
        raise InputError(str(inv.path / "hosts.yml"), "no appliance to check (groups collector, ids_sensor, firewall)")
    _validate_registry()
    run = CheckRun(inventory=str(inv.path), started=time.time(), hosts=hosts)
    if on_start:
        on_start(hosts)
    lock = threading.Lock()

    def record(r: CheckResult) -> None:
        with lock:
            run.results.append(r)
            if on_result:
                on_result(r)

    workdir = Path(tempfile.mkdtemp(prefix="msib-check-"))
    control = workdir / "cm"
    control.mkdir(mode=0o700)
    ssh_config = workdir / "ssh_config"
    ssh_config.write_text(ssh_config_text(inv, hosts, control))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(hosts))) as pool:
            futures = {pool.submit(_check_host, h, inv, vars_files, ssh_config, workdir, record): h for h in hosts}
            for fut in concurrent.futures.as_completed(futures):
                h = futures[fut]
                try:
                    fut.result()
                except Exception as exc:  # a bug or an OS error: that host is an error, others go on
                    done = {r.check_id for r in run.results if r.host == h.name}
                    for r in _error_results(h, f"{type(exc).__name__}: {exc}"):
                        if r.check_id not in done:
                            record(r)
    finally:
        for h in hosts:  # close this run's SSH masters
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["ssh", "-F", str(ssh_config), "-O", "exit", h.name], capture_output=True,
                               timeout=10, stdin=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)
    for h in hosts:  # every check of every host has a result, whatever happened
        done = {r.check_id for r in run.results if r.host == h.name}
        for r in _error_results(h, "no result came back for this check"):
            if r.check_id not in done:
                run.results.append(r)
    order = {s.id: i for i, s in enumerate(catalogue().values())}
    host_order = {h.name: i for i, h in enumerate(hosts)}
    run.results.sort(key=lambda r: (host_order.get(r.host, 0), order.get(r.check_id, 0)))
    run.finished = time.time()
    return run


def _validate_registry() -> None:
    """Every catalogued check has a test function and every test function a catalogued ID."""
    implemented = set(implemented_ids())
    missing = sorted(set(catalogue()) - implemented)
    if missing:
        raise CheckRunError(f"checks/catalogue.yml: no test implements {', '.join(missing)}")


def implemented_ids() -> Iterator[str]:
    """The check IDs that ``checks/test_*.py`` register (read from the source, nothing imported)."""
    for path in sorted(checks_dir().glob("test_*.py")):
        yield from re.findall(r'@check\("([^"]+)"\)', path.read_text(encoding="utf-8"))


def result_line(result: CheckResult) -> str:
    """The line the pytest plugin prints for one result (parsed back by the runner)."""
    data = result.as_json()
    return RESULT_PREFIX + json.dumps({
        "host": data["host"], "role": data["role"], "check_id": data["check"], "title": data["title"],
        "severity": data["severity"], "clause": data["clause"], "outcome": data["outcome"],
        "evidence": data["evidence"], "duration_s": data["duration_s"]}, ensure_ascii=False)


def cast_outcome(value: str) -> Outcome:
    if value not in get_args(Outcome):
        raise ValueError(value)
    return cast(Outcome, value)
