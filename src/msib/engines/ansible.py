"""The Ansible engine: each role's playbook (``playbooks/<role>.yml``) through ansible-runner, side by side.

Ansible never renders the role templates itself: the roles install files through the
``msib.appliances.config`` action plugin, which asks msib.render for the bytes.

ansible-runner writes its private data directory (``artifacts/*/command`` holds the whole
environment of the run). So it gets one of its own per run, 0700, under the user's cache (never
/tmp), removed after the run and, after a crash, by the next run; the environment it records is
built from an allow-list (no SIEM or device password ever reaches it), and the role variables go
in a 0600 file there, never on a command line.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from msib.contract import LINUX_ROLES, Appliance, Inventory
from msib.engines.result import REPO, DeployResult, HostResult, Outcome, Progress, step_error
from msib.errors import DeployError

#: Variables of msib's own environment that Ansible may see (everything else, secrets included, is left out).
ENV_ALLOWED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "SSH_AUTH_SOCK",
               "MSIB_ROLES_DIR")

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
    result = DeployResult("ansible", check, {h.name: HostResult() for h in hosts})
    # one ansible-playbook per role, side by side: site.yml's plays run one after another, and a
    # role's hosts share nothing with another role's (pyinfra interleaves the roles the same way)
    roles = [r for r in LINUX_ROLES if any(h.role == r for h in hosts)]
    lock = threading.Lock()

    def on_event(event: dict[str, Any]) -> bool:
        with lock:
            return _count(event, result, progress, step_timeout)

    ssh = inventory.ssh.verified()  # the site's known_hosts, never ~/.ssh/known_hosts
    bindir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        # Ansible's own ssh_args, then the site's known_hosts only, no fallback: before the inventory's
        # arguments, so they win (ssh takes the first value of an option)
        "ANSIBLE_SSH_ARGS": " ".join(["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
                                      *(shlex.quote(a) for a in ssh.host_key_options())]),
        "ANSIBLE_FORKS": str(max(len(hosts), 5)),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_TASK_TIMEOUT": str(int(step_timeout)),
        "ANSIBLE_DISPLAY_ARGS_TO_STDOUT": "True",  # a failed task names its module arguments
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    cmdline = "--check" if check else None

    def play(role: str, private: Path) -> tuple[str, Any]:
        extravars = private / "env" / "extravars"
        extravars.parent.mkdir(mode=0o700)
        fd = os.open(extravars, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(extra_vars or {}, fh)
        import ansible_runner.interface

        runner = ansible_runner.interface.init_runner(
            private_data_dir=str(private),
            playbook=str(REPO / "playbooks" / f"{role}.yml"),
            inventory=str(inventory.hosts_file),
            limit=",".join(h.name for h in hosts if h.role == role),
            envvars=env,
            cmdline=cmdline,
            event_handler=on_event,
            quiet=True,
            suppress_env_files=True,
            project_dir=str(REPO),
        )
        runner.config.env = runner_env(runner.config.env, os.environ, env)
        runner.run()
        # Ansible's own last words: the reason when a run fails before any task (read before the cleanup)
        return (runner.stdout.read()[-2000:] if runner.stdout else "").strip(), runner

    # the private directories are made here, one after another: a directory being made in one thread
    # must never be judged a dead run's by another thread's sweep
    privates = [_private_dir() for _ in roles]
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(roles)) as pool:
            runs = dict(zip(roles, pool.map(play, roles, [p for p, _ in privates]), strict=True))
    finally:
        for private, owner in privates:
            shutil.rmtree(private, ignore_errors=True)
            os.close(owner)
    for role, (tail, r) in runs.items():
        if r.status not in ("successful", "failed"):
            raise DeployError(f"ansible-playbook did not run for {role} ({r.status}, rc={r.rc}): {tail}")
        for h in hosts:
            hr = result.hosts[h.name]
            if h.role == role and hr.changed + hr.unchanged + hr.failed == 0 and r.rc != 0:
                why = " ".join(ln.strip() for ln in tail.splitlines()[-3:] if ln.strip())[:300]
                hr.error = hr.error or (f"no task ran on this host (ansible-playbook exit {r.rc})"
                                        + (f": {why}" if why else ""))
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


def runs_dir() -> Path:
    """Where the runs' private data directories go: ``$XDG_CACHE_HOME/msib/ansible`` (``~/.cache``), 0700."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "msib" / "ansible"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def _private_dir() -> tuple[Path, int]:
    """A new 0700 private data directory for this run, and the descriptor of its owner lock.

    A run holds an exclusive ``flock`` on ``<dir>/.owner`` while it lives (the kernel drops it
    however the process ends); a directory whose lock is free belonged to a run that died, and
    is removed here first.
    """
    runs = runs_dir()
    for old in runs.glob("run-*"):
        try:
            fd = os.open(old / ".owner", os.O_RDWR | os.O_CLOEXEC)
        except OSError:  # being created right now, or not ours to judge
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # its run is alive
        finally:
            os.close(fd)
        shutil.rmtree(old, ignore_errors=True)
    private = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    owner = os.open(private / ".owner", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(owner, fcntl.LOCK_EX)
    return private, owner


def runner_env(prepared: Mapping[str, str], inherited: Mapping[str, str], ours: Mapping[str, str]) -> dict[str, str]:
    """The environment ansible-runner records and runs Ansible with: what it and msib set, and of the
    inherited environment only :data:`ENV_ALLOWED` (a secret in msib's environment never reaches it).

    >>> runner_env({"PATH": "/bin", "MSIB_SIEM_PASSWORD": "s", "AWX_X": "1"}, {"PATH": "/bin",
    ...            "MSIB_SIEM_PASSWORD": "s"}, {})
    {'PATH': '/bin', 'AWX_X': '1'}
    """
    return {k: v for k, v in prepared.items()
            if k in ENV_ALLOWED or k in ours or k not in inherited or inherited[k] != v}


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
