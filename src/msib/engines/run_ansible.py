"""Run ``playbooks/site.yml`` with ansible-runner, counting per-task events per host.

Ansible never renders the role templates itself: the roles install files through the
``msib.appliances.config`` action plugin, which asks msib.render for the bytes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from msib.deploy import DEPLOY_ROLES, REPO, DeployResult, HostResult, InventoryHost, Outcome, Progress
from msib.errors import DeployError

_OUTCOMES: dict[str, Outcome] = {
    "runner_on_failed": "failed",
    "runner_on_unreachable": "failed",
    "runner_on_skipped": "skipped",
}


def run(hosts_file: Path, hosts: list[InventoryHost], *, check: bool, extra_vars: dict[str, Any],
        progress: Progress | None) -> DeployResult:
    """Run the site playbook on `hosts` (check mode when `check`), forks >= hosts, pipelining on."""
    import ansible_runner

    result = DeployResult("ansible", check, {h.name: HostResult() for h in hosts})
    roles = {h.role for h in hosts}
    playbook = REPO / "playbooks" / ("site.yml" if roles == set(DEPLOY_ROLES) or len(roles) > 1
                                     else f"{roles.pop()}.yml")

    def on_event(event: dict[str, Any]) -> bool:
        name = event.get("event", "")
        data = event.get("event_data") or {}
        host = data.get("host")
        if host not in result.hosts or name not in ("runner_on_ok", *_OUTCOMES):
            return True
        if name == "runner_on_ok":
            outcome: Outcome = "changed" if (data.get("res") or {}).get("changed") else "unchanged"
        else:
            outcome = _OUTCOMES[name]
            if name == "runner_on_failed" and data.get("ignore_errors"):
                outcome = "unchanged"
        if name == "runner_on_unreachable":
            result.hosts[host].error = str((data.get("res") or {}).get("msg", "unreachable"))[:300]
        result.hosts[host].count(outcome)
        if progress:
            progress.event(host, outcome, str(data.get("task", "")))
        return True

    bindir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_FORKS": str(max(len(hosts), 5)),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }
    cmdline = "--check" if check else None
    with tempfile.TemporaryDirectory(prefix="msib-ansible-") as tmp:
        r = ansible_runner.run(
            private_data_dir=tmp,
            playbook=str(playbook),
            inventory=str(hosts_file),
            limit=",".join(h.name for h in hosts),
            extravars=extra_vars or None,
            envvars=env,
            cmdline=cmdline,
            event_handler=on_event,
            quiet=True,
            suppress_env_files=True,
            project_dir=str(REPO),
        )
        if r.status not in ("successful", "failed"):
            tail = (r.stdout.read()[-2000:] if r.stdout else "").strip()
            raise DeployError(f"ansible-playbook did not run ({r.status}, rc={r.rc}): {tail}")
    for hr in result.hosts.values():
        if hr.changed + hr.unchanged + hr.failed == 0 and r.rc != 0:
            hr.error = hr.error or "no task ran on this host"
            hr.failed = 1
    return result
