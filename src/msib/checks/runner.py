"""`msib check`: the catalogue's testinfra checks run over every appliance, hosts in parallel.

The checks themselves are testinfra tests in ``checks/`` (one file per role, ``checks/test_<role>.py``),
each registered with :func:`msib.checks.catalogue.check` under an ID of ``checks/catalogue.yml``.
They can run under plain pytest (molecule's verify)::

    pytest -c checks/pytest.ini checks --hosts ssh://col-int-1 --ssh-config SSH_CONFIG --sudo \\
        --msib-inventory DIR

:func:`run_checks` runs them over every appliance of an inventory in parallel: a few pytest
processes, each checking its share of the hosts (:func:`batches`), over ``ssh://`` with strict host
keys (never ``paramiko://``), the connections multiplexed per host; each result comes back with its evidence.

Example:
    >>> run = run_checks(Path("/var/lib/msib-lab/inventory"))     # doctest: +SKIP
    >>> run.counts()                                               # doctest: +SKIP
    {'passed': 72, 'failed': 0, 'errors': 0}
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msib import contract
from msib.checks.catalogue import (
    CHECKED_ROLES,
    Outcome,
    at_least,
    catalogue,
    checks_dir,
    checks_for,
    validate_registry,
)
from msib.checks.parsers import parse_sshd_t
from msib.contract import Appliance, Inventory
from msib.errors import InputError

#: Default number of pytest processes at once, each checking its share of the hosts one after
#: another: a process's start-up (~1 s of CPU: Python, testinfra, msib.render) is most of a host's
#: cost, so a few processes per core beat one process per host (docs/checks.md, the benchmark).
DEFAULT_WORKERS = min(8, 2 * (os.cpu_count() or 1))
#: Seconds one host's checks may take before the host is an error.
HOST_TIMEOUT_S = 600.0
RESULT_PREFIX = "MSIB-RESULT "


def load(inventory: str | Path, vars_files: Sequence[str | Path] = ()) -> Inventory:
    """The inventory the checks compare the hosts with: :func:`msib.contract.load`, ``--vars`` on top.

    Raises:
        InputError: an unusable inventory or vars file.
    """
    return contract.load(inventory).with_vars(contract.read_vars(vars_files))


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one host, with the evidence an auditor reads."""

    host: str
    role: str
    check_id: str
    title: str
    severity: str
    clause: str
    outcome: Outcome
    evidence: str
    duration_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "role": self.role, "check": self.check_id, "title": self.title,
                "severity": self.severity, "clause": self.clause, "outcome": self.outcome,
                "evidence": self.evidence, "duration_s": round(self.duration_s, 3)}


#: The tools whose versions a report names (msib's own first): what checked, and what deploys.
TOOLS: tuple[str, ...] = ("msib", "pytest-testinfra", "ansible-core", "pyinfra")


def tool_versions() -> dict[str, str]:
    """The installed version of each of :data:`TOOLS` ("not installed" when absent)."""
    from importlib import metadata

    out: dict[str, str] = {}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class CheckRun:
    """Every result of one `msib check` run, and what the report's header names (SB, versions)."""

    inventory: str
    started: float
    finished: float = 0.0
    hosts: list[Appliance] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    state_body: str | None = None
    sb_code: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def sb(self) -> str:
        """The state body as the header names it: ``Name (CODE)``."""
        parts = [self.state_body or "state body not named in the inventory"]
        if self.sb_code:
            parts.append(f"({self.sb_code})")
        return " ".join(parts)

    def counts(self) -> dict[str, int]:
        return {"passed": sum(r.outcome == "passed" for r in self.results),
                "failed": sum(r.outcome == "failed" for r in self.results),
                "errors": sum(r.outcome == "error" for r in self.results)}

    def summary(self) -> dict[str, Any]:
        """What ``msib check --json`` prints."""
        return {**self.counts(),
                "failures": [{"host": r.host, "check": r.check_id, "evidence": r.evidence}
                             for r in self.results if r.outcome != "passed"]}

    def failing(self, fail_on: str = "low") -> list[CheckResult]:
        """The failed results of severity `fail_on` or worse (``low``: every failure)."""
        return [r for r in self.results if r.outcome == "failed" and at_least(r.severity, fail_on)]

    def exit_code(self, fail_on: str = "low") -> int:
        """0 all passed (or failed only below `fail_on`); 2 an error prevented checking; 1 a check failed."""
        if self.counts()["errors"] or not self.results:
            return 2
        return 1 if self.failing(fail_on) else 0

    def by_host(self) -> dict[str, list[CheckResult]]:
        out: dict[str, list[CheckResult]] = {h.name: [] for h in self.hosts}
        for r in self.results:
            out.setdefault(r.host, []).append(r)
        return out


def _strict(ssh_config: Path, host: str) -> str | None:
    """None if ssh would check `host`'s key strictly with this config, else the reason why not."""
    proc = subprocess.run(["ssh", "-G", "-F", str(ssh_config), host], capture_output=True, text=True, timeout=30)
    conf = parse_sshd_t(proc.stdout)
    if conf.get("stricthostkeychecking") not in ("true", "yes"):
        return f"StrictHostKeyChecking is {conf.get('stricthostkeychecking')!r}, not yes: refusing to connect"
    return None


def _error_results(h: Appliance, message: str) -> list[CheckResult]:
    return [CheckResult(h.name, h.role, s.id, s.title, s.severity, s.clause, "error", message)
            for s in checks_for(h.role)]


def _pytest_argv(batch: Sequence[Appliance], ssh_config: Path, inventory: Path,
                 vars_files: Sequence[Path]) -> list[str]:
    cdir = checks_dir()
    return [sys.executable, "-m", "pytest", "-c", str(cdir / "pytest.ini"), "--rootdir", str(cdir),
            "-p", "testinfra.plugin", "-p", "no:cacheprovider", "-p", "no:terminal", str(cdir),
            "--hosts=" + ",".join(f"ssh://{h.name}" for h in batch), f"--ssh-config={ssh_config}", "--sudo",
            f"--msib-inventory={inventory}", *[f"--msib-vars={Path(f).resolve()}" for f in vars_files]]


def _pytest_env() -> dict[str, str]:
    """The environment of a checks' pytest process: no plugin but testinfra (named in the argv).

    Whatever else is installed beside msib (xdist, benchmark, a site's own plugins) is neither
    imported nor allowed to change how a check runs or what it reports; not importing them also
    saves each process their start-up.
    """
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def batches(hosts: Sequence[Appliance], processes: int) -> list[list[Appliance]]:
    """`hosts` dealt into at most `processes` batches of near-equal size, each in inventory order."""
    n = max(1, min(processes, len(hosts)))
    return [list(hosts[i::n]) for i in range(n) if hosts[i::n]]


def _reachable(h: Appliance, ssh_config: Path) -> str | None:
    """None when `h` can be checked (strict host keys, SSH answers), else why not."""
    reason = _strict(ssh_config, h.name)
    if reason:
        return reason
    try:
        pre = subprocess.run(["ssh", "-F", str(ssh_config), h.name, "true"], capture_output=True, text=True,
                             timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "ssh: no answer within 60 s"
    if pre.returncode != 0:
        return "ssh failed: " + (pre.stderr.strip() or f"exit status {pre.returncode}")
    return None


def _check_batch(batch: Sequence[Appliance], inv: Inventory, vars_files: Sequence[Path], ssh_config: Path,
                 workdir: Path, on_result: Callable[[CheckResult], None]) -> list[CheckResult]:
    """Run every check of each host of `batch` in ONE pytest process (its start-up is most of a
    host's cost); a host that cannot be checked gives error results, the others go on."""
    got: list[CheckResult] = []

    def fail(h: Appliance, message: str, only: set[str] | None = None) -> None:
        for r in _error_results(h, message):
            if only is None or r.check_id in only:
                got.append(r)
                on_result(r)

    ready = []
    for h in batch:
        reason = _reachable(h, ssh_config)
        if reason:
            fail(h, reason)
        else:
            ready.append(h)
    if not ready:
        return got
    argv = _pytest_argv(ready, ssh_config, inv.directory, vars_files)
    env = _pytest_env()
    ran: list[CheckResult] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          stdin=subprocess.DEVNULL, cwd=str(workdir)) as proc:
        timer = threading.Timer(HOST_TIMEOUT_S * len(ready), proc.kill)
        timer.start()
        other: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(RESULT_PREFIX):
                    r = CheckResult(**json.loads(line[len(RESULT_PREFIX):]))
                    ran.append(r)
                    on_result(r)
                else:
                    other.append(line.rstrip())
        finally:
            timer.cancel()
        rc = proc.wait()
    got += ran
    tail = "\n".join(other[-25:]) or f"pytest exit status {rc}"
    for h in ready:
        seen = {r.check_id for r in ran if r.host == h.name}
        missing = {s.id for s in checks_for(h.role)} - seen
        if not missing:
            continue
        if len(ready) > 1 and not seen:  # the batch stopped before this host: checked on its own
            got += _check_batch([h], inv, vars_files, ssh_config, workdir, on_result)
        else:
            fail(h, f"the check did not run (pytest exit status {rc}):\n{tail}", only=missing)
    return got


def run_checks(inventory: str | Path, *, vars_files: Sequence[Path] = (), limit: Sequence[str] = (),
               workers: int | None = None,
               on_result: Callable[[CheckResult], None] | None = None,
               on_start: Callable[[list[Appliance]], None] | None = None) -> CheckRun:
    """Run the catalogue's checks on every appliance of `inventory` (or those in `limit`), in parallel.

    Args:
        inventory: the inventory directory.
        vars_files: role variables for every host, as given to ``msib deploy --vars``.
        limit: host names to check (default: every appliance).
        workers: pytest processes at once; the hosts are dealt between them (:func:`batches`).
        on_result: called with each result as it arrives (a progress display).
        on_start: called once with the hosts about to be checked.

    Returns:
        The run; ``run.exit_code()`` is what ``msib check`` exits with.

    Raises:
        InputError: an unusable inventory, limit or catalogue.
        CheckRunError: a check file does not match the catalogue.
    """
    workers = DEFAULT_WORKERS if workers is None else workers
    if workers < 1:
        raise InputError("--workers", "must be 1 or more")
    inv = load(inventory, vars_files)
    hosts = [inv.appliance(n) for n in limit] if limit else list(inv.of(*CHECKED_ROLES))
    if not hosts:
        raise InputError(str(inv.hosts_file), "no appliance to check (groups collector, ids_sensor, firewall)")
    validate_registry()
    run = CheckRun(inventory=str(inv.directory), started=time.time(), hosts=hosts, state_body=inv.state_body,
                   sb_code=inv.sb_code, versions=tool_versions())
    if on_start:
        on_start(hosts)
    lock = threading.Lock()

    def record(r: CheckResult) -> None:
        with lock:
            run.results.append(r)
            if on_result:
                on_result(r)

    workdir = Path(tempfile.mkdtemp(prefix="msib-check-"))
    control = workdir / "cm"
    control.mkdir(mode=0o700)
    ssh_config = workdir / "ssh_config"
    ssh_config.write_text(inv.ssh.verified().run_config(hosts, control, header="written by msib check for one run"))
    try:
        groups = batches(hosts, workers)
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(groups)) as pool:
            futures = {pool.submit(_check_batch, b, inv, vars_files, ssh_config, workdir, record): b for b in groups}
            for fut in concurrent.futures.as_completed(futures):
                try:
                    fut.result()
                except Exception as exc:  # a bug or an OS error: those hosts are errors, others go on
                    for h in futures[fut]:
                        done = {r.check_id for r in run.results if r.host == h.name}
                        for r in _error_results(h, f"{type(exc).__name__}: {exc}"):
                            if r.check_id not in done:
                                record(r)
    finally:
        for h in hosts:  # close this run's SSH masters
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["ssh", "-F", str(ssh_config), "-O", "exit", h.name], capture_output=True,
                               timeout=10, stdin=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)
    for h in hosts:  # every check of every host has a result, whatever happened
        done = {r.check_id for r in run.results if r.host == h.name}
        for r in _error_results(h, "no result came back for this check"):
            if r.check_id not in done:
                run.results.append(r)
    order = {s.id: i for i, s in enumerate(catalogue().values())}
    host_order = {h.name: i for i, h in enumerate(hosts)}
    run.results.sort(key=lambda r: (host_order.get(r.host, 0), order.get(r.check_id, 0)))
    run.finished = time.time()
    return run


def result_line(result: CheckResult) -> str:
    """The line the pytest plugin prints for one result (parsed back by the runner)."""
    data = result.as_json()
    return RESULT_PREFIX + json.dumps({
        "host": data["host"], "role": data["role"], "check_id": data["check"], "title": data["title"],
        "severity": data["severity"], "clause": data["clause"], "outcome": data["outcome"],
        "evidence": data["evidence"], "duration_s": data["duration_s"]}, ensure_ascii=False)
