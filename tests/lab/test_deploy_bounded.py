"""A host stuck in a step fails by itself, named with its step and command; the other hosts finish.

The stuck step is real: dpkg on ids-ext-1 gets a pre-invoke hook that never returns, so the
package install of the IDS sensor role hangs there as an install behind a hung hook or a stalled
mirror connection would. Before msib ran pyinfra in a gevent-patched worker, an operation's
`_timeout` never fired (paramiko's blocking reads held the run) and the deploy waited for ever.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import ssh
from msib.engines.deploy import run_deploy
from msib.engines.result import Outcome
from msib.lab import Lab

pytestmark = pytest.mark.lab
STUCK, HEALTHY = "ids-ext-1", "ids-int-1"
BOUND_S = 40


class Recorder:
    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []
        self.ended: list[tuple[str, Outcome, str]] = []

    def start(self, host: str, what: str) -> None:
        self.started.append((host, what))

    def event(self, host: str, outcome: Outcome, what: str) -> None:
        self.ended.append((host, outcome, what))


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_a_stuck_host_fails_with_its_step_and_command_and_the_others_finish(
        deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any], engine: str) -> None:
    deploy_lab.reset([STUCK, HEALTHY])
    ssh(deploy_lab, STUCK, "echo 'DPkg::Pre-Invoke {\"sleep 3600\";};' > /etc/apt/apt.conf.d/00msib-test-hang")
    progress = Recorder()
    try:
        result = run_deploy(inventory_dir, engine, limit=f"{STUCK},{HEALTHY}", extra_vars=lab_vars,  # type: ignore[arg-type]
                            progress=progress, step_timeout=BOUND_S)
    finally:
        deploy_lab.reset([STUCK])  # the hung dpkg holds its lock: a fresh host for the next tests
    healthy, stuck = result.hosts[HEALTHY], result.hosts[STUCK]
    assert healthy.failed == 0 and healthy.error is None and healthy.changed > 0, result.to_json()
    assert stuck.failed >= 1
    assert stuck.error is not None
    assert "Install Suricata" in stuck.error
    assert f"timed out after {BOUND_S} s" in stuck.error
    assert "apt" in stuck.error.split("--step-timeout):", 1)[1]  # the command: apt-get / the apt module
    # the display knew which step each host was on while it waited
    assert any(h == STUCK and "Install Suricata" in what for h, what in progress.started)
    assert any(h == HEALTHY for h, _o, _w in progress.ended)
