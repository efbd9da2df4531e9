"""What `msib deploy` refuses or keeps to itself, without the lab: one deploy of an inventory at a time,
dangerous --vars only with the flag named for the danger, the site's known_hosts for every command
that connects, and no secret in what ansible-runner writes (not even after a crash)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inventory_helpers import refusing_inventory, write_inventory
from msib import contain, contract, update
from msib.checks import run_checks
from msib.engines import ansible
from msib.engines.deploy import deploy_lock_path, refuse_dangerous_vars, run_deploy
from msib.errors import InputError

MSIB = [sys.executable, "-c", "from msib.cli import main; main()"]
CANARY = "siem-pw-canary-7f3a9c"


def _msib(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MSIB, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_a_second_deploy_of_the_same_inventory_exits_75_at_once(tmp_path: Path) -> None:
    inv = refusing_inventory(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys; from msib.fsutil import exclusive_lock\n"
        f"with exclusive_lock({str(deploy_lock_path(inv))!r}, 'msib deploy'):\n"
        "    print('held', flush=True); sys.stdin.read()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        run = _msib("deploy", "-i", str(inv), "--engine", "pyinfra")
        assert run.returncode == 75, run.stdout + run.stderr
        assert "another msib deploy" in run.stderr and f"pid {holder.pid}" in run.stderr
        assert "col-int-1" not in run.stdout  # no engine ran: no summary
    finally:
        holder.communicate("", timeout=30)
    assert deploy_lock_path(inv) == inv.parent / "inventory.deploy.lock"


@pytest.mark.parametrize(("variables", "flag"), [
    ("ssh_strict_host_key_checking: 'no'\n", "--allow-unverified-hosts"),
    ("ssh_known_hosts_file: /dev/null\n", "--allow-unverified-hosts"),
    ("ansible_ssh_common_args: -o StrictHostKeyChecking=no\n", "--allow-unverified-hosts"),
    ("firewall_guard: false\n", "--allow-lockout"),
])
def test_dangerous_vars_are_refused_without_the_flag_named_for_the_danger(
        tmp_path: Path, variables: str, flag: str) -> None:
    inv = refusing_inventory(tmp_path)
    (tmp_path / "vars.yml").write_text(variables)
    run = _msib("deploy", "-i", str(inv), "--engine", "pyinfra", "--vars", str(tmp_path / "vars.yml"))
    assert run.returncode == 2, run.stdout + run.stderr
    name = variables.split(":")[0]
    assert "--vars" in run.stderr and name in run.stderr and flag in run.stderr
    assert run.stderr.count("\n") == 1
    # with the flag, the danger is the operator's choice (and nothing else is refused)
    refuse_dangerous_vars({name: "x"}, allow_unverified_hosts=True, allow_lockout=True)
    refuse_dangerous_vars({"firewall_guard": True, "collector_ca_file": "/x"})


def _without_known_hosts(tmp_path: Path) -> Path:
    inv = write_inventory(tmp_path / "inv", known_hosts=tmp_path / "kh")
    text = (inv / "hosts.yml").read_text().replace(f"known_hosts_file: {tmp_path / 'kh'}", "known_hosts_file: null")
    assert "known_hosts_file: null" in text
    (inv / "hosts.yml").write_text(text)
    return inv


def test_every_command_that_connects_refuses_an_inventory_without_known_hosts(tmp_path: Path) -> None:
    inv = _without_known_hosts(tmp_path)
    with pytest.raises(InputError, match="no known_hosts"):
        run_deploy(inv, "ansible", limit="col-int-1")
    with pytest.raises(InputError, match="no known_hosts"):
        run_checks(inv, limit=["col-int-1"])
    with pytest.raises(InputError, match="no known_hosts"):
        update.run_update(inv, packages=True, limit=["col-int-1"], lock=tmp_path / "update.lock")
    with pytest.raises(InputError, match="no known_hosts"):
        contain.contain(inv, "198.18.16.100", opts=contain.Options(audit_log=tmp_path / "audit.jsonl"))


def test_ssh_is_told_the_site_known_hosts_and_no_other() -> None:
    ssh = contract.Ssh(user="msib", known_hosts_file="/site/known_hosts").verified()
    argv = ssh.argv()
    assert "UserKnownHostsFile=/site/known_hosts" in argv and "GlobalKnownHostsFile=/dev/null" in argv
    config = ssh.run_config([], Path("/x"))
    assert "GlobalKnownHostsFile /dev/null" in config and "UserKnownHostsFile /site/known_hosts" in config


def _whole_json(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return False


def test_ansible_runner_records_no_secret_and_its_directory_goes_even_after_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = refusing_inventory(tmp_path)
    cache = tmp_path / "cache"
    env = {**os.environ, "COLUMNS": "200", "XDG_CACHE_HOME": str(cache), "MSIB_SIEM_PASSWORD": CANARY,
           "MSIB_DEVICE_PASSWORD": CANARY}
    proc = subprocess.Popen([*MSIB, "deploy", "-i", str(inv), "--engine", "ansible"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    runs = cache / "msib" / "ansible"
    deadline = time.monotonic() + 60
    command: list[Path] = []
    while not command or not _whole_json(command[0]):  # ansible-runner opens the file, then writes it
        assert time.monotonic() < deadline and proc.poll() is None, "ansible-runner never wrote its command file"
        command = list(runs.glob("run-*/artifacts/*/command"))
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # a crash: nothing of msib's cleans up
    proc.wait()
    recorded = command[0].read_text()
    assert CANARY not in recorded and "MSIB_SIEM_PASSWORD" not in recorded
    assert '"PATH"' in recorded  # it is the environment file, with what Ansible needs
    private = command[0].parents[2]
    assert private.parent == runs and (runs.stat().st_mode & 0o777) == 0o700
    assert (private.stat().st_mode & 0o777) == 0o700
    assert not str(private).startswith(("/tmp/msib-ansible", "/var/tmp"))
    # the next run removes what the crashed one left, and leaves nothing itself
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    result = run_deploy(inv, "ansible", extra_vars={"collector_ca_file": "/nonexistent"}, step_timeout=60)
    assert not result.ok
    assert list(runs.iterdir()) == []
    assert ansible.runs_dir() == runs
