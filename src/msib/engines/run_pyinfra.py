"""Run the deploys in ``deploy/`` with pyinfra's Python API (strict host keys, hosts in parallel)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from msib.deploy import REPO, DeployResult, HostResult, InventoryHost, Progress, ssh_settings
from msib.errors import MsibError


def _deploys() -> dict[str, Any]:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from deploy.collector import collector
    from deploy.firewall import firewall
    from deploy.ids_sensor import ids_sensor

    return {"collector": collector, "ids_sensor": ids_sensor, "firewall": firewall}


def run(hosts_file: Path, hosts: list[InventoryHost], *, check: bool, extra_vars: dict[str, Any],
        progress: Progress | None) -> DeployResult:
    """Connect to `hosts`, add each role's deploy, run it (or only detect changes when `check`)."""
    from pyinfra.api.config import Config
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.api.deploy import add_deploy
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.inventory import Inventory
    from pyinfra.api.operations import run_ops
    from pyinfra.api.state import BaseStateCallback, State

    result = DeployResult("pyinfra", check, {h.name: HostResult() for h in hosts})
    names_data = []
    for h in hosts:
        data = {k: v for k, v in h.vars.items() if not k.startswith("ansible_")}
        data.update(ssh_settings(h.vars))
        data.update(extra_vars)
        names_data.append((h.name, data))
    groups: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for h in hosts:
        groups.setdefault(h.role, ([], {}))[0].append(h.name)
    inventory = Inventory((names_data, {}), **groups)  # type: ignore[no-untyped-call]
    config = Config(CONNECT_TIMEOUT=10, PARALLEL=max(1, len(hosts)), FAIL_PERCENT=None)  # type: ignore[no-untyped-call]
    state = State(inventory, config, check_for_changes=True)

    class Callback(BaseStateCallback):
        @staticmethod
        def host_connect_error(state: Any, host: Any, error: Any) -> None:
            result.hosts[host.name].error = f"cannot connect: {error}"
            if progress:
                progress.event(host.name, "failed", f"connect: {error}")

        @staticmethod
        def operation_host_success(state: Any, host: Any, op_hash: str, retry_count: int = 0) -> None:
            if progress:
                progress.event(host.name, "unchanged", _op_name(state, op_hash))

        @staticmethod
        def operation_host_error(state: Any, host: Any, op_hash: str, retry_count: int = 0,
                                 max_retries: int = 0) -> None:
            if progress:
                progress.event(host.name, "failed", _op_name(state, op_hash))

    state.add_callback_handler(Callback())  # type: ignore[no-untyped-call]
    deploys = _deploys()
    _forget_ssh_files()
    try:
        # "No hosts remaining!" when every host failed to connect: each has its error from the callback
        with contextlib.suppress(PyinfraError):
            connect_all(state)
        active = {host.name: host for host in state.inventory.get_active_hosts()}
        for h in hosts:
            host = active.get(h.name)
            if host is None:
                result.hosts[h.name].error = result.hosts[h.name].error or "cannot connect"
                continue
            try:
                add_deploy(state, deploys[h.role], host=host)
            except (MsibError, PyinfraError, ValueError) as exc:
                result.hosts[h.name].error = str(exc)
                if progress:
                    progress.event(h.name, "failed", str(exc))
                # the host leaves the run before any of its operations executes
                state.failed_hosts.add(host)
                state.active_hosts.discard(host)
        if not check and state.active_hosts:
            try:
                run_ops(state)
            except PyinfraError as exc:  # "No hosts remaining!": every host failed; counted below
                for h in hosts:
                    if not result.hosts[h.name].error and state.inventory.get_host(h.name) in state.failed_hosts:
                        result.hosts[h.name].error = str(exc)
    finally:
        disconnect_all(state)
    for host in state.inventory:
        hr = result.hosts[host.name]
        if hr.error:
            hr.failed = max(hr.failed, 1)
            continue
        for op_data in state.ops.get(host, {}).values():
            meta = op_data.operation_meta
            if check:
                hr.count("changed" if meta._maybe_is_change else "unchanged")
            elif not meta.is_complete() or meta.did_error():
                hr.count("failed")
            else:
                hr.count("changed" if meta.did_change() else "unchanged")
    return result


def _forget_ssh_files() -> None:
    """Make pyinfra read known_hosts and ssh_config afresh for this run.

    pyinfra memoizes both for the life of the process: a host whose key was re-pinned since an
    earlier run in the same process (a reinstalled appliance, `msib lab reset`) would be refused
    against the old key, and a key removed from known_hosts would still be trusted.
    """
    from pyinfra.connectors.sshuserclient import client

    for loader in (client.get_host_keys, client.get_ssh_config):
        loader.cache.clear()


def _op_name(state: Any, op_hash: str) -> str:
    try:
        names = state.get_op_meta(op_hash).names
        return ", ".join(sorted(names)) or op_hash
    except KeyError:
        return op_hash
