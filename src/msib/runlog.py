"""The run log of an inventory: one JSON line per deploy, check, update or SIEM sync, beside the inventory directory.

``msib deploy``, ``msib check``, ``msib update``, ``msib siem sync`` and ``msib fleet`` append what
a run found; ``msib health`` (config convergence age), ``msib fleet status`` (last deploy, last
check) and ``msib report quarterly`` (check results of the quarter) read it. It lives beside the
inventory directory, as the containment audit log does (``msib inventory build`` replaces the
directory as a whole): ``<inventory dir>.runs.jsonl``, mode 0600.

A record is ``{"kind", "ts", "finished", "ok", ...}`` plus what the kind adds:

- ``deploy``: ``engine``, ``check``, ``hosts: {NAME: {changed, unchanged, failed[, error]}}``;
- ``check``: ``passed``, ``failed``, ``errors``, ``failures: [{host, check}]``;
- ``update``: ``changed``, ``failures: [TEXT]``;
- ``siem_sync``: what ``msib siem sync --json`` prints (registered, deregistered, ...).

Writing is best effort for the commands that record (a run log that cannot be written never
fails the run it records): :func:`record` returns the error text instead of raising.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

RunKind = Literal["deploy", "check", "update", "siem_sync"]
RUN_KINDS: tuple[RunKind, ...] = ("deploy", "check", "update", "siem_sync")


def runlog_path(inventory_dir: str | Path) -> Path:
    """``<inventory dir>.runs.jsonl`` beside the inventory directory."""
    resolved = Path(inventory_dir).resolve()
    return resolved.parent / f"{resolved.name}.runs.jsonl"


def iso(t: float) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    return dt.datetime.fromtimestamp(round(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: Any) -> float | None:
    """The epoch seconds of :func:`iso`'s text; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def record(inventory_dir: str | Path, kind: RunKind, data: Mapping[str, Any], *, ok: bool,
           started: float | None = None, finished: float | None = None) -> str | None:
    """Append one run to the inventory's run log; the error text when it could not be written, else None.

    Args:
        inventory_dir: the inventory the run worked on.
        kind: what ran.
        data: what the run found (its JSON summary).
        ok: whether the run succeeded.
        started: epoch seconds the run began (default: `finished`).
        finished: epoch seconds the run ended (default: now).
    """
    end = time.time() if finished is None else finished
    rec = {"kind": kind, "ts": iso(started if started is not None else end), "finished": iso(end), "ok": ok,
           **{k: v for k, v in data.items() if k not in ("kind", "ts", "finished", "ok")}}
    line = (json.dumps(rec, ensure_ascii=False, default=str) + "\n").encode()
    path = runlog_path(inventory_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, line)  # one write on O_APPEND: a record is whole or absent
        finally:
            os.close(fd)
    except OSError as exc:
        return f"{path}: cannot record the run: {exc.strerror}"
    return None


def records(inventory_dir: str | Path, kind: RunKind | None = None) -> list[dict[str, Any]]:
    """Every whole record of the run log (of `kind` when given), oldest first; [] when there is none."""
    return list(_read(runlog_path(inventory_dir), kind))


def _read(path: Path, kind: RunKind | None) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if isinstance(rec, dict) and (kind is None or rec.get("kind") == kind):
                yield rec


def last(inventory_dir: str | Path, kind: RunKind, *, check_mode: bool | None = None) -> dict[str, Any] | None:
    """The newest record of `kind` (for deploys: of check mode `check_mode` when given), or None."""
    found = None
    for rec in records(inventory_dir, kind):
        if check_mode is None or bool(rec.get("check")) == check_mode:
            found = rec
    return found


def converged_at(inventory_dir: str | Path) -> dict[str, float]:
    """Per appliance: when a deploy (run or --check) last found nothing to change on it (epoch seconds).

    A host counts as converged by a deploy in which it had no change, no failure and no error.
    """
    out: dict[str, float] = {}
    for rec in records(inventory_dir, "deploy"):
        t = from_iso(rec.get("finished"))
        hosts = rec.get("hosts")
        if t is None or not isinstance(hosts, dict):
            continue
        for name, h in hosts.items():
            if isinstance(h, dict) and not h.get("changed") and not h.get("failed") and not h.get("error"):
                out[str(name)] = max(t, out.get(str(name), 0.0))
    return out


def first_deployed(inventory_dir: str | Path) -> dict[str, float]:
    """Per appliance: when a deploy (not --check) first ran on it without a failure (epoch seconds)."""
    out: dict[str, float] = {}
    for rec in records(inventory_dir, "deploy"):
        t = from_iso(rec.get("finished"))
        hosts = rec.get("hosts")
        if t is None or rec.get("check") or not isinstance(hosts, dict):
            continue
        for name, h in hosts.items():
            if isinstance(h, dict) and not h.get("failed") and not h.get("error"):
                out.setdefault(str(name), t)
    return out
