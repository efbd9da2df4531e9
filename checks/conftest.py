"""pytest plugin of the msib compliance checks (testinfra over ssh://, strict host keys).

Each test in ``checks/test_*.py`` is registered with ``@check("MSIB-…")`` (msib.checks.check) and
runs only on the appliances its catalogue entry names. Fixtures:

- ``appliance``: the host's inventory entry (msib.contract.Appliance), found by its testinfra name;
- ``release``: the host's Debian codename (its os-release);
- ``ctx``: the render context of its role, as msib.render builds it for the engines (release values included);
- ``evidence``: ``evidence("…")`` records what was observed; every result carries it, pass or fail.

Every result is printed as one ``MSIB-RESULT {json}`` line for ``msib check``; plain pytest shows
the usual report (and ``--junit-xml`` works as always).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from msib import checks as mc
from msib import releases, render
from msib.contract import Appliance, Inventory


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("msib")
    group.addoption("--msib-inventory", action="store", default=None,
                    help="inventory directory (hosts.yml) the checks compare the hosts with")
    group.addoption("--msib-vars", action="append", default=[],
                    help="YAML file of role variables, as given to `msib deploy --vars` (repeatable)")


_INVENTORY = pytest.StashKey[Inventory]()


def _inventory(config: pytest.Config) -> Inventory:
    """The inventory the checks compare with (read once per run: every result names its host)."""
    if _INVENTORY not in config.stash:
        path = config.getoption("--msib-inventory")
        if not path:
            raise pytest.UsageError("--msib-inventory DIR is required (the inventory msib deployed from)")
        config.stash[_INVENTORY] = mc.load(Path(path), config.getoption("--msib-vars"))
    return config.stash[_INVENTORY]


def _host_name(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    host = callspec.params.get("_testinfra_host") if callspec else None
    return str(host.backend.get_hostname()) if host is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep, per host, only the checks its role has; a test without @check is a usage error."""
    inv = _inventory(config)
    roles = {h.name: h.role for h in inv.of(*mc.CHECKED_ROLES)}
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        host = callspec.params.get("_testinfra_host") if callspec else None
        if host is not None and host.backend.NAME != "ssh":
            raise pytest.UsageError(f"{host.backend.get_hostname()}: only ssh:// is allowed (strict host keys; "
                                    f"{host.backend.NAME}:// does not check them); write ssh:// before every host")
        spec: mc.CheckSpec | None = getattr(getattr(item, "function", None), "msib_check", None)
        if spec is None:
            raise pytest.UsageError(f"{item.nodeid}: every check needs @check(ID) from the catalogue")
        name = _host_name(item)
        if name is None or name not in roles:
            raise pytest.UsageError(f"{item.nodeid}: host {name!r} is not an appliance of {inv.directory}")
        (keep if mc.applies(spec, roles[name]) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


@pytest.fixture(scope="module")
def appliance(request: pytest.FixtureRequest, host: Any) -> Appliance:
    """The inventory entry of the host under test."""
    return _inventory(request.config).appliance(str(host.backend.get_hostname()))


@pytest.fixture(scope="module")
def release(host: Any) -> str:
    """The host's Debian codename (``VERSION_CODENAME`` of its os-release, as the engines read it)."""
    return str(host.run(". /etc/os-release && echo \"$VERSION_CODENAME\"").stdout.strip())


@pytest.fixture(scope="module")
def ctx(appliance: Appliance, release: str) -> dict[str, Any]:
    """The render context of the host's role, as the engines build it now (for the host's release;
    a release msib does not support gets no release values: MSIB-HOST-007 names it)."""
    known = release if release in releases.codenames() else None
    return render.context(appliance.role, appliance.vars, release=known)


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one piece of evidence (what was observed on the host) for this check's result."""
    lines: list[str] = []
    request.node.msib_evidence = lines

    def add(text: str) -> None:
        lines.append(str(text).rstrip())

    return add


def _failure_text(call: pytest.CallInfo[None]) -> tuple[str, bool]:
    """(message, is_assertion) of a failed call: the assertion's own message, not a traceback."""
    exc = call.excinfo
    if exc is None:
        return "", False
    if isinstance(exc.value, AssertionError):
        text = str(exc.value).split("\nassert ")[0].strip()
        return text or "assertion failed", True
    return f"{exc.typename}: {exc.value}", False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and not report.passed):
        spec: mc.CheckSpec = item.function.msib_check  # type: ignore[attr-defined]
        lines = list(getattr(item, "msib_evidence", []))
        if report.passed:
            state: mc.Outcome = "passed"
        else:
            message, is_assertion = _failure_text(call)
            state = "failed" if (is_assertion and report.when == "call") else "error"
            lines.append(("FAILED: " if state == "failed" else "ERROR: ") + message)
        appliance = _inventory(item.config).appliance(_host_name(item) or "")
        result = mc.CheckResult(host=appliance.name, role=appliance.role, check_id=spec.id, title=spec.title,
                                severity=spec.severity, clause=spec.clause, outcome=state,
                                evidence="\n".join(lines).strip(), duration_s=report.duration)
        sys.stdout.write(mc.result_line(result) + "\n")
        sys.stdout.flush()
        item.user_properties += [("msib_check", spec.id), ("severity", spec.severity),
                                 ("evidence", result.evidence)]


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        sys.stdout.write(f"collection of {report.nodeid} failed: {report.longreprtext}\n")
        sys.stdout.flush()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.msib_started = time.time()  # type: ignore[attr-defined]
