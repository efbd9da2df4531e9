"""A fleet on disk: ``fleet.yml`` and one directory per SB (site plan, appendices, known_hosts), surveyed.

The layout (/work/shared/spec/fleet.md, docs/fleet.md)::

    fleet/
      fleet.yml                  fleet-wide: SIEM default, SSH, role variables, waves, health
      sbs/<code>/site.yml        the SB's site plan; its `code` is the directory name
      sbs/<code>/appendix/       the SB's appendices, named by quarter: 2026Q4.xlsx, 2026Q4-ext.csv
      sbs/<code>/known_hosts     pinned host keys of its appliances (optional)
      sbs/<code>/ssh_config      how to reach its appliances (optional: a jump host per SB)
      sbs/<code>/vars.yml        role variables of this SB (optional)
      build/ state/ reports/     written by msib: 0700/0600, git-ignored

:func:`survey` reads every site plan once and applies the rules across SBs: a code is a DNS label
equal to its directory name; no two SBs claim one code; no code is another's plus a separator
(``mcri`` and ``mcri-2``: the SIEM names agents ``<code>-<name>``, so one SB's sync would see the
other's agents). Circuit networks of different SBs may overlap; within one SB the site plan
refuses it. A broken or refused SB is reported with the reason and skipped; the others go on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from msib.errors import InputError, MsibError
from msib.health.config import HealthConfig, parse_config, read_yaml
from msib.site import Siem, SitePlan, parse_site

APPENDIX_SUFFIXES: Final = (".xlsx", ".xls", ".ods", ".csv")
CODE_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])$")
QUARTER_RE: Final = re.compile(r"^(\d{4})[Qq]([1-4])(?![0-9])")
#: What msib writes below the fleet directory (each holds a ``.gitignore`` of ``*``).
WRITTEN_DIRS: Final = ("build", "state", "reports")
SEPARATORS: Final = ("-", ".", "_")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FleetSsh(_Strict):
    """How msib reaches every SB's appliances, unless the SB's own directory says otherwise."""

    user: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    key_file: str | None = None
    config_file: str | None = None


class WavePlan(_Strict):
    """How a rollout goes through the SBs: a canary wave, then waves of `size`."""

    canary: list[str] = Field(default_factory=list)
    size: int = Field(default=10, ge=1)
    order: Literal["code", "region"] = "code"
    #: failed SBs a wave may have before the rollout stops (the canary wave: always 0)
    max_failed_sbs: int = Field(default=0, ge=0)
    #: share of a circuit's appliances that may fail before its SB counts as failed
    max_failed_share: float = Field(default=0.0, ge=0.0, le=1.0)


class FleetFile(_Strict):
    """``fleet.yml`` without its ``health`` section (validated by msib.health.config)."""

    name: str = "fleet"
    siem: Siem | None = None
    ssh: FleetSsh = Field(default_factory=FleetSsh)
    vars: list[str] = Field(default_factory=list)
    engine: Literal["pyinfra", "ansible"] = "pyinfra"
    waves: WavePlan = Field(default_factory=WavePlan)
    regions: dict[str, list[str]] = Field(default_factory=dict)


@dataclass(frozen=True)
class SbEntry:
    """One SB directory as surveyed: its plan when it could be read, else why it is skipped."""

    code: str
    directory: Path
    plan: SitePlan | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.plan is not None and self.error is None


@dataclass(frozen=True)
class Fleet:
    """A fleet directory and its ``fleet.yml``."""

    root: Path
    settings: FleetFile
    health: HealthConfig = field(default_factory=HealthConfig)

    @property
    def file(self) -> Path:
        return self.root / "fleet.yml"

    def sb_dirs(self) -> list[Path]:
        """Every SB directory (``sbs/*``, hidden ones left out), by name."""
        sbs = self.root / "sbs"
        if not sbs.is_dir():
            return []
        return sorted(p for p in sbs.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- where msib writes ------------------------------------------------------------------------

    def build_dir(self, code: str) -> Path:
        return self.root / "build" / code

    def inventory_dir(self, code: str) -> Path:
        """Where the SB's inventory is built (its run log, audit log and health state lie beside it)."""
        return self.build_dir(code) / "inventory"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def region_of(self, code: str) -> str:
        return next((r for r, codes in sorted(self.settings.regions.items()) if code in codes), "")

    def private_dir(self, path: Path) -> Path:
        """Create `path` (and the written top directory above it) 0700, git-ignored; returns it."""
        rel = path.resolve().relative_to(self.root.resolve())
        top = self.root / rel.parts[0]
        if rel.parts[0] not in WRITTEN_DIRS:
            raise ValueError(f"{path} is not below one of {WRITTEN_DIRS}")
        for d in [top, *(top / Path(*rel.parts[1:i + 1]) for i in range(1, len(rel.parts)))]:
            d.mkdir(mode=0o700, exist_ok=True)
            os.chmod(d, 0o700)
        ignore = top / ".gitignore"
        if not ignore.exists():
            fd = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("# written by msib: government network data, never committed\n*\n")
        return path

    # -- an SB's inputs ---------------------------------------------------------------------------

    def vars_files(self, code: str) -> list[Path]:
        """Role variable files for the SB: fleet.yml's ``vars``, then ``sbs/<code>/vars.yml`` if there is one."""
        files = [self.path(v) for v in self.settings.vars]
        own = self.root / "sbs" / code / "vars.yml"
        return files + ([own] if own.is_file() else [])

    def path(self, value: str) -> Path:
        """A path of fleet.yml: absolute, or relative to the fleet directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p)


def load_fleet(root: str | Path) -> Fleet:
    """Read ``<root>/fleet.yml``.

    Raises:
        InputError: no such directory or file, bad YAML, or a bad value (naming the key).
    """
    root = Path(root).absolute()
    path = root / "fleet.yml"
    if not root.is_dir():
        raise InputError(str(root), "not a directory", fix="give the fleet directory (--fleet DIR)")
    data = read_yaml(path, "fleet.yml in the fleet directory", missing="create one (docs/fleet.md); it may be empty")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError(str(path), "fleet.yml is a YAML mapping (name, siem, ssh, vars, waves, health)")
    health = parse_config(data.get("health"), str(path), prefix="health.")
    try:
        settings = FleetFile.model_validate({k: v for k, v in data.items() if k != "health"})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
        raise InputError(str(path), msg, where=where, fix="see docs/fleet.md for fleet.yml") from None
    return Fleet(root=root, settings=settings, health=health)


def read_plan(fleet: Fleet, directory: Path) -> SitePlan:
    """The SB's site plan, with fleet.yml's ``siem`` where the plan names none.

    Raises:
        InputError: a missing, unreadable or invalid site plan.
    """
    path = directory / "site.yml"
    data = read_yaml(path, "site plan in the SB directory", missing="every SB directory holds its site.yml")
    return parse_site(with_fleet_siem(fleet, data), str(path))


def with_fleet_siem(fleet: Fleet, data: Any) -> Any:
    """The site plan's data with fleet.yml's ``siem`` filled in when it has none."""
    if isinstance(data, dict) and "siem" not in data and fleet.settings.siem is not None:
        return {**data, "siem": fleet.settings.siem.model_dump(mode="json", exclude_none=True)}
    return data


def survey(fleet: Fleet) -> list[SbEntry]:
    """Every SB of the fleet with its plan, or why it is skipped (read errors and the rules across SBs)."""
    entries: list[SbEntry] = []
    for d in fleet.sb_dirs():
        rel = f"sbs/{d.name}"
        if not CODE_RE.match(d.name):
            entries.append(SbEntry(d.name, d, error=f"{rel}: the directory name is the SB code and must be a DNS "
                                                      "label of 2-32 characters [a-z0-9-]"))
            continue
        try:
            plan = read_plan(fleet, d)
        except MsibError as exc:
            entries.append(SbEntry(d.name, d, error=str(exc)))
            continue
        entries.append(SbEntry(d.name, d, plan=plan))
    refused: dict[str, list[str]] = {}
    claims: dict[str, list[SbEntry]] = {}
    for e in entries:
        if e.plan is not None:
            claims.setdefault(e.plan.code, []).append(e)
            if e.plan.code != e.code:
                refused.setdefault(e.code, []).append(
                    f"sbs/{e.code}/site.yml: code {e.plan.code!r} is not its directory name {e.code!r}")
    for code, who in claims.items():
        if len(who) > 1:
            names = " and ".join(f"sbs/{e.code}/site.yml" for e in who)
            for e in who:
                refused.setdefault(e.code, []).append(f"{names} both claim SB code {code!r}")
    codes = sorted(claims)
    for a in codes:
        for b in codes:
            if a != b and any(b.startswith(a + sep) for sep in SEPARATORS):
                for mine, other in ((a, b), (b, a)):
                    for e in claims[mine]:
                        refused.setdefault(e.code, []).append(
                            f"SB code {mine!r} ({_where(claims[mine])}) is a prefix of {other!r} "
                            f"({_where(claims[other])}) plus a separator: the SIEM could not keep their sources "
                            "apart; rename one")
    return [SbEntry(e.code, e.directory, e.plan, "; ".join(dict.fromkeys(refused[e.code])))
            if e.code in refused else e for e in entries]


def _where(entries: Sequence[SbEntry]) -> str:
    return ", ".join(f"sbs/{e.code}" for e in entries)


def quarter_of(name: str) -> str | None:
    """``2026Q4`` for a file named ``2026Q4.xlsx`` or ``2026q4-external.csv``; None otherwise."""
    m = QUARTER_RE.match(name)
    return f"{m.group(1)}Q{m.group(2)}" if m else None


def appendix_sets(directory: Path) -> dict[str | None, list[Path]]:
    """The SB's appendix files by quarter (``{None: files}`` when none is named by quarter).

    Raises:
        InputError: files not named by quarter beside files that are.
    """
    folder = directory / "appendix"
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in APPENDIX_SUFFIXES) \
        if folder.is_dir() else []
    named = {p: quarter_of(p.name) for p in files}
    unnamed = [p.name for p, q in named.items() if q is None]
    if unnamed and len(unnamed) < len(files):
        raise InputError(str(folder / unnamed[0]), "an appendix not named by quarter beside appendices that are",
                         fix="name it YYYYQn.xlsx (or YYYYQn-part.csv) like the others")
    if unnamed:
        return {None: files}
    out: dict[str | None, list[Path]] = {}
    for p, q in named.items():
        out.setdefault(q, []).append(p)
    return dict(sorted(out.items(), key=lambda kv: kv[0] or ""))


def appendices(directory: Path, quarter: str | None = None) -> tuple[str | None, list[Path]]:
    """The quarter and the appendix files to build from: the newest quarter's (not after `quarter`).

    Raises:
        InputError: as :func:`appendix_sets`, or no appendix of `quarter` or before.
    """
    sets = appendix_sets(directory)
    if not sets:
        return None, []
    if None in sets:
        return None, sets[None]
    quarters = [q for q in sets if q is not None and (quarter is None or q <= quarter)]
    if not quarters:
        raise InputError(str(directory / "appendix"), f"no appendix of {quarter} or before", fix="check --quarter")
    return quarters[-1], sets[quarters[-1]]


@contextmanager
def private_umask() -> Iterator[None]:
    """Files and directories created meanwhile are 0600/0700 (what msib writes below a fleet)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
