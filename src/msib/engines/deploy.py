"""`msib deploy`: run the appliance roles over an inventory directory with pyinfra or Ansible.

Both engines read the same inventory (:mod:`msib.contract`, docs/inventory-contract.md) and install
the same bytes (msib.render). The result is a per-host count of changed, unchanged and failed
operations/tasks, the summary that ``msib deploy --json`` prints.

Example:
    >>> result = run_deploy("/var/lib/msib-lab/inventory", "pyinfra")      # doctest: +SKIP
    >>> result.to_json()["hosts"]["col-int-1"]                              # doctest: +SKIP
    {'changed': 0, 'unchanged': 17, 'failed': 0}
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from msib import contract
from msib.contract import Appliance
from msib.engines import ansible, pyinfra
from msib.engines.result import DEFAULT_STEP_TIMEOUT_S, ENGINES, DeployResult, Engine, Progress
from msib.errors import InputError, Locked
from msib.fsutil import exclusive_lock

#: The Linux appliance roles (each engine deploys them side by side: a role's hosts share nothing with another's).
DEPLOY_ROLES: tuple[str, ...] = contract.LINUX_ROLES


class DeployLocked(Locked):
    """Another ``msib deploy`` of the same inventory is running: this one did nothing (exit 75)."""


def deploy_lock_path(inventory_dir: str | Path) -> Path:
    """``<inventory dir>.deploy.lock`` beside the inventory directory (``msib inventory build`` replaces the
    directory as a whole), one per inventory: deploys of two sites do not wait for each other."""
    resolved = Path(inventory_dir).resolve()
    return resolved.parent / f"{resolved.name}.deploy.lock"


#: --vars that change how msib connects to the hosts and checks their keys (pyinfra's connection data,
#: Ansible's connection variables, the inventory's SSH settings)
CONNECTION_VAR_PREFIXES = ("ssh_", "ansible_", "_sudo", "_su_", "_doas", "msib_ssh")


def refuse_dangerous_vars(extra_vars: Mapping[str, Any], *, allow_unverified_hosts: bool = False,
                          allow_lockout: bool = False) -> None:
    """Refuse role variables that weaken a safety net unless the flag named for the danger is given.

    Raises:
        InputError: connection or host-key variables without `allow_unverified_hosts`;
            ``firewall_guard`` off without `allow_lockout`.
    """
    risky = sorted(k for k in extra_vars if k.startswith(CONNECTION_VAR_PREFIXES))
    if risky and not allow_unverified_hosts:
        raise InputError("--vars", f"sets {', '.join(risky)}: that changes how msib connects to the hosts and "
                         "checks their keys (the site's known_hosts, strict)",
                         fix="remove it; to really connect otherwise, add --allow-unverified-hosts")
    if "firewall_guard" in extra_vars and extra_vars["firewall_guard"] is not True and not allow_lockout:
        raise InputError("--vars", "sets firewall_guard to false: a ruleset that cuts the management path would "
                         "no longer be refused before it is applied",
                         fix="remove it; to really apply such a ruleset (a rollback drill), add --allow-lockout")


def select(hosts: Sequence[Appliance], limit: str | None) -> list[Appliance]:
    """The hosts named by `limit` (comma-separated names or roles), all when None.

    Raises:
        InputError: a name that is neither a host nor a role of the inventory.
    """
    if not limit:
        return list(hosts)
    wanted = [w.strip() for w in limit.split(",") if w.strip()]
    known = {h.name for h in hosts} | {h.role for h in hosts}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise InputError("--limit", f"no host or role called {', '.join(unknown)} in the inventory",
                         fix=f"one of: {', '.join(sorted(known))}")
    return [h for h in hosts if h.name in wanted or h.role in wanted]


def run_deploy(
    inventory_dir: str | Path,
    engine: Engine,
    *,
    check: bool = False,
    limit: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    step_timeout: float = DEFAULT_STEP_TIMEOUT_S,
    allow_unverified_hosts: bool = False,
    allow_lockout: bool = False,
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
        allow_unverified_hosts: accept `extra_vars` that change the connection or its host keys.
        allow_lockout: accept ``firewall_guard: false`` in `extra_vars`.

    Returns:
        The per-host summary; hosts that could not be reached count as failed.

    Raises:
        InputError: a bad inventory, engine or limit, or a dangerous variable without its flag (before
            anything runs).
        DeployLocked: another deploy of this inventory is running (exit 75; nothing ran).
    """
    if engine not in ENGINES:
        raise InputError("--engine", f"unknown engine {engine!r}", fix="pyinfra or ansible")
    refuse_dangerous_vars(extra_vars or {}, allow_unverified_hosts=allow_unverified_hosts, allow_lockout=allow_lockout)
    inv = contract.load(inventory_dir)
    chosen = select(inv.of(*DEPLOY_ROLES), limit)
    if not chosen:
        raise InputError(str(inv.hosts_file), "no collector, ids_sensor or firewall hosts to deploy")
    if step_timeout <= 0:
        raise InputError("--step-timeout", "must be a positive number of seconds")
    t0 = time.monotonic()
    run_engine = pyinfra.run if engine == "pyinfra" else ansible.run
    # one deploy of an inventory at a time: two would race for the same firewalls' commits
    with exclusive_lock(deploy_lock_path(inv.directory), f"msib deploy of {inv.directory}", DeployLocked):
        result = run_engine(inv, chosen, check=check, extra_vars=dict(extra_vars or {}), progress=progress,
                            step_timeout=step_timeout)
    result.seconds = time.monotonic() - t0
    return result
