"""The Debian releases msib supports on appliances, and their security support (data/debian_releases.yml).

Example:
    >>> get("bookworm").version, get("trixie").version
    (12, 13)
    >>> get("bookworm").support(dt.date(2026, 12, 1))
    'lts'
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from msib.errors import InputError

DATA = Path(__file__).resolve().parent / "data" / "debian_releases.yml"
Support = Literal["regular", "lts", "ended"]


@dataclass(frozen=True)
class Release:
    """One Debian release: its codename, number and the last days of its security support."""

    codename: str
    version: int
    released: dt.date
    security_until: dt.date
    lts_until: dt.date | None
    backports: str

    @property
    def name(self) -> str:
        """``Debian 12 (bookworm)``."""
        return f"Debian {self.version} ({self.codename})"

    def support(self, on: dt.date) -> Support:
        """What Debian gives this release on day `on`: regular security support, LTS, or nothing."""
        if on <= self.security_until:
            return "regular"
        if self.lts_until is not None and on <= self.lts_until:
            return "lts"
        return "ended"

    def describe(self, on: dt.date) -> str:
        """One sentence about the release's support on day `on` (check evidence, reports)."""
        state = self.support(on)
        if state == "regular":
            return f"{self.name}: regular security support until {self.security_until}"
        if state == "lts":
            return (f"{self.name}: LTS (regular security support ended {self.security_until}; "
                    f"LTS until {self.lts_until})")
        return f"{self.name}: no security support since {self.lts_until or self.security_until}"


def _date(value: object, where: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    raise InputError(str(DATA), f"{value!r} is not a date (YYYY-MM-DD)", where=where)


@functools.cache
def releases() -> dict[str, Release]:
    """Every supported release by codename, oldest first.

    Raises:
        InputError: the data file is not in the shape described at its top.
    """
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not data:
        raise InputError(str(DATA), "must map codenames to releases")
    out: dict[str, Release] = {}
    for codename, r in data.items():
        if not isinstance(r, dict):
            raise InputError(str(DATA), "a release is a mapping", where=str(codename))
        lts = r.get("lts_until")
        out[str(codename)] = Release(
            codename=str(codename), version=int(r["version"]),
            released=_date(r.get("released"), f"{codename}.released"),
            security_until=_date(r.get("security_until"), f"{codename}.security_until"),
            lts_until=None if lts is None else _date(lts, f"{codename}.lts_until"),
            backports=str(r.get("backports") or f"{codename}-backports"))
    return dict(sorted(out.items(), key=lambda kv: kv[1].version))


def codenames() -> tuple[str, ...]:
    """The codenames msib supports, oldest first.

    >>> codenames()
    ('bookworm', 'trixie')
    """
    return tuple(releases())


def get(codename: str) -> Release:
    """The release called `codename`.

    Raises:
        InputError: not a release msib supports (naming those it does).
    """
    try:
        return releases()[codename]
    except KeyError:
        raise InputError(str(codename), "is not a Debian release msib supports on appliances",
                         fix=f"one of: {', '.join(codenames())} (src/msib/data/debian_releases.yml)") from None


def pins(versions: Mapping[str, Any] | None, release: str | None) -> dict[str, str]:
    """The package versions pinned for `release`: of ``msib_package_versions``, the entries
    ``{package: version}`` (every release) overlaid with those of ``{<release>: {package: version}}``.

    >>> pins({"nftables": "1.0.6-2+deb12u2", "trixie": {"nftables": "1.1.3-1"},
    ...       "bookworm": {"rsyslog": "8.2302.0-1"}}, "trixie")
    {'nftables': '1.1.3-1'}
    """
    given: Mapping[str, Any] = versions or {}
    out = {str(k): str(v) for k, v in given.items() if not isinstance(v, Mapping)}
    per_release = given.get(release or "")
    if isinstance(per_release, Mapping):
        out.update({str(k): str(v) for k, v in per_release.items()})
    return out
