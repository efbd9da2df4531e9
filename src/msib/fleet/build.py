"""``msib fleet build``: every SB's inventory, each on its own; a broken SB is reported and the others go on.

Each SB is built as ``msib inventory build`` builds one (msib.inventory.build_inventory) from its
site plan and its newest quarter's appendices, with the SB's own known_hosts and ssh_config when
its directory has them, into ``build/<code>/inventory``. Everything below ``build/`` is written
0600/0700 and git-ignored.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from msib.errors import MsibError
from msib.fleet.model import Fleet, SbEntry, appendices, private_umask, survey
from msib.fsutil import atomic_write
from msib.inventory import BuildResult, SshSettings, build_inventory


@dataclass(frozen=True)
class SbBuilt:
    """What building one SB gave: its counts, or why it was skipped."""

    code: str
    quarter: str | None = None
    result: BuildResult | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {"code": self.code, "ok": self.ok, "quarter": self.quarter, "error": self.error,
                "seconds": round(self.seconds, 3),
                "objects": r.objects if r else None, "appliances": r.appliances if r else None,
                "rejected": (r.rejected - r.excluded) if r else None, "excluded": r.excluded if r else None,
                "inventory": str(r.out_dir) if r else None}


def ssh_settings(fleet: Fleet, entry: SbEntry) -> SshSettings:
    """The SB's connection: its own known_hosts and ssh_config when its directory has them, else fleet.yml's."""
    own_kh, own_cfg = entry.directory / "known_hosts", entry.directory / "ssh_config"
    s = fleet.settings.ssh
    return SshSettings(
        ssh_config=own_cfg if own_cfg.is_file() else (fleet.path(s.config_file) if s.config_file else None),
        known_hosts=own_kh if own_kh.is_file() else None,
        identity_file=fleet.path(s.key_file) if s.key_file else None,
        user=s.user)


def site_file(fleet: Fleet, entry: SbEntry) -> Path:
    """The site plan to build from: the SB's own, or (when fleet.yml gives the SIEM) one written beside its build.

    The written plan is the SB's with fleet.yml's ``siem`` filled in and every relative path made
    absolute (from the SB directory, or from the fleet directory for fleet.yml's own).
    """
    path = entry.directory / "site.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "siem" in data or fleet.settings.siem is None:
        return path
    siem = fleet.settings.siem.model_dump(mode="json", exclude_none=True)
    for holder in (siem, siem.get("api") or {}):
        if holder.get("ca_file"):
            holder["ca_file"] = str(fleet.path(holder["ca_file"]))
    mgmt = dict(data.get("management") or {})
    if mgmt.get("known_hosts") and not Path(str(mgmt["known_hosts"])).is_absolute():
        mgmt["known_hosts"] = str((entry.directory / str(mgmt["known_hosts"])).absolute())
        data["management"] = mgmt
    out = fleet.private_dir(fleet.build_dir(entry.code)) / "site.yml"
    atomic_write(out, f"# written by msib fleet build from {path} and {fleet.file}: do not edit\n"
                 + yaml.safe_dump({**data, "siem": siem}, allow_unicode=True, sort_keys=False), mode=0o600)
    return out


def build_sb(fleet: Fleet, entry: SbEntry, *, out_dir: Path | None = None, quarter: str | None = None,
             as_of: dt.date | None = None, strict: bool = False) -> SbBuilt:
    """Build one SB's inventory (default: ``build/<code>/inventory``); errors are returned, not raised."""
    t0 = time.monotonic()
    if not entry.ok:
        return SbBuilt(entry.code, error=entry.error, seconds=time.monotonic() - t0)
    try:
        with private_umask():
            chosen, files = appendices(entry.directory, quarter)
            out = out_dir or fleet.inventory_dir(entry.code)
            fleet.private_dir(out.parent)
            result = build_inventory(site_file(fleet, entry), files, out, as_of=as_of, strict=strict,
                                     ssh=ssh_settings(fleet, entry))
            _private(out)
    except MsibError as exc:
        return SbBuilt(entry.code, error=str(exc), seconds=time.monotonic() - t0)
    except Exception as exc:  # a bug in one SB's build must not stop the others
        return SbBuilt(entry.code, error=f"internal error: {type(exc).__name__}: {exc}", seconds=time.monotonic() - t0)
    return SbBuilt(entry.code, quarter=chosen, result=result, seconds=time.monotonic() - t0)


def _private(directory: Path) -> None:
    """0700 for the directory, 0600 for its files (whatever umask wrote them)."""
    os.chmod(directory, 0o700)
    for p in directory.iterdir():
        os.chmod(p, 0o700 if p.is_dir() else 0o600)


def build_fleet(fleet: Fleet, *, only: Sequence[str] = (), as_of: dt.date | None = None,
                strict: bool = False) -> list[SbBuilt]:
    """Build every SB (or those in `only`), one after the other; each result says built or why not."""
    entries = survey(fleet)
    if only:
        known = {e.code for e in entries}
        missing = [c for c in only if c not in known]
        if missing:
            from msib.errors import InputError

            raise InputError("--sb", f"no SB {', '.join(missing)} in {fleet.root / 'sbs'}",
                             fix=f"one of: {', '.join(sorted(known)) or '(none)'}")
        entries = [e for e in entries if e.code in only]
    return [build_sb(fleet, e, as_of=as_of, strict=strict) for e in entries]
