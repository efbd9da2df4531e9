"""Rollouts in waves: canary first, budgets per circuit and per wave, a halt that says why, resuming."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path

import pytest

from fleet_helpers import free_port, refusing_site, write_lab_like_fleet, write_sb
from msib.errors import InputError
from msib.fleet.build import build_fleet
from msib.fleet.model import Fleet, WavePlan, load_fleet
from msib.fleet.waves import Failure, RolloutBusy, SbOutcome, judge, load_rollout, plan_waves, run_rollout

REPO = Path(__file__).resolve().parents[1]


def _fleet(tmp_path: Path, extra: tuple[str, ...] = ("c1", "c2", "c3")) -> Fleet:
    """The lab's two SBs plus more copies of akm (c1..), all built."""
    root = write_lab_like_fleet(tmp_path / "fleet")
    from fleet_helpers import lab_appendices, site_data

    for code in extra:
        write_sb(root, code, site_data("akm") | {"code": code, "state_body": f"Akimat {code}"},
                 {"2026Q4.csv": lab_appendices("akm")["2026Q4.csv"].replace("Лабораторный акимат", f"Akimat {code}")})
    fleet = load_fleet(root)
    assert all(r.ok for r in build_fleet(fleet))
    return fleet


class Runner:
    """Stands in for deploy/update/check: each SB has two circuits of two hosts; `bad` SBs fail a host."""

    def __init__(self, bad: dict[str, list[tuple[str, str]]] | None = None) -> None:
        self.bad = bad or {}
        self.calls: list[str] = []

    def __call__(self, code: str, inventory: Path) -> SbOutcome:
        self.calls.append(code)
        assert (inventory / "hosts.yml").is_file()
        hosts = {"col-int-1": "internal", "ids-int-1": "internal", "col-ext-1": "external", "ids-ext-1": "external"}
        return SbOutcome(hosts=hosts, failures=[Failure(code, hosts[h], h, step)
                                                for h, step in self.bad.get(code, [])])


def test_waves_are_the_canary_then_groups_of_the_size_in_code_or_region_order() -> None:
    plan = WavePlan(canary=["m", "zz"], size=2)
    assert plan_waves(["a", "b", "c", "m", "x"], plan, lambda c: "") == [["m"], ["a", "b"], ["c", "x"]]
    regional = WavePlan(size=2, order="region")
    region = {"a": "south", "b": "north", "c": "north"}.get
    assert plan_waves(["a", "b", "c"], regional, lambda c: region(c) or "") == [["b", "c"], ["a"]]


def test_an_sb_fails_when_a_circuit_is_over_its_share() -> None:
    hosts = {"a": "internal", "b": "internal", "c": "internal", "d": "external"}
    one = SbOutcome(hosts=hosts, failures=[Failure("x", "internal", "a", "step")])
    assert judge(one, 0.0) == ["internal"]
    assert judge(one, 0.34) == []  # 1 of 3 is within a third
    assert judge(SbOutcome(error="inventory unreadable"), 0.5) == ["(the SB)"]


def test_a_wave_over_budget_halts_the_rollout_says_why_and_leaves_later_waves_untouched(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    runner = Runner(bad={"c1": [("col-ext-1", "step 'Install rsyslog' failed: apt-get install -y rsyslog")]})
    plan = WavePlan(canary=["akm"], size=2)
    rollout = run_rollout(fleet, "deploy", runner, rollout_id="r1", plan=plan, options={"engine": "pyinfra"})
    assert rollout.waves == [["akm"], ["c1", "c2"], ["c3", "lab"]]
    assert rollout.state == "halted" and runner.calls == ["akm", "c1", "c2"]
    halted = rollout.halted
    assert halted is not None and halted["name"] == "wave 2" and halted["untouched"] == ["c3", "lab"]
    assert halted["failures"] == [{"sb": "c1", "circuit": "external", "host": "col-ext-1",
                                   "step": "step 'Install rsyslog' failed: apt-get install -y rsyslog"}]
    assert {c: r.status for c, r in rollout.sbs.items()} == {"akm": "done", "c1": "failed", "c2": "done",
                                                             "c3": "pending", "lab": "pending"}
    saved = fleet.state_dir / "rollouts" / "r1.json"
    assert oct(saved.stat().st_mode & 0o777) == "0o600" and load_rollout(fleet, "r1") == rollout
    # the rerun resumes: done SBs are skipped, the failed one runs again, then the rest
    runner.bad = {}
    again = run_rollout(fleet, "deploy", runner, rollout_id="r1", plan=plan, options={"engine": "pyinfra"})
    assert again.state == "done" and runner.calls[3:] == ["c1", "c3", "lab"]
    assert again.sbs["c1"].attempts == 2 and again.sbs["akm"].attempts == 1
    # done is done: a third run does nothing; --restart runs everything again
    assert run_rollout(fleet, "deploy", runner, rollout_id="r1", plan=plan, options={"engine": "pyinfra"}).state \
        == "done" and len(runner.calls) == 6
    run_rollout(fleet, "deploy", runner, rollout_id="r1", plan=plan, options={"engine": "pyinfra"}, restart=True)
    assert len(runner.calls) == 11


def test_the_canary_allows_no_failure_and_later_waves_their_budget(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path)
    plan = WavePlan(canary=["akm"], size=2, max_failed_sbs=1)
    halted = run_rollout(fleet, "check", Runner(bad={"akm": [("ids-int-1", "check MSIB-IDS-001 failed")]}),
                         rollout_id="canary", plan=plan, options={})
    assert halted.state == "halted" and halted.halted is not None and halted.halted["name"] == "canary wave"
    assert halted.halted["untouched"] == ["c1", "c2", "c3", "lab"]
    runner = Runner(bad={"c1": [("col-int-1", "x")]})
    done = run_rollout(fleet, "check", runner, rollout_id="budget", plan=plan, options={})
    assert done.state == "done" and runner.calls == ["akm", "c1", "c2", "c3", "lab"]  # one failed SB is allowed
    share = WavePlan(canary=["akm"], size=4, max_failed_share=0.5)
    ok = run_rollout(fleet, "check", Runner(bad={"lab": [("col-int-1", "x")]}), rollout_id="share", plan=share,
                     options={})
    assert ok.state == "done"  # 1 of 2 hosts of a circuit is not more than half


def test_a_rollout_refuses_other_options_under_its_name_and_runs_one_at_a_time(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path, extra=())
    plan = WavePlan(size=5)
    run_rollout(fleet, "deploy", Runner(bad={"lab": [("col-int-1", "x")]}), rollout_id="r", plan=plan,
                options={"engine": "pyinfra"})
    with pytest.raises(InputError, match="is a deploy with"):
        run_rollout(fleet, "deploy", Runner(), rollout_id="r", plan=plan, options={"engine": "ansible"})
    fd = os.open(fleet.state_dir / "rollout.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(RolloutBusy):
            run_rollout(fleet, "deploy", Runner(), rollout_id="other", plan=plan, options={})
    finally:
        os.close(fd)


def test_a_broken_sb_is_skipped_not_counted(tmp_path: Path) -> None:
    fleet = _fleet(tmp_path, extra=())
    (fleet.root / "sbs" / "akm" / "site.yml").write_text("code: [")
    rollout = run_rollout(fleet, "deploy", Runner(), rollout_id="r", plan=WavePlan(canary=["akm"]), options={})
    assert rollout.state == "done" and rollout.waves == [["lab"]]
    assert "not valid YAML" in rollout.skipped["akm"]


def _refusing_fleet(tmp_path: Path, *, canary_circuits: int) -> Path:
    """Two built SBs whose hosts refuse every connection: the canary aaa, then bbb in a wave of its own."""
    root = tmp_path / "fleet"
    root.mkdir()
    (root / "fleet.yml").write_text("waves: {canary: [aaa], size: 1}\n")
    port = free_port()
    write_sb(root, "aaa", refusing_site("aaa", port, circuits=canary_circuits))
    write_sb(root, "bbb", refusing_site("bbb", port))
    assert all(r.ok for r in build_fleet(load_fleet(root)))
    return root


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_fleet_deploy_halts_after_the_canary_naming_sb_circuit_host_and_step(engine: str, tmp_path: Path) -> None:
    """Both real engines, through `msib fleet deploy`: the canary SB's hosts refuse every connection."""
    root = _refusing_fleet(tmp_path, canary_circuits=2)
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "fleet", "deploy", "--fleet", str(root), "--engine", engine,
                           "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["state"] == "halted" and data["halted"]["name"] == "canary wave"
    assert data["halted"]["untouched"] == ["bbb"] and data["sbs"]["bbb"]["status"] == "pending"
    where = {(f["sb"], f["circuit"], f["host"]) for f in data["halted"]["failures"]}
    assert where == {("aaa", "internal", "col-int-1"), ("aaa", "external", "col-ext-1")}
    assert all(f["step"] for f in data["halted"]["failures"])
    assert data["id"].startswith(f"deploy-{engine}-")
    # the run is in the SB's run log, as `msib deploy` would record it
    log = (root / "build" / "aaa" / "inventory.runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["engine"] for line in log] == [engine]
    assert not (root / "build" / "bbb" / "inventory.runs.jsonl").exists()


@pytest.mark.parametrize("action", ["update", "check"])
def test_fleet_update_and_check_halt_the_same_way(action: str, tmp_path: Path) -> None:
    """`msib fleet update|check` over real SSH to hosts that refuse: the canary fails on its hosts, the rest waits."""
    root = _refusing_fleet(tmp_path, canary_circuits=1)
    extra = ["--packages"] if action == "update" else []
    proc = subprocess.run([str(REPO / ".venv/bin/msib"), "fleet", action, "--fleet", str(root), *extra, "--json"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MSIB_UPDATE_LOCK": str(tmp_path / "update.lock")})
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["state"] == "halted" and data["halted"]["untouched"] == ["bbb"]
    failures = data["halted"]["failures"]
    assert {(f["sb"], f["circuit"], f["host"]) for f in failures} == {("aaa", "internal", "col-int-1")}
    assert all(("packages" in f["step"]) if action == "update" else f["step"].startswith("check MSIB-")
               for f in failures), failures
    kinds = [json.loads(line)["kind"] for line in (root / "build/aaa/inventory.runs.jsonl").read_text().splitlines()]
    assert kinds == [action]
    for p in [*(root / "build").rglob("*"), *(root / "state").rglob("*")]:  # check reports, run logs, rollouts
        assert p.stat().st_mode & 0o777 == (0o700 if p.is_dir() else 0o600), p
