"""Both engines on fresh lab appliances: converge, then zero changes, then byte-identical files.

Each appliance is reset (newly installed), deployed with pyinfra, deployed again (no change), its
managed files hashed; then reset again and the same with Ansible. The two sets of hashes (and
modes, owners, service states) must be identical.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import host_state
from msib import contract
from msib.engines.deploy import run_deploy
from msib.engines.result import DeployResult
from msib.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine_runs(deploy_lab: Lab, inventory_dir: Any, lab_vars: dict[str, Any]) -> dict[str, Any]:
    """For each engine: first run, second run, and the state of every appliance after them."""
    hosts = contract.load(inventory_dir).of(*contract.LINUX_ROLES)
    names = [h.name for h in hosts]
    runs: dict[str, Any] = {}
    for engine in ("pyinfra", "ansible"):
        deploy_lab.reset(names)
        first = run_deploy(inventory_dir, engine, extra_vars=lab_vars)  # type: ignore[arg-type]
        second = run_deploy(inventory_dir, engine, extra_vars=lab_vars)  # type: ignore[arg-type]
        states = {h.name: host_state(deploy_lab, h.name, h.role) for h in hosts}
        runs[engine] = {"first": first, "second": second, "states": states}
    return runs


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_engine_converges_every_fresh_appliance(engine_runs: dict[str, Any], engine: str) -> None:
    first: DeployResult = engine_runs[engine]["first"]
    assert first.ok, first.to_json()
    assert len(first.hosts) == 6
    assert all(h.changed > 0 for h in first.hosts.values()), first.to_json()


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_second_run_reports_zero_changes(engine_runs: dict[str, Any], engine: str) -> None:
    second: DeployResult = engine_runs[engine]["second"]
    assert second.ok, second.to_json()
    assert {n: h.changed for n, h in second.hosts.items()} == dict.fromkeys(second.hosts, 0)


def test_managed_files_are_byte_identical_between_engines(engine_runs: dict[str, Any]) -> None:
    py, ans = engine_runs["pyinfra"]["states"], engine_runs["ansible"]["states"]
    assert py.keys() == ans.keys()
    for host in py:
        files = {k: v for k, v in py[host].items() if k.startswith("/")}
        assert all("missing" not in v for v in files.values()), (host, files)
        assert py[host] == ans[host], host


def test_services_run_after_each_engine(engine_runs: dict[str, Any]) -> None:
    for engine in ("pyinfra", "ansible"):
        for host, state in engine_runs[engine]["states"].items():
            units = {k: v for k, v in state.items() if k.startswith("unit:") and "nftables" not in k}
            assert all(v == "active enabled" for v in units.values()), (engine, host, units)
