"""The check catalogue (checks/catalogue.yml) and the @check registry of the testinfra checks."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml

from msib.contract import LINUX_ROLES
from msib.errors import CheckError, InputError

Severity = Literal["critical", "high", "medium", "low"]
Outcome = Literal["passed", "failed", "error"]
CheckRole = Literal["all", "collector", "ids_sensor", "firewall"]

#: Inventory groups whose hosts msib checks (Linux appliances; `netdev` devices are not SSH shells).
CHECKED_ROLES: tuple[str, ...] = LINUX_ROLES
SEVERITIES: tuple[str, ...] = get_args(Severity)

ID_RE = re.compile(r"^MSIB-(HOST|COL|IDS|FW)-\d{3}$")


def at_least(severity: str, threshold: str) -> bool:
    """Whether `severity` is `threshold` or worse (critical > high > medium > low)."""
    return SEVERITIES.index(severity) <= SEVERITIES.index(threshold)


class CheckRunError(CheckError):
    """Checking could not start or a host could not be checked at all (exit status 2)."""

    exit_code = 2


def checks_dir() -> Path:
    """Where the checks live: ``$MSIB_CHECKS_DIR`` or ``checks/`` at the repository root."""
    env = os.environ.get("MSIB_CHECKS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "checks"


@dataclass(frozen=True)
class CheckSpec:
    """One catalogue entry: what a check proves, on which appliances, and why it exists."""

    id: str
    role: CheckRole
    title: str
    severity: Severity
    clause: str


@functools.cache
def catalogue(path: Path | None = None) -> dict[str, CheckSpec]:
    """The checks of ``checks/catalogue.yml`` by ID, validated.

    Raises:
        InputError: the file is missing or an entry lacks a field or has a bad value.
    """
    path = path or checks_dir() / "catalogue.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(str(path), f"cannot read the check catalogue: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "the catalogue must be a mapping of check IDs")
    out: dict[str, CheckSpec] = {}
    for cid, entry in data.items():
        where = str(cid)
        if not ID_RE.match(str(cid)):
            raise InputError(str(path), "bad check ID", where=where, fix="MSIB-<HOST|COL|IDS|FW>-NNN")
        if not isinstance(entry, dict) or set(entry) != {"role", "title", "severity", "clause"}:
            raise InputError(str(path), "each check needs exactly role, title, severity, clause", where=where)
        if entry["role"] not in ("all", *CHECKED_ROLES):
            raise InputError(str(path), f"unknown role {entry['role']!r}", where=where,
                             fix=f"one of: all, {', '.join(CHECKED_ROLES)}")
        if entry["severity"] not in SEVERITIES:
            raise InputError(str(path), f"unknown severity {entry['severity']!r}", where=where,
                             fix=f"one of: {', '.join(SEVERITIES)}")
        out[str(cid)] = CheckSpec(id=str(cid), role=entry["role"], title=str(entry["title"]),
                                  severity=entry["severity"], clause=" ".join(str(entry["clause"]).split()))
    return out


def applies(spec: CheckSpec, role: str) -> bool:
    """Whether the check runs on an appliance of `role`.

    >>> applies(CheckSpec("MSIB-HOST-001", "all", "t", "high", "c"), "firewall")
    True
    """
    return spec.role in ("all", role)


def checks_for(role: str) -> list[CheckSpec]:
    """The catalogue's checks that run on an appliance of `role`, in ID order."""
    return [s for s in catalogue().values() if applies(s, role)]


F = TypeVar("F", bound=Callable[..., Any])


def check(check_id: str) -> Callable[[F], F]:
    """Register a testinfra test function as the implementation of catalogue check `check_id`.

    Example:
        >>> @check("MSIB-HOST-005")                         # doctest: +SKIP
        ... def test_systemd_running(host, evidence): ...

    Raises:
        InputError: `check_id` is not in the catalogue.
    """
    spec = catalogue().get(check_id)
    if spec is None:
        raise InputError("checks/catalogue.yml", f"check {check_id} is used in code but not catalogued")

    def mark(func: F) -> F:
        func.msib_check = spec  # type: ignore[attr-defined]
        return func

    return mark



def implemented_ids() -> Iterator[str]:
    """The check IDs that ``checks/test_*.py`` register (read from the source, nothing imported)."""
    for path in sorted(checks_dir().glob("test_*.py")):
        yield from re.findall(r'@check\("([^"]+)"\)', path.read_text(encoding="utf-8"))


def validate_registry() -> None:
    """Every catalogued check has a test function and every test function a catalogued ID.

    Raises:
        CheckRunError: a catalogued check that no test implements.
    """
    implemented = set(implemented_ids())
    missing = sorted(set(catalogue()) - implemented)
    if missing:
        raise CheckRunError(f"checks/catalogue.yml: no test implements {', '.join(missing)}")
