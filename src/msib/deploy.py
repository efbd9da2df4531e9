"""`msib deploy`: run the appliance roles over an inventory directory with pyinfra or Ansible.

Both engines read the same ``hosts.yml`` (docs/inventory-contract.md) and install the same bytes
(msib.render). The result is a per-host count of changed, unchanged and failed operations/tasks,
the summary that ``msib deploy --json`` prints.

Example:
    >>> result = run_deploy("/var/lib/msib-lab/inventory", "pyinfra")      # doctest: +SKIP
    >>> result.to_json()["hosts"]["col-int-1"]                              # doctest: +SKIP
    {'changed': 0, 'unchanged': 17, 'failed': 0}
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from msib.errors import InputError

Engine = Literal["pyinfra", "ansible"]
ENGINES: tuple[Engine, ...] = ("pyinfra", "ansible")
#: The Linux appliance roles, in the order they are deployed (sensors send to collectors).
DEPLOY_ROLES: tuple[str, ...] = ("collector", "ids_sensor", "firewall")
Outcome = Literal["changed", "unchanged", "failed", "skipped"]
REPO = Path(__file__).resolve().parents[2]


#: Seconds one step (a pyinfra operation's command, an Ansible task) may run on a host before the
#: host fails with a message naming the step and the command; the other hosts go on. A cold
#: install of Suricata through the lab's proxy takes ~20 s; a real circuit's mirror may be slower.
DEFAULT_STEP_TIMEOUT_S = 600


class Progress(Protocol):
    """Receives a call when a step starts on a host and when it ends (for a live display)."""

    def start(self, host: str, what: str) -> None: ...

    def event(self, host: str, outcome: Outcome, what: str) -> None: ...


def step_error(step: str, *, command: str | None, detail: str, timed_out_after: float | None = None) -> str:
    """One line saying which step failed on a host, with what command, and why (both engines).

    >>> step_error("Install nftables", command="apt-get install -y nftables", detail="", timed_out_after=40)
    "step 'Install nftables' timed out after 40 s (limit: --step-timeout): apt-get install -y nftables"
    """
    what = f"step {step!r} " + (f"timed out after {timed_out_after:.0f} s (limit: --step-timeout)"
                                 if timed_out_after is not None else "failed")
    parts = [what, command or "", " ".join(detail.split())[:300]]
    return ": ".join(p for p in parts if p)


@dataclass
class HostResult:
    """What one engine did on one host."""

    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    error: str | None = None

    def count(self, outcome: Outcome) -> None:
        """Add one finished operation/task."""
        if outcome == "changed":
            self.changed += 1
        elif outcome == "unchanged":
            self.unchanged += 1
        elif outcome == "failed":
            self.failed += 1


@dataclass
class DeployResult:
    """The summary of one run: per host, and the wall time."""

    engine: Engine
    check: bool
    hosts: dict[str, HostResult] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no host failed."""
        return all(h.failed == 0 and h.error is None for h in self.hosts.values())

    @property
    def changed(self) -> int:
        """Changes over all hosts."""
        return sum(h.changed for h in self.hosts.values())

    def to_json(self) -> dict[str, Any]:
        """``{"hosts": {NAME: {"changed": N, "unchanged": N, "failed": N}}}`` (plus engine, seconds)."""
        return {
            "engine": self.engine,
            "check": self.check,
            "seconds": round(self.seconds, 2),
            "hosts": {name: {"changed": h.changed, "unchanged": h.unchanged, "failed": h.failed}
                      | ({"error": h.error} if h.error else {})
                      for name, h in sorted(self.hosts.items())},
        }


@dataclass(frozen=True)
class InventoryHost:
    """One appliance of hosts.yml: its role and every variable it has (all vars, then host vars)."""

    name: str
    role: str
    vars: Mapping[str, Any]


def load_inventory(directory: str | Path) -> tuple[Path, list[InventoryHost]]:
    """Read ``DIR/hosts.yml`` and return its path and the appliances of the deployable roles.

    Raises:
        InputError: the directory has no readable hosts.yml in the contract's shape.
    """
    path = Path(directory) / "hosts.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(str(path), f"cannot read the inventory: {exc.strerror}",
                         fix="run `msib inventory build` (or `msib lab up`) first") from None
    except yaml.YAMLError:
        raise InputError(str(path), "not valid YAML", fix="rebuild the inventory") from None
    try:
        top = data["all"]
        common = dict(top.get("vars") or {})
        children = top.get("children") or {}
    except (TypeError, KeyError, AttributeError):
        raise InputError(str(path), "not an inventory in the contract's shape", where="all",
                         fix="see docs/inventory-contract.md") from None
    hosts: list[InventoryHost] = []
    for role in DEPLOY_ROLES:
        group = children.get(role) or {}
        for name, hvars in (group.get("hosts") or {}).items():
            merged = {**common, **(hvars or {})}
            hosts.append(InventoryHost(str(name), role, merged))
    return path, hosts


def select(hosts: list[InventoryHost], limit: str | None) -> list[InventoryHost]:
    """The hosts named by `limit` (comma-separated names or roles), all when None.

    Raises:
        InputError: a name that is neither a host nor a role of the inventory.
    """
    if not limit:
        return hosts
    wanted = [w.strip() for w in limit.split(",") if w.strip()]
    known = {h.name for h in hosts} | {h.role for h in hosts}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise InputError("--limit", f"no host or role called {', '.join(unknown)} in the inventory",
                         fix=f"one of: {', '.join(sorted(known))}")
    return [h for h in hosts if h.name in wanted or h.role in wanted]


def ssh_settings(hvars: Mapping[str, Any]) -> dict[str, Any]:
    """pyinfra connection data from Ansible connection vars (strict host keys always).

    ``ansible_ssh_common_args`` may carry ``-F ssh_config`` (whose ``Host *`` block gives the
    identity file and known_hosts) or ``-o UserKnownHostsFile=...``.
    """
    out: dict[str, Any] = {
        "ssh_hostname": str(hvars.get("ansible_host") or ""),
        "ssh_user": hvars.get("ansible_user"),
        "ssh_port": int(hvars.get("ansible_port") or 22),
        "ssh_strict_host_key_checking": "yes",
    }
    if hvars.get("ansible_ssh_private_key_file"):
        out["ssh_key"] = str(hvars["ansible_ssh_private_key_file"])
    words = shlex.split(str(hvars.get("ansible_ssh_common_args") or ""))
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "-F" and nxt:
            out["ssh_config_file"] = nxt
            for key, value in _ssh_config_all(Path(nxt)).items():
                if key == "identityfile":
                    out.setdefault("ssh_key", value)
                elif key == "userknownhostsfile":
                    out.setdefault("ssh_known_hosts_file", value)
                elif key == "user" and not out["ssh_user"]:
                    out["ssh_user"] = value
        elif w == "-o" and nxt.lower().startswith("userknownhostsfile="):
            out["ssh_known_hosts_file"] = nxt.split("=", 1)[1]
        elif w == "-i" and nxt:
            out.setdefault("ssh_key", nxt)
    if out.get("ssh_user") and out["ssh_user"] != "root" and hvars.get("ansible_become", True):
        out["_sudo"] = True
    if "ssh_known_hosts_file" not in out:
        raise InputError("hosts.yml", "no known_hosts for the hosts: msib connects with strict host keys only",
                         fix="give -F ssh_config or -o UserKnownHostsFile=... in ansible_ssh_common_args")
    return {k: v for k, v in out.items() if v is not None}


def _ssh_config_all(path: Path) -> dict[str, str]:
    """The options of the ``Host *`` block of an ssh_config (lower-case keys)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(str(path), f"cannot read the ssh_config: {exc.strerror}") from None
    found: dict[str, str] = {}
    in_all = False
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if not parts or parts[0].startswith("#"):
            continue
        key = parts[0].lower()
        if key in ("host", "match"):
            in_all = key == "host" and parts[1:] == ["*"]
            continue
        if in_all and len(parts) == 2:
            found.setdefault(key, parts[1].strip())
    return found


def run_deploy(
    inventory_dir: str | Path,
    engine: Engine,
    *,
    check: bool = False,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    step_timeout: float = DEFAULT_STEP_TIMEOUT_S,
) -> DeployResult:
    """Deploy every appliance of the inventory (or `limit`) with `engine`.

    Args:
        inventory_dir: the directory with hosts.yml.
        engine: ``pyinfra`` or ``ansible``.
        check: detect changes only (Ansible ``--check``, pyinfra ``--dry``); nothing is changed.
        limit: comma-separated host names or roles.
        extra_vars: role variables for every host (e.g. ``collector_ca_file``), highest precedence.
        progress: receives a call as each operation/task starts and as it ends.
        step_timeout: seconds a step may run on a host before the host fails (the others go on).

    Returns:
        The per-host summary; hosts that could not be reached count as failed.

    Raises:
        InputError: a bad inventory, engine or limit (before anything runs).
    """
    if engine not in ENGINES:
        raise InputError("--engine", f"unknown engine {engine!r}", fix="pyinfra or ansible")
    hosts_file, hosts = load_inventory(inventory_dir)
    chosen = select(hosts, limit)
    if not chosen:
        raise InputError(str(hosts_file), "no collector, ids_sensor or firewall hosts to deploy")
    t0 = time.monotonic()
    if engine == "pyinfra":
        from msib.engines.run_pyinfra import run as run_engine
    else:
        from msib.engines.run_ansible import run as run_engine
    if step_timeout <= 0:
        raise InputError("--step-timeout", "must be a positive number of seconds")
    result = run_engine(hosts_file, chosen, check=check, extra_vars=dict(extra_vars or {}), progress=progress,
                        step_timeout=step_timeout)
    result.seconds = time.monotonic() - t0
    return result
