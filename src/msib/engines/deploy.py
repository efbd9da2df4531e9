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
from msib.errors import InputError

#: The Linux appliance roles (each engine deploys them side by side: a role's hosts share nothing with another's).
DEPLOY_ROLES: tuple[str, ...] = contract.LINUX_ROLES


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
    inv = contract.load(inventory_dir)
    chosen = select(inv.of(*DEPLOY_ROLES), limit)
    if not chosen:
        raise InputError(str(inv.hosts_file), "no collector, ids_sensor or firewall hosts to deploy")
    if step_timeout <= 0:
        raise InputError("--step-timeout", "must be a positive number of seconds")
    t0 = time.monotonic()
    run_engine = pyinfra.run if engine == "pyinfra" else ansible.run
    result = run_engine(inv, chosen, check=check, extra_vars=dict(extra_vars or {}), progress=progress,
                        step_timeout=step_timeout)
    result.seconds = time.monotonic() - t0
    return result
