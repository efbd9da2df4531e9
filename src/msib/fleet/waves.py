"""Rollouts in waves: a canary wave, then waves of N SBs, each under a failure budget; resumable.

This is Ansible's ``serial`` + ``max_fail_percentage``, but across SBs and with a budget per
circuit as well as per wave:

- an SB **fails** when it could not be run at all, or when the share of failed appliances of one
  of its circuits is above ``max_failed_share`` (default 0: any failed appliance);
- a wave is **over budget** when more than ``max_failed_sbs`` of its SBs failed (the canary wave
  allows none); the rollout **stops** after that wave, says which SB, circuit, host and step, and
  leaves the later waves untouched.

The rollout's state is a file, ``state/rollouts/<id>.json`` (0600): the waves as planned and each
SB's outcome. Running the same rollout again resumes it: SBs already done are skipped, failed and
untouched ones are run. One rollout at a time holds ``state/rollout.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from msib.errors import InputError, MsibError
from msib.fleet.model import Fleet, WavePlan, survey
from msib.fsutil import atomic_write

Action = Literal["deploy", "update", "check"]
ACTIONS: tuple[Action, ...] = ("deploy", "update", "check")
SbStatus = Literal["pending", "done", "failed", "skipped"]


class RolloutBusy(MsibError):
    """Another rollout of this fleet is running."""

    exit_code = 75


@dataclass(frozen=True)
class Failure:
    """What failed where: the SB, the circuit, the host and the step (or the check, or the update part)."""

    sb: str
    circuit: str | None
    host: str | None
    step: str

    def line(self) -> str:
        where = [f"SB {self.sb}"] + ([f"circuit {self.circuit}"] if self.circuit else []) \
            + ([f"host {self.host}"] if self.host else [])
        return ", ".join(where) + f": {self.step}"


@dataclass
class SbOutcome:
    """What one action did on one SB: its appliances by circuit, what failed, its summary."""

    hosts: dict[str, str | None] = field(default_factory=dict)  # host -> circuit
    failures: list[Failure] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the SB could not be run at all


@dataclass
class SbRun:
    """One SB's place and outcome in a rollout."""

    code: str
    wave: int
    status: SbStatus = "pending"
    failures: list[dict[str, Any]] = field(default_factory=list)
    over_budget: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    finished: float | None = None
    attempts: int = 0


@dataclass
class Rollout:
    """A rollout: its action and options, its waves, every SB's run, and whether it halted where."""

    id: str
    action: Action
    options: dict[str, Any]
    plan: dict[str, Any]
    waves: list[list[str]]
    sbs: dict[str, SbRun]
    state: Literal["running", "halted", "done"] = "running"
    halted: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sbs"] = {k: asdict(v) for k, v in self.sbs.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rollout:
        sbs = {k: SbRun(**v) for k, v in (data.get("sbs") or {}).items()}
        return cls(id=data["id"], action=data["action"], options=dict(data.get("options") or {}),
                   plan=dict(data.get("plan") or {}), waves=[list(w) for w in data.get("waves") or []], sbs=sbs,
                   state=data.get("state", "running"), halted=data.get("halted"),
                   created=float(data.get("created") or 0), updated=float(data.get("updated") or 0),
                   skipped=dict(data.get("skipped") or {}))


def plan_waves(codes: Sequence[str], plan: WavePlan, region_of: Callable[[str], str]) -> list[list[str]]:
    """The canary wave (the plan's canaries present in `codes`), then the rest in waves of ``plan.size``.

    The rest is ordered by code, or by region then code.

    >>> plan_waves(["a", "b", "c", "d"], WavePlan(canary=["c"], size=2), lambda c: "")
    [['c'], ['a', 'b'], ['d']]
    """
    canary = [c for c in plan.canary if c in codes]
    rest = sorted((c for c in codes if c not in canary),
                  key=(lambda c: (region_of(c), c)) if plan.order == "region" else (lambda c: c))
    waves = [canary] if canary else []
    waves += [rest[i:i + plan.size] for i in range(0, len(rest), plan.size)]
    return waves


def judge(outcome: SbOutcome, max_failed_share: float) -> list[str]:
    """The circuits of an SB over budget (``["(the SB)"]`` when it could not be run at all); [] when it passed."""
    if outcome.error is not None:
        return ["(the SB)"]
    per: dict[str | None, list[str]] = {}
    for host, circuit in outcome.hosts.items():
        per.setdefault(circuit, []).append(host)
    failed_hosts = {(f.circuit, f.host) for f in outcome.failures if f.host}
    over = []
    for circuit, hosts in sorted(per.items(), key=lambda kv: str(kv[0])):
        bad = sum((circuit, h) in failed_hosts for h in hosts)
        if hosts and bad / len(hosts) > max_failed_share:
            over.append(str(circuit))
    if any(f.host is None for f in outcome.failures) and not over:
        over.append("(the SB)")
    return over


def default_name(action: Action, options: Mapping[str, Any], now: float | None = None) -> str:
    """The rollout's name when none is given: the action, its options and the UTC date (a rerun that day resumes).

    >>> default_name("deploy", {"engine": "pyinfra", "check": False}, now=0)
    'deploy-pyinfra-19700101'
    """
    words = [k if v is True else str(v) for k, v in sorted(options.items()) if v not in (False, None)]
    return "-".join([action, *words, time.strftime("%Y%m%d", time.gmtime(now))])


def rollout_path(fleet: Fleet, rollout_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", rollout_id):
        raise InputError("--rollout", f"{rollout_id!r} is not a rollout name",
                         fix="letters, digits, '.', '_' and '-', up to 64")
    return fleet.state_dir / "rollouts" / f"{rollout_id}.json"


@contextlib.contextmanager
def _lock(fleet: Fleet) -> Iterator[None]:
    fleet.private_dir(fleet.state_dir)
    fd = os.open(fleet.state_dir / "rollout.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RolloutBusy(f"another rollout of {fleet.root} is running ({fleet.state_dir / 'rollout.lock'}): "
                              "nothing was done") from None
        yield
    finally:
        os.close(fd)


def _save(fleet: Fleet, rollout: Rollout) -> None:
    rollout.updated = time.time()
    path = rollout_path(fleet, rollout.id)
    fleet.private_dir(path.parent)
    atomic_write(path, json.dumps(rollout.to_json(), ensure_ascii=False, indent=1) + "\n", mode=0o600,
                 make_parents=False)


def load_rollout(fleet: Fleet, rollout_id: str) -> Rollout | None:
    """The saved rollout `rollout_id`, or None."""
    path = rollout_path(fleet, rollout_id)
    try:
        return Rollout.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(str(path), f"not a rollout state msib wrote ({exc})",
                         fix="remove it, or start anew with --restart") from None


Runner = Callable[[str, Path], SbOutcome]
Event = Callable[[str], None]


def run_rollout(fleet: Fleet, action: Action, runner: Runner, *, rollout_id: str, plan: WavePlan,
                options: Mapping[str, Any], restart: bool = False, on_event: Event | None = None) -> Rollout:
    """Run (or resume) a rollout of `action` over the fleet's SBs in waves.

    Args:
        fleet: the fleet.
        action: what is rolled out (deploy, update, check): says the state file, runs `runner`.
        runner: runs the action on one SB (code, inventory directory) and says what failed.
        rollout_id: the rollout's name: the same name resumes it.
        plan: canary, wave size, order and budgets.
        options: the action's options (engine, check mode, ...): a resumed rollout must have the same.
        restart: forget the saved state of `rollout_id` and begin anew.
        on_event: receives a line per wave and per SB.

    Raises:
        InputError: the saved rollout is of another action or other options.
        RolloutBusy: another rollout of the fleet holds the lock.
    """
    say = on_event or (lambda _line: None)
    with _lock(fleet):
        rollout = None if restart else load_rollout(fleet, rollout_id)
        if rollout is not None and (rollout.action != action or rollout.options != dict(options)):
            raise InputError(str(rollout_path(fleet, rollout_id)),
                             f"rollout {rollout_id!r} is a {rollout.action} with {rollout.options}, not a {action} "
                             f"with {dict(options)}", fix="give another --rollout name, or --restart")
        if rollout is None:
            entries = survey(fleet)
            ready = [e.code for e in entries if e.ok and (fleet.inventory_dir(e.code) / "hosts.yml").is_file()]
            skipped = {e.code: e.error or "not built: run `msib fleet build`" for e in entries if e.code not in ready}
            waves = plan_waves(ready, plan, fleet.region_of)
            rollout = Rollout(id=rollout_id, action=action, options=dict(options), plan=plan.model_dump(),
                              waves=waves, skipped=skipped,
                              sbs={c: SbRun(c, i) for i, w in enumerate(waves) for c in w})
        elif rollout.state == "done":
            say(f"rollout {rollout.id}: every SB is done already (--restart to run it again)")
            return rollout
        if rollout.plan != plan.model_dump():
            say(f"rollout {rollout.id} resumes with its own waves and budget: {rollout.plan}")
            plan = WavePlan.model_validate(rollout.plan)
        for code, reason in rollout.skipped.items():
            say(f"skipped {code}: {reason}")
        rollout.state, rollout.halted = "running", None
        _save(fleet, rollout)
        for i, wave in enumerate(rollout.waves):
            name = "canary wave" if i == 0 and plan.canary and set(wave) <= set(plan.canary) else f"wave {i + 1}"
            todo = [c for c in wave if rollout.sbs[c].status != "done"]
            say(f"{name}: {', '.join(wave)}" + ("" if todo else " (done already)"))
            for code in todo:
                _run_sb(fleet, rollout, code, runner, plan, say)
                _save(fleet, rollout)
            failed = [c for c in wave if rollout.sbs[c].status == "failed"]
            allowed = 0 if name == "canary wave" else plan.max_failed_sbs
            if len(failed) > allowed:
                why: list[dict[str, Any]] = [f for c in failed for f in rollout.sbs[c].failures] or [
                    {"sb": c, "circuit": None, "host": None, "step": "failed"} for c in failed]
                rollout.state = "halted"
                rollout.halted = {"wave": i, "name": name, "failed_sbs": failed, "allowed": allowed,
                                  "failures": why, "untouched": [c for w in rollout.waves[i + 1:] for c in w]}
                _save(fleet, rollout)
                say(f"halted after {name}: {len(failed)} failed SB(s), {allowed} allowed; later waves untouched")
                return rollout
        rollout.state = "done"
        _save(fleet, rollout)
        return rollout


def _run_sb(fleet: Fleet, rollout: Rollout, code: str, runner: Runner, plan: WavePlan, say: Event) -> None:
    run = rollout.sbs[code]
    run.attempts += 1
    t0 = time.monotonic()
    try:
        outcome = runner(code, fleet.inventory_dir(code))
    except MsibError as exc:
        outcome = SbOutcome(error=str(exc), failures=[Failure(code, None, None, str(exc))])
    over = judge(outcome, plan.max_failed_share)
    run.status = "failed" if over else "done"
    run.over_budget = over
    run.failures = [asdict(f) for f in outcome.failures]
    run.summary = outcome.summary
    run.finished = time.time()
    word = "done" if not over else f"FAILED (over budget: {', '.join(over)})"
    say(f"  {code}: {word} in {time.monotonic() - t0:.1f} s")
    for f in outcome.failures[:10]:
        say(f"    {f.line()}")
