"""The engines of `msib deploy` without the lab: host selection, the result and its summary, step errors,
the input checks made before anything runs, and both engines end to end against a host that refuses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from inventory_helpers import refusing_inventory, write_inventory
from msib import contract
from msib.engines import ansible, pyinfra
from msib.engines.deploy import DEPLOY_ROLES, run_deploy, select
from msib.engines.result import DeployResult, HostResult, step_error
from msib.errors import InputError


@pytest.fixture(scope="module")
def lab_inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kh = tmp_path_factory.mktemp("engines") / "known_hosts"
    kh.write_text("")
    return write_inventory(kh.parent / "inventory", known_hosts=kh)


def test_select_takes_names_and_roles_and_refuses_the_unknown(lab_inventory: Path) -> None:
    hosts = contract.load(lab_inventory).of(*DEPLOY_ROLES)
    assert select(hosts, None) == list(hosts)
    assert [h.name for h in select(hosts, "collector")] == [h.name for h in hosts if h.role == "collector"]
    assert [h.name for h in select(hosts, " fw-int-1 , ids_sensor")] == [
        h.name for h in hosts if h.role == "ids_sensor" or h.name == "fw-int-1"]
    with pytest.raises(InputError) as err:
        select(hosts, "collector,no-such-host")
    assert err.value.file == "--limit" and "no-such-host" in err.value.message and "col-int-1" in (err.value.fix or "")


def test_the_result_counts_per_host_and_summarises() -> None:
    a, b = HostResult(), HostResult()
    for outcome in ("changed", "unchanged", "unchanged", "skipped"):
        a.count(outcome)  # type: ignore[arg-type]
    b.count("failed")
    result = DeployResult("pyinfra", False, {"b": b, "a": a}, seconds=1.234)
    assert (a.changed, a.unchanged, a.failed) == (1, 2, 0)
    assert not result.ok and result.changed == 1
    assert result.to_json() == {"engine": "pyinfra", "check": False, "seconds": 1.23, "hosts": {
        "a": {"changed": 1, "unchanged": 2, "failed": 0}, "b": {"changed": 0, "unchanged": 0, "failed": 1}}}
    b.failed, b.error = 0, "cannot connect"
    assert not result.ok and result.to_json()["hosts"]["b"]["error"] == "cannot connect"
    assert DeployResult("ansible", True, {"a": a}).ok


def test_a_failed_step_is_one_line_with_its_command_and_why() -> None:
    assert step_error("Install nftables", command="apt-get install nftables", detail="E: no\n  space") == (
        "step 'Install nftables' failed: apt-get install nftables: E: no space")
    assert step_error("X", command=None, detail="", timed_out_after=40) == (
        "step 'X' timed out after 40 s (limit: --step-timeout)")
    assert len(step_error("X", command="c", detail="y" * 1000)) < 350


def test_an_ansible_task_failure_names_the_task_its_module_arguments_and_the_message() -> None:
    data = {"task": "Install nftables", "task_action": "ansible.builtin.apt",
            "task_args": "name=['nftables'], state=present, _ansible_check_mode=False",
            "res": {"msg": "No package matching 'nftables'", "stderr": ""}}
    assert ansible._failure(data, 600) == ("step 'Install nftables' failed: ansible.builtin.apt name=['nftables'], "
                                           "state=present: No package matching 'nftables'")
    timed = {"task": "Install Suricata", "task_action": "ansible.builtin.apt", "task_args": "name=suricata",
             "res": {"msg": "The task was not completed within the expected time frame"}}
    assert ansible._failure(timed, 40) == ("step 'Install Suricata' timed out after 40 s (limit: --step-timeout): "
                                           "ansible.builtin.apt name=suricata")
    assert ansible._failure({"task": "t", "res": {"cmd": ["nft", "-f", "x"], "msg": "m"}}, 9).endswith(
        ": nft -f x: m")


def test_bad_input_is_refused_before_anything_runs(lab_inventory: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown engine"):
        run_deploy(lab_inventory, "salt")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no host or role called nope"):
        run_deploy(lab_inventory, "pyinfra", limit="nope")
    with pytest.raises(InputError, match="must be a positive number"):
        run_deploy(lab_inventory, "ansible", step_timeout=0)
    with pytest.raises(InputError, match=r"no hosts\.yml"):
        run_deploy(tmp_path, "pyinfra")
    (tmp_path / "hosts.yml").write_text("all: {children: {netdev: {hosts: {f: {ansible_host: 10.0.0.1}}}}}\n")
    with pytest.raises(InputError, match="no collector, ids_sensor or firewall hosts"):
        run_deploy(tmp_path, "pyinfra")


def test_pyinfra_refuses_hosts_without_known_hosts_before_its_worker_starts(tmp_path: Path) -> None:
    inv = write_inventory(tmp_path / "inv", known_hosts=tmp_path / "kh")
    text = (inv / "hosts.yml").read_text().replace(f"known_hosts_file: {tmp_path / 'kh'}", "known_hosts_file: null")
    (inv / "hosts.yml").write_text(text)
    loaded = contract.load(inv)
    with pytest.raises(InputError, match="no known_hosts"):
        pyinfra.run(loaded, loaded.of("collector"), check=False, extra_vars={}, progress=None, step_timeout=60)
    with pytest.raises(InputError, match="plain data"):
        write_inventory(tmp_path / "inv2", known_hosts=tmp_path / "kh")
        ok = contract.load(tmp_path / "inv2")
        pyinfra.run(ok, ok.of("collector"), check=False, extra_vars={"x": object()}, progress=None, step_timeout=60)
    assert importlib.util.find_spec(pyinfra.WORKER) is not None


class _Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def start(self, host: str, what: str) -> None:
        pass

    def event(self, host: str, outcome: str, what: str) -> None:
        self.events.append((host, outcome, what))


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_a_host_that_refuses_the_connection_fails_and_is_reported(engine: str, tmp_path: Path) -> None:
    seen = _Seen()
    result = run_deploy(refusing_inventory(tmp_path), engine, extra_vars={"collector_ca_file": "/nonexistent"},  # type: ignore[arg-type]
                        progress=seen, step_timeout=60)
    assert result.engine == engine and not result.ok and list(result.hosts) == ["col-int-1"]
    host = result.hosts["col-int-1"]
    assert host.failed >= 1 and host.changed == 0 and host.error
    assert any(h == "col-int-1" and outcome == "failed" for h, outcome, _w in seen.events)
    assert result.seconds > 0
