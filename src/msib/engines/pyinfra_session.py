"""The deploys in ``deploy/`` run with pyinfra's Python API, inside the pyinfra worker process.

Only :mod:`msib.engines.pyinfra_worker` imports this module, after gevent has patched the standard
library: without that, paramiko's blocking reads stall every greenlet (hosts run one after another
and ``_timeout`` never fires).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from msib.contract import Appliance, Inventory
from msib.engines.result import REPO, DeployResult, HostResult, Progress, step_error
from msib.errors import MsibError


def _deploys() -> dict[str, Any]:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from deploy.collector import collector
    from deploy.firewall import firewall
    from deploy.ids_sensor import ids_sensor

    return {"collector": collector, "ids_sensor": ids_sensor, "firewall": firewall}


def run(inv: Inventory, hosts: Sequence[Appliance], *, check: bool, extra_vars: dict[str, Any],
        progress: Progress | None, step_timeout: float) -> DeployResult:
    """Connect to `hosts`, add each role's deploy, run it (or only detect changes when `check`)."""
    import gevent
    from pyinfra.api.config import Config
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.deploy import add_deploy
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import BaseStateCallback, State
    from pyinfra.context import ctx_state

    from msib.engines.pyinfra_facts import FactMemo

    result = DeployResult("pyinfra", check, {h.name: HostResult() for h in hosts})
    names_data = []
    for h in hosts:
        data = h.pyinfra_data(inv.ssh)
        data.update(extra_vars)
        names_data.append((h.name, data))
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for h in hosts:
        groups.setdefault(h.role, ([], {}))[0].append(h.name)
    inventory = Inventory((names_data, {}), **groups)  # type: ignore[no-untyped-call]
    config = Config(CONNECT_TIMEOUT=10, PARALLEL=max(1, len(hosts)), FAIL_PERCENT=None)  # type: ignore[no-untyped-call]
    state = State(inventory, config, check_for_changes=True)
    memo = FactMemo(state)  # a host's facts read once (one command), until something runs on it
    for host in state.inventory:
        memo.attach(host)
    started: dict[tuple[str, str], float] = {}  # (host, op) -> when it started
    took: dict[tuple[str, str], float] = {}  # (host, op) -> seconds until it failed

    class Callback(BaseStateCallback):
        @staticmethod
        def host_connect_error(state: Any, host: Any, error: Any) -> None:
            result.hosts[host.name].error = f"cannot connect: {error}"
            if progress:
                progress.event(host.name, "failed", f"connect: {error}")

        @staticmethod
        def operation_host_start(state: Any, host: Any, op_hash: str) -> None:
            started[(host.name, op_hash)] = time.monotonic()
            if progress:
                progress.start(host.name, _op_name(state, op_hash))

        @staticmethod
        def operation_host_success(state: Any, host: Any, op_hash: str, retry_count: int = 0) -> None:
            if progress:
                progress.event(host.name, "unchanged", _op_name(state, op_hash))

        @staticmethod
        def operation_host_error(state: Any, host: Any, op_hash: str, retry_count: int = 0,
                                 max_retries: int = 0) -> None:
            key = (host.name, op_hash)
            took[key] = time.monotonic() - started.get(key, time.monotonic())
            if progress:
                progress.event(host.name, "failed", _op_name(state, op_hash))

    state.add_callback_handler(Callback())  # type: ignore[no-untyped-call]
    deploys = _deploys()
    _forget_ssh_files()
    run_error: str | None = None
    try:
        # "No hosts remaining!" when every host failed to connect: each has its error from the callback
        with contextlib.suppress(PyinfraError):
            connect_all(state)
        active = {host.name: host for host in state.inventory.get_active_hosts()}

        def prepare(h: Appliance, host: Any) -> None:
            try:
                # _timeout bounds every command of every operation of this host's deploy
                add_deploy(state, deploys[h.role], host=host, _timeout=int(step_timeout))
            except (MsibError, PyinfraError, ValueError) as exc:
                result.hosts[h.name].error = str(exc)
                if progress:
                    progress.event(h.name, "failed", str(exc))
                # the host leaves the run before any of its operations executes
                state.failed_hosts.add(host)
                state.active_hosts.discard(host)

        for h in hosts:
            if h.name not in active:
                result.hosts[h.name].error = result.hosts[h.name].error or "cannot connect"
        # hosts prepared side by side: each one's fact reads overlap the others' (pyinfra does one
        # host after another); the operation order is each deploy's own, as before
        # pyinfra's state context is process-wide (the host's is per greenlet): set for the whole
        # join, so that a greenlet leaving add_deploy restores it for the others, not to None
        with ctx_state.use(state):
            gevent.joinall([gevent.spawn(prepare, h, active[h.name]) for h in hosts if h.name in active],
                           raise_error=True)
        if not check and state.active_hosts:
            try:
                run_ops(state)
            except PyinfraError as exc:  # "No hosts remaining!": every host failed; each says why below
                run_error = str(exc)
    finally:
        disconnect_all(state)
    for host in state.inventory:
        hr = result.hosts[host.name]
        if hr.error:
            hr.failed = max(hr.failed, 1)
            continue
        for op_hash, op_data in state.ops.get(host, {}).items():
            meta = op_data.operation_meta
            if check:
                hr.count("changed" if meta._maybe_is_change and _would_run(op_data) else "unchanged")
            elif not meta.is_complete() or meta.did_error():
                hr.count("failed")
                if meta.is_complete() and hr.error is None:
                    hr.error = _failure(state, op_hash, meta, took.get((host.name, op_hash)), step_timeout)
            else:
                hr.count("changed" if meta.did_change() else "unchanged")
        if hr.failed and hr.error is None:  # a host that failed without a step to blame
            hr.error = run_error or "failed"
    return result


def _would_run(op_data: Any) -> bool:
    """Whether an operation's ``_if`` conditions hold, asked in check mode (pyinfra only asks when running).

    The deploys' conditions (``deploy._msib.changed``) answer "would change" for operations that did
    not run, so a restart counts as a change in ``--check`` only when what it depends on would change.
    """
    conditions = op_data.global_arguments.get("_if")
    if not conditions:
        return True
    return all(c() for c in (conditions if isinstance(conditions, list) else [conditions]))


def _forget_ssh_files() -> None:
    """Make pyinfra read known_hosts and ssh_config afresh for this run.

    pyinfra memoizes both for the life of the process: a host whose key was re-pinned since an
    earlier run in the same process (a reinstalled appliance, `msib lab reset`) would be refused
    against the old key, and a key removed from known_hosts would still be trusted.
    """
    from pyinfra.connectors.sshuserclient import client

    for loader in (client.get_host_keys, client.get_ssh_config):
        loader.cache.clear()


def _failure(state: Any, op_hash: str, meta: Any, seconds: float | None, step_timeout: float) -> str:
    """What failed: the operation, its last command, the end of its error output (or the time-out)."""
    commands = list(meta._commands or [])
    command = str(commands[-1]) if commands else None
    timed_out = seconds is not None and seconds >= step_timeout - 1
    stderr = meta.stderr_lines[-3:] if not timed_out else []
    return step_error(_op_name(state, op_hash), command=command, detail=" ".join(stderr),
                      timed_out_after=step_timeout if timed_out else None)


def _op_name(state: Any, op_hash: str) -> str:
    try:
        names = state.get_op_meta(op_hash).names
        return ", ".join(sorted(names)) or op_hash
    except KeyError:
        return op_hash
