"""The Ansible engine: each role's playbook (``playbooks/<role>.yml``) through ansible-runner, side by side.

Ansible never renders the role templates itself: the roles install files through the
``msib.appliances.config`` action plugin, which asks msib.render for the bytes.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from msib.contract import LINUX_ROLES, Appliance, Inventory
from msib.engines.result import REPO, DeployResult, HostResult, Outcome, Progress, step_error
from msib.errors import DeployError

_OUTCOMES: dict[str, Outcome] = {
    "runner_on_failed": "failed",
    "runner_on_unreachable": "failed",
    "runner_on_skipped": "skipped",
}


def run(inventory: Inventory, hosts: Sequence[Appliance], *, check: bool, extra_vars: dict[str, Any],
        progress: Progress | None, step_timeout: float) -> DeployResult:
    """Run each role's playbook on its `hosts`, side by side (check mode when `check`), forks >= hosts.

    Every task is bounded by `step_timeout` (``ANSIBLE_TASK_TIMEOUT``); a failed task sets its
    host's error to the task, its module and arguments, and Ansible's message.
    """
    import ansible_runner

    result = DeployResult("ansible", check, {h.name: HostResult() for h in hosts})
    # one ansible-playbook per role, side by side: site.yml's plays run one after another, and a
    # role's hosts share nothing with another role's (pyinfra interleaves the roles the same way)
    roles = [r for r in LINUX_ROLES if any(h.role == r for h in hosts)]
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> bool:
        with lock:
            return _count(event, result, progress, step_timeout)

    bindir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_FORKS": str(max(len(hosts), 5)),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_TASK_TIMEOUT": str(int(step_timeout)),
        "ANSIBLE_DISPLAY_ARGS_TO_STDOUT": "True",  # a failed task names its module arguments
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    cmdline = "--check" if check else None

    def play(role: str) -> tuple[str, Any]:
        with tempfile.TemporaryDirectory(prefix="msib-ansible-") as tmp:
            r = ansible_runner.run(
                private_data_dir=tmp,
                playbook=str(REPO / "playbooks" / f"{role}.yml"),
                inventory=str(inventory.hosts_file),
                limit=",".join(h.name for h in hosts if h.role == role),
                extravars=extra_vars or None,
                envvars=env,
                cmdline=cmdline,
                event_handler=on_event,
                quiet=True,
                suppress_env_files=True,
                project_dir=str(REPO),
            )
            tail = (r.stdout.read()[-2000:] if r.stdout else "").strip()
        return tail, r

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(roles)) as pool:
        runs = dict(zip(roles, pool.map(play, roles), strict=True))
    for role, (tail, r) in runs.items():
        if r.status not in ("successful", "failed"):
            raise DeployError(f"ansible-playbook did not run for {role} ({r.status}, rc={r.rc}): {tail}")
        for h in hosts:
            hr = result.hosts[h.name]
            if h.role == role and hr.changed + hr.unchanged + hr.failed == 0 and r.rc != 0:
                hr.error = hr.error or "no task ran on this host"
                hr.failed = 1
    return result


def _count(event: dict[str, Any], result: DeployResult, progress: Progress | None, step_timeout: float) -> bool:
    """Count one ansible-runner event into its host's result (and tell `progress`)."""
    name = event.get("event", "")
    data = event.get("event_data") or {}
    host = data.get("host")
    if host not in result.hosts:
        return True
    if name == "runner_on_start":
        if progress:
            progress.start(host, str(data.get("task", "")))
        return True
    if name not in ("runner_on_ok", *_OUTCOMES):
        return True
    if name == "runner_on_ok":
        outcome: Outcome = "changed" if (data.get("res") or {}).get("changed") else "unchanged"
    else:
        outcome = _OUTCOMES[name]
        if name == "runner_on_failed" and data.get("ignore_errors"):
            outcome = "unchanged"
    if name == "runner_on_unreachable":
        result.hosts[host].error = str((data.get("res") or {}).get("msg", "unreachable"))[:300]
    elif outcome == "failed" and result.hosts[host].error is None:
        result.hosts[host].error = _failure(data, step_timeout)
    result.hosts[host].count(outcome)
    if progress:
        progress.event(host, outcome, str(data.get("task", "")))
    return True


def _failure(data: dict[str, Any], step_timeout: float) -> str:
    """The failed task, its module and arguments (the command), and Ansible's message."""
    res = data.get("res") or {}
    # "k=v, k=v" (ANSIBLE_DISPLAY_ARGS_TO_STDOUT), less Ansible's internal _ansible_* arguments
    args = ", ".join(a for a in re.split(r", (?=\w+=)", str(data.get("task_args") or ""))
                     if not a.startswith("_ansible_"))
    command = res.get("cmd") or f"{data.get('task_action', '')} {args}".strip() or None
    if isinstance(command, list):
        command = " ".join(str(c) for c in command)
    msg = str(res.get("msg") or "")
    timed_out = bool(res.get("timedout")) or "expected time frame" in msg
    detail = " ".join(str(x) for x in (msg, (res.get("stderr") or "")[-300:]) if x)
    return step_error(str(data.get("task", "")), command=str(command) if command else None,
                      detail="" if timed_out else detail, timed_out_after=step_timeout if timed_out else None)
