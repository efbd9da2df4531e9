"""The Wazuh server API's wire shapes as the lab SIEM speaks them: errors, answers, parameters, limits.

Error answers and JSON envelopes, the query parameters with Wazuh's own messages, the
per-minute rate limit, the lab-only request counters and the CDB list text format. Standard
library only: it runs on the lab's SIEM host (see :mod:`msib.lab.siem.api`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

LIMIT_MAX = 100_000
LIMIT_DEFAULT = 500
AGENT_STATUSES = ("active", "pending", "never_connected", "disconnected")
AGENT_FIELDS = (
    "id", "name", "ip", "registerIP", "status", "dateAdd", "lastKeepAlive", "node_name", "manager",
    "group", "group_config_status", "version",
)
COMMON_PARAMS = frozenset({"pretty", "wait_for_complete"})
DURATION_RE = re.compile(r"^(\d+)([smhdw]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# --- errors, responses ------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer in Wazuh's shape."""

    def __init__(self, status: int, detail: str, code: int | None = None, remediation: str | None = None,
                 title: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = status if code is None else code
        self.remediation = remediation
        self.title = title or HTTPStatus(status).phrase

    def body(self) -> dict[str, Any]:
        """The JSON body: title, detail, (remediation,) error."""
        out: dict[str, Any] = {"title": self.title, "detail": self.detail}
        if self.remediation:
            out["remediation"] = self.remediation
        out["error"] = self.code
        return out


@dataclass
class Response:
    """What the handler sends back."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, pretty: bool = False) -> Response:
    text = json.dumps(data, indent=4 if pretty else None, separators=None if pretty else (",", ":"))
    return Response(status, text.encode())


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(microsecond=0).isoformat()



# --- rate limit and counters ------------------------------------------------------------------


class RateLimiter:
    """Wazuh's per-minute limit: a window opens with the first request after the last reset."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._lock = threading.Lock()
        self._start = 0.0
        self._count = 0

    def allow(self) -> bool:
        """Count one request; False when it is over the limit of the current window."""
        with self._lock:
            now = self._clock()
            if now - self._start >= self.window:
                self._start, self._count = now, 0
            self._count += 1
            return self._count <= self.limit


class Counters:
    """Requests received (by kind) and answers sent (by status), since the server started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()

    def request(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1
            self.requests["total"] += 1

    def status(self, status: int) -> None:
        with self._lock:
            self.statuses[str(status)] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            reqs = {k: self.requests.get(k, 0) for k in ("read", "write", "login", "total")}
            return {"requests": reqs, "responses": dict(sorted(self.statuses.items()))}




# --- query parameters -------------------------------------------------------------------------


def param_bool(name: str, value: str) -> bool:
    low = value.lower()
    if low in ("", "true", "1"):
        return True
    if low in ("false", "0"):
        return False
    raise ApiError(400, f"'{value}' is not of type 'boolean' - '{name}'")


def param_int(name: str, value: str, minimum: int, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"'{value}' is not of type 'integer' - '{name}'") from None
    if number < minimum:
        raise ApiError(400, f"{number} is less than the minimum of {minimum} - '{name}'")
    if maximum is not None and number > maximum:
        raise ApiError(400, f"{number} is greater than the maximum of {maximum} - '{name}'")
    return number


def param_duration(name: str, value: str) -> float:
    m = DURATION_RE.match(value)
    if not m:
        raise ApiError(400, f"'{value}' does not match '^\\d+[smhdw]?$' - '{name}'")
    return int(m.group(1)) * UNITS[m.group(2)]


def param_ids(value: str) -> list[str]:
    out: list[str] = []
    for raw in value.split(","):
        raw = raw.strip()
        if not raw.isdigit() or len(raw) > 9:
            raise ApiError(400, f"'{raw}' does not match '^[0-9]{{3,}}$' - 'agents_list'")
        norm = f"{int(raw):03d}"
        if norm not in out:
            out.append(norm)
    return out


def param_statuses(value: str) -> set[str]:
    wanted = {s.strip() for s in value.split(",") if s.strip()}
    bad = wanted - {*AGENT_STATUSES, "all"}
    if not wanted or bad:
        raise ApiError(400, f"'{value}' is not a valid status - 'status'",
                       remediation=f"use all or any of {', '.join(AGENT_STATUSES)}")
    return wanted


def check_params(query: dict[str, str], allowed: AbstractSet[str], unimplemented: AbstractSet[str] = frozenset()
                  ) -> None:
    extra = sorted(set(query) - allowed - unimplemented - COMMON_PARAMS)
    if extra:
        raise ApiError(400, f"Extra query parameter(s) {', '.join(extra)} not in spec")
    lab_missing = sorted(set(query) & unimplemented)
    if lab_missing:
        raise ApiError(400, f"query parameter(s) {', '.join(lab_missing)} exist in the Wazuh API but are "
                            "not implemented by the msib lab SIEM", remediation="see docs/siem.md")


def failures(groups: dict[int, list[str]], messages: dict[int, tuple[str, str | None]]) -> list[dict[str, Any]]:
    """`data.failed_items` as Wazuh renders it: one entry per error code, sorted by code."""
    out = []
    for code, ids in sorted(groups.items()):
        message, remediation = messages[code]
        error: dict[str, Any] = {"code": code, "message": message}
        if remediation is not None:
            error["remediation"] = remediation
        out.append({"error": error, "id": ids})
    return out


AGENT_ERRORS: dict[int, tuple[str, str | None]] = {
    1701: ("Agent does not exist", "Please, use `GET /agents?select=id,name` to find all available agents"),
    1703: ("Action not available for Manager (agent 000)",
           "Please, use `GET /agents?select=id,name` to find all available agents and make sure you select "
           "an agent other than 000"),
    1731: ("", "Please, make sure the agent meets the requirements."),
}



# --- agents and CDB lists -----------------------------------------------------------------------


def haystack(agent: dict[str, Any]) -> str:
    parts: list[str] = []
    for value in agent.values():
        parts.extend(value if isinstance(value, list) else [value])
    return "\x00".join(str(p).lower() for p in parts)


def sort_agents(agents: list[dict[str, Any]], spec: str) -> list[dict[str, Any]]:
    keys: list[tuple[str, bool]] = []
    for raw in spec.split(","):
        raw = raw.strip()
        desc = raw.startswith("-")
        fname = raw.lstrip("+-")
        if fname not in AGENT_FIELDS:
            raise ApiError(400, f"Not a valid sort field: {fname}", 1403, "Please, use only allowed sort fields")
        keys.append((fname, desc))
    out = list(agents)
    for fname, desc in reversed(keys):
        out.sort(key=lambda a: str(a.get(fname, "")), reverse=desc)
    return out


def valid_agent_ip(value: str) -> bool:
    if value == "any":
        return True
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def parse_cdb(content: str) -> list[tuple[str, str]]:
    """Parse CDB list text (one `key:value` a line; a key holding `:` is double-quoted).

    Written apart from the driver's :func:`msib.siem.base.decode_cdb` on purpose: the stand-in reads
    what the driver sends as the SIEM would (every line, in order; no empty key), not with the
    driver's own code, so that tests/test_siem_units.py checks one against the other.

    Raises:
        ValueError: naming the first bad line.
    """
    out: list[tuple[str, str]] = []
    for number, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith('"'):
            end = line.find('"', 1)
            if end < 0 or line[end + 1: end + 2] not in (":", ""):
                raise ValueError(f"line {number}: unterminated quoted key")
            key, value = line[1:end], line[end + 2:]
        else:
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"line {number}: no ':' between key and value")
        if not key:
            raise ValueError(f"line {number}: empty key")
        out.append((key, value))
    return out
