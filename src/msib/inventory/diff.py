"""What changed between two inventories (two quarters of one SB): `msib inventory diff OLD NEW`.

Objects are matched across the two ``objects.json`` files in three rounds, each on what is left by
the one before: the same hostname and IP; then the same hostname (its IP changed); then the same IP
(its hostname changed). What is left is added (only in NEW) or removed (only in OLD: what
deregistration at the SIEM works from). A matched object may have moved circuit, changed IP,
hostname or OS, or become past its OS's end of life.

Example:
    >>> d = diff_inventories("inv/2025q2", "inv/2025q3")          # doctest: +SKIP
    >>> d.counts()["removed"]                                       # doctest: +SKIP
    3
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

from msib.errors import InputError
from msib.escape import md_cell as _md

ChangeKind = Literal["moved_circuit", "ip_changed", "hostname_changed", "os_changed", "newly_eol", "details_changed"]
CHANGE_KINDS: Final[tuple[ChangeKind, ...]] = get_args(ChangeKind)
_DETAILS: Final = ("department", "location", "responsible")
_REQUIRED: Final = ("hostname", "ip", "circuit")


@dataclass(frozen=True)
class Snapshot:
    """One inventory directory as the diff sees it."""

    path: Path
    sb_code: str | None
    as_of: str | None
    objects: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Change:
    """One object present in both inventories that is not the same any more."""

    old: Mapping[str, Any]
    new: Mapping[str, Any]
    kinds: tuple[ChangeKind, ...]

    def fields(self) -> dict[str, list[Any]]:
        """Every compared field that differs: name -> [old, new]."""
        names = ("circuit", "ip", "hostname", "os", "os_eol", *_DETAILS)
        return {n: [self.old.get(n), self.new.get(n)] for n in names if self.old.get(n) != self.new.get(n)}

    def to_json(self) -> dict[str, Any]:
        return {
            "hostname": self.new.get("hostname"),
            "ip": self.new.get("ip"),
            "kinds": list(self.kinds),
            "fields": self.fields(),
            "old_source": self.old.get("source"),
            "new_source": self.new.get("source"),
        }


@dataclass(frozen=True)
class InventoryDiff:
    """The differences between two inventories."""

    old: Snapshot
    new: Snapshot
    added: tuple[Mapping[str, Any], ...]
    removed: tuple[Mapping[str, Any], ...]
    changed: tuple[Change, ...]
    unchanged: int

    def of_kind(self, kind: ChangeKind) -> tuple[Change, ...]:
        """The changes of one kind (an object may have several)."""
        return tuple(c for c in self.changed if kind in c.kinds)

    def counts(self) -> dict[str, int]:
        """How many objects were added, removed, unchanged, and changed in each way."""
        out = {"added": len(self.added), "removed": len(self.removed), "unchanged": self.unchanged}
        out.update({k: len(self.of_kind(k)) for k in CHANGE_KINDS})
        return out

    def to_json(self) -> dict[str, Any]:
        """The JSON form printed by `msib inventory diff --json`."""
        return {
            "old": {"path": str(self.old.path), "sb_code": self.old.sb_code, "as_of": self.old.as_of},
            "new": {"path": str(self.new.path), "sb_code": self.new.sb_code, "as_of": self.new.as_of},
            "counts": self.counts(),
            "added": [dict(o) for o in self.added],
            "removed": [dict(o) for o in self.removed],
            "changed": [c.to_json() for c in self.changed],
        }


def load_snapshot(path: str | Path) -> Snapshot:
    """Read an inventory directory's ``objects.json`` (and the SB and date from ``report.json``).

    Raises:
        InputError: not an inventory directory, or a file that is not what `msib inventory build` writes.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(str(path), "not a directory", fix="give two inventory directories written by "
                         "`msib inventory build`")
    objects_file = path / "objects.json"
    try:
        data = json.loads(objects_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(path), "no objects.json: not an inventory directory",
                         fix="give a directory written by `msib inventory build`") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(str(objects_file), f"not readable as JSON ({type(exc).__name__})",
                         fix="build the inventory again") from None
    if not isinstance(data, list):
        raise InputError(str(objects_file), "is not a JSON list of objects", fix="build the inventory again")
    for i, obj in enumerate(data):
        if not isinstance(obj, dict) or any(not isinstance(obj.get(k), str) for k in _REQUIRED):
            raise InputError(str(objects_file), "an entry lacks hostname, ip or circuit", where=f"entry {i}",
                             fix="build the inventory again")
    sb_code = as_of = None
    try:
        report = json.loads((path / "report.json").read_text(encoding="utf-8"))
        if isinstance(report, dict):
            sb = report.get("sb")
            sb_code = sb.get("code") if isinstance(sb, dict) else None
            as_of = report.get("as_of") if isinstance(report.get("as_of"), str) else None
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    return Snapshot(path, sb_code, as_of, tuple(data))


def _kinds(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[ChangeKind, ...]:
    kinds: list[ChangeKind] = []
    if old.get("circuit") != new.get("circuit"):
        kinds.append("moved_circuit")
    if old.get("ip") != new.get("ip"):
        kinds.append("ip_changed")
    if old.get("hostname") != new.get("hostname"):
        kinds.append("hostname_changed")
    if old.get("os") != new.get("os"):
        kinds.append("os_changed")
    if new.get("os_eol") is True and old.get("os_eol") is not True:
        kinds.append("newly_eol")
    if any(old.get(k) != new.get(k) for k in _DETAILS):
        kinds.append("details_changed")
    return tuple(kinds)


def diff_snapshots(old: Snapshot, new: Snapshot) -> InventoryDiff:
    """Match the objects of two snapshots and list what changed (see the module docstring)."""
    old_left: dict[int, Mapping[str, Any]] = dict(enumerate(old.objects))
    new_left: dict[int, Mapping[str, Any]] = dict(enumerate(new.objects))
    pairs: list[tuple[int, int]] = []

    def match(key: tuple[str, ...]) -> None:
        index: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, o in old_left.items():
            index[tuple(o.get(k) for k in key)].append(i)
        for j, n in list(new_left.items()):
            candidates = index.get(tuple(n.get(k) for k in key))
            if candidates:
                i = candidates.pop(0)
                pairs.append((i, j))
                del old_left[i]
                del new_left[j]

    match(("hostname", "ip"))
    match(("hostname",))
    match(("ip",))
    changed: list[Change] = []
    unchanged = 0
    for i, j in sorted(pairs, key=lambda p: p[1]):
        kinds = _kinds(old.objects[i], new.objects[j])
        if kinds:
            changed.append(Change(old.objects[i], new.objects[j], kinds))
        else:
            unchanged += 1
    return InventoryDiff(
        old=old,
        new=new,
        added=tuple(new_left[j] for j in sorted(new_left)),
        removed=tuple(old_left[i] for i in sorted(old_left)),
        changed=tuple(changed),
        unchanged=unchanged,
    )


def diff_inventories(old: str | Path, new: str | Path) -> InventoryDiff:
    """Compare two inventory directories of the same SB.

    Args:
        old: the earlier inventory directory.
        new: the later one.

    Returns:
        Objects added, removed and changed (moved circuit, IP, hostname, OS, newly past end of life).

    Raises:
        InputError: a directory is not an inventory, or the two are of different state bodies.
    """
    a, b = load_snapshot(old), load_snapshot(new)
    if a.sb_code and b.sb_code and a.sb_code != b.sb_code:
        raise InputError(str(b.path), f"is the inventory of {b.sb_code!r}, {a.path} of {a.sb_code!r}",
                         fix="compare two inventories of the same state body")
    return diff_snapshots(a, b)


def _where(obj: Mapping[str, Any]) -> str:
    src = obj.get("source")
    if not isinstance(src, dict):
        return ""
    sheet = f", sheet {src.get('sheet')}" if src.get("sheet") is not None else ""
    return f"{src.get('file')}{sheet}, row {src.get('row')}"


def _object_table(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| hostname | IP | circuit | OS | where |", "|---|---|---|---|---|"]
    for o in objects:
        lines.append(f"| {_md(o.get('hostname'))} | {_md(o.get('ip'))} | {_md(o.get('circuit'))} | "
                     f"{_md(o.get('os'))} | {_md(_where(o))} |")
    return lines


_TITLES: Final[dict[ChangeKind, str]] = {
    "moved_circuit": "Moved to the other circuit",
    "ip_changed": "IP address changed",
    "hostname_changed": "Hostname changed",
    "os_changed": "Operating system changed",
    "newly_eol": "Newly past OS end of life",
    "details_changed": "Department, location or responsible person changed",
}


def render_diff_markdown(diff: InventoryDiff) -> str:
    """The differences for a person (what `msib inventory diff` prints)."""
    a, b = diff.old, diff.new
    counts = diff.counts()
    out = [
        f"# Inventory changes: {_md(a.path)} ({_md(a.as_of or '?')}) -> {_md(b.path)} ({_md(b.as_of or '?')})",
        "",
        ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in counts.items()) + ".",
        "",
    ]
    out += [f"## Added ({len(diff.added)})", ""]
    out += (_object_table(diff.added) if diff.added else ["None."]) + [""]
    out += [f"## Removed ({len(diff.removed)}): deregister these at the SIEM", ""]
    out += (_object_table(diff.removed) if diff.removed else ["None."]) + [""]
    for kind in CHANGE_KINDS:
        items = diff.of_kind(kind)
        out += [f"## {_TITLES[kind]} ({len(items)})", ""]
        if not items:
            out += ["None.", ""]
            continue
        out += ["| hostname | IP | what | before | after |", "|---|---|---|---|---|"]
        for c in items:
            for name, (before, after) in c.fields().items():
                out.append(f"| {_md(c.new.get('hostname'))} | {_md(c.new.get('ip'))} | {name} | {_md(before)} | "
                           f"{_md(after)} |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


__all__ = ["CHANGE_KINDS", "Change", "InventoryDiff", "Snapshot", "diff_inventories", "diff_snapshots",
           "load_snapshot", "render_diff_markdown"]
