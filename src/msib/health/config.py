"""Health's configuration: silence thresholds per source class, the rate window, the baseline, how objects are classed.

Every value has a documented default (docs/health.md) and can be set in a YAML file (``msib
health --config FILE``) or in the ``health:`` section of a fleet's ``fleet.yml``. Durations are
seconds or a number with a unit: ``90s``, ``15m``, ``24h``, ``7d``.

Example:
    >>> cfg = parse_config({"thresholds": {"workstation": "2h"}}, "health.yml")
    >>> cfg.threshold("workstation"), cfg.threshold("collector")
    (7200.0, 900.0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from msib.errors import InputError

SourceClass = Literal["appliance", "network_device", "server", "workstation"]
SOURCE_CLASSES: Final[tuple[SourceClass, ...]] = ("appliance", "network_device", "server", "workstation")
#: The roles whose hosts are appliances (class "appliance"); objects are classed by :meth:`HealthConfig.classify`.
APPLIANCE_KINDS: Final = frozenset({"collector", "ids_sensor", "firewall", "netdev"})

#: Silent after (seconds): appliances send their own counters every minute; network devices log
#: often; servers log steadily; workstations are switched off at night.
DEFAULT_THRESHOLDS: Final[Mapping[SourceClass, float]] = {
    "appliance": 15 * 60.0, "network_device": 30 * 60.0, "server": 60 * 60.0, "workstation": 24 * 3600.0,
}
DEFAULT_SERVER_OS: Final = r"(?i)server|сервер|\bsrv\b|\bws ?20\d\d"
DEFAULT_SERVER_HOSTNAME: Final = r"(?i)^(srv|server|sr|dc|db|app|web|mail|dns|file|fs)[-_.0-9]"

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KEYS: Final = frozenset({"thresholds", "window", "degraded_share", "severe_share", "baseline_days",
                          "server_os", "server_hostname", "ssh_workers"})


@dataclass(frozen=True)
class HealthConfig:
    """What health compares with; the defaults are the documented ones."""

    thresholds: Mapping[SourceClass, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    #: the rate is events per minute over this many seconds (the collectors' counters of that span)
    window: float = 15 * 60.0
    #: degraded below this share of the source's own baseline
    degraded_share: float = 0.5
    #: and marked severe below this share
    severe_share: float = 0.1
    #: the baseline is the median rate over this many days, once there are that many
    baseline_days: float = 7.0
    #: an object whose OS (as the appendix names it) matches is a server
    server_os: str = DEFAULT_SERVER_OS
    #: an object whose hostname matches is a server
    server_hostname: str = DEFAULT_SERVER_HOSTNAME
    #: appliances asked at once
    ssh_workers: int = 8

    def threshold(self, kind: str) -> float:
        """Seconds of silence after which a source of `kind` (a role or an object class) is silent."""
        cls: SourceClass = "appliance" if kind in APPLIANCE_KINDS else kind  # type: ignore[assignment]
        return float(self.thresholds[cls])

    def classify(self, obj: Mapping[str, Any]) -> SourceClass:
        """The class of an appendix object: network device (OS family), server (OS or hostname), else workstation."""
        if obj.get("os_family") == "network":
            return "network_device"
        os_text = " ".join(str(obj.get(k) or "") for k in ("os", "os_raw"))
        if re.search(self.server_os, os_text) or re.search(self.server_hostname, str(obj.get("hostname") or "")):
            return "server"
        return "workstation"

    def to_json(self) -> dict[str, Any]:
        return {"thresholds": dict(self.thresholds), "window": self.window, "degraded_share": self.degraded_share,
                "severe_share": self.severe_share, "baseline_days": self.baseline_days}


def duration(value: Any, file: str, where: str) -> float:
    """Seconds of `value`: a number, or a number with a unit s, m, h or d.

    Raises:
        InputError: not a positive duration.

    >>> duration("90s", "f", "x"), duration("15m", "f", "x"), duration(30, "f", "x")
    (90.0, 900.0, 30.0)
    """
    if isinstance(value, bool):
        value = None
    if isinstance(value, int | float) and value > 0:
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value)) if isinstance(value, str) else None
    if not m or float(m.group(1)) <= 0:
        raise InputError(file, f"{value!r} is not a duration", where=where,
                         fix="give seconds, or a number with s, m, h or d (e.g. 15m, 24h)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _share(value: Any, file: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InputError(file, f"{value!r} is not a share between 0 and 1", where=where, fix="e.g. 0.5")
    return float(value)


def _regex(value: Any, file: str, where: str) -> str:
    try:
        re.compile(str(value))
    except re.error as exc:
        raise InputError(file, f"not a regular expression: {exc}", where=where) from None
    return str(value)


def parse_config(data: Any, file: str, *, prefix: str = "") -> HealthConfig:
    """Validate a health section (a mapping) into a :class:`HealthConfig`; missing keys keep their defaults.

    Raises:
        InputError: naming `file`, the key and what to do.
    """
    if data is None:
        return HealthConfig()
    if not isinstance(data, dict):
        raise InputError(file, "the health settings are a YAML mapping", where=prefix.rstrip(".") or None)
    unknown = sorted(set(map(str, data)) - _KEYS)
    if unknown:
        raise InputError(file, f"unknown key {unknown[0]!r}", where=f"{prefix}{unknown[0]}",
                         fix=f"one of: {', '.join(sorted(_KEYS))}")
    thresholds = dict(DEFAULT_THRESHOLDS)
    given = data.get("thresholds") or {}
    if not isinstance(given, dict):
        raise InputError(file, "thresholds is a mapping of class to duration", where=f"{prefix}thresholds")
    for key, value in given.items():
        if key not in SOURCE_CLASSES:
            raise InputError(file, f"unknown source class {key!r}", where=f"{prefix}thresholds.{key}",
                             fix=f"one of: {', '.join(SOURCE_CLASSES)}")
        thresholds[key] = duration(value, file, f"{prefix}thresholds.{key}")
    cfg = HealthConfig(thresholds=thresholds)
    kw: dict[str, Any] = {}
    if "window" in data:
        kw["window"] = duration(data["window"], file, f"{prefix}window")
    if "baseline_days" in data:  # days, or a duration with its unit
        raw = data["baseline_days"]
        days = isinstance(raw, int | float) and not isinstance(raw, bool)
        kw["baseline_days"] = duration(raw, file, f"{prefix}baseline_days") / (1 if days else 86400.0)
    for key in ("degraded_share", "severe_share"):
        if key in data:
            kw[key] = _share(data[key], file, f"{prefix}{key}")
    for key in ("server_os", "server_hostname"):
        if key in data:
            kw[key] = _regex(data[key], file, f"{prefix}{key}")
    if "ssh_workers" in data:
        n = data["ssh_workers"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
            raise InputError(file, f"{n!r} is not a number of workers (1..64)", where=f"{prefix}ssh_workers")
        kw["ssh_workers"] = n
    if kw.get("severe_share", cfg.severe_share) > kw.get("degraded_share", cfg.degraded_share):
        raise InputError(file, "severe_share is above degraded_share", where=f"{prefix}severe_share",
                         fix="the severe mark is the lower of the two")
    return HealthConfig(thresholds=thresholds, **kw)


def read_yaml(path: Path, what: str, *, missing: str | None = None) -> Any:
    """The YAML of a settings file (`what` names it in errors); None when `missing` is None and it is absent.

    Raises:
        InputError: unreadable, not UTF-8, not YAML; absent when `missing` (the fix) is given.
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing is None:
            return None
        raise InputError(str(path), f"no {what}", fix=missing) from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read the {what}: {exc.strerror}", fix="check the path") from None
    except UnicodeDecodeError:
        raise InputError(str(path), f"the {what} is not UTF-8 text", fix="save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise InputError(str(path), "not valid YAML", where=where, fix="fix the YAML syntax") from None


def load_config(path: str | Path | None) -> HealthConfig:
    """The health settings of a YAML file (the defaults when `path` is None).

    Raises:
        InputError: an unreadable file, bad YAML or a bad value.
    """
    if path is None:
        return HealthConfig()
    p = Path(path)
    data = read_yaml(p, "health settings", missing="check the path")
    if isinstance(data, dict) and set(data) == {"health"}:
        return parse_config(data["health"], str(p), prefix="health.")
    return parse_config(data, str(p))
