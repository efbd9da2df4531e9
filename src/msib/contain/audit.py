"""The audit log of `msib contain`: one fsynced JSON line per action, replayed to know what msib holds."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msib.contain.request import ENV_AUDIT, ContainError, IPv4Net
from msib.errors import InputError


def default_audit_path(inventory_dir: Path) -> Path:
    """``$MSIB_CONTAIN_AUDIT``, else ``<inventory dir>.contain-audit.jsonl`` beside the inventory directory.

    (Not inside it: ``msib inventory build`` replaces the inventory directory as a whole.)
    """
    env = os.environ.get(ENV_AUDIT)
    if env:
        return Path(env)
    resolved = inventory_dir.resolve()
    return resolved.parent / f"{resolved.name}.contain-audit.jsonl"


def who() -> dict[str, Any]:
    """The OS user running msib, and the user behind sudo (if any)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "uid": os.getuid(), "sudo_user": os.environ.get("SUDO_USER") or None,
            "host": socket.gethostname(), "pid": os.getpid()}


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(round(t), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


class AuditLog:
    """Append-only JSON lines, one per action; ``with log.locked():`` serialises msib contain runs.

    Each record is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced (the
    directory too when the file is created), so a record is either whole or absent.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock (a ``.lock`` file beside the log) for a whole run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def append(self, record: Mapping[str, Any], *, before_change: bool = False) -> None:
        """Append one record (one ``write``, fsynced).

        Raises:
            InputError: `before_change` (the intent of a run) and the log cannot be written: nothing
                was changed (exit 2).
            ContainError: the log cannot be written after a change (exit 1).
        """
        line = (json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n").encode()
        try:
            self._write(line)
        except OSError as exc:
            if before_change:
                raise InputError(str(self.path), f"cannot write the audit log ({exc.strerror}): nothing was changed",
                                 fix="make it writable; msib changes no firewall it cannot account for") from None
            raise ContainError(f"{self.path}: cannot write the audit record after the change ({exc.strerror}): "
                               f"{record.get('action')} {record.get('address')}") from None

    def _write(self, line: bytes) -> None:
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise ContainError(f"{self.path}: short write of an audit record ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def records(self) -> list[dict[str, Any]]:
        """Every whole record (a torn last line, if any, is skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out: list[dict[str, Any]] = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict):
                    out.append(rec)
        return out


@dataclass(frozen=True)
class Held:
    """A block msib holds on one firewall according to the audit log."""

    firewall: str
    network: IPv4Net
    expires: float | None
    reason: str | None


def held_blocks(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, IPv4Net], Held]:
    """Replay the audit log: the blocks msib put in place and has not released or swept.

    A block record whose firewall result is added/extended sets (firewall, network) → expiry; a
    release or expire record whose result is removed/absent clears it. ``present`` keeps what was
    recorded before (an entry someone else made is not adopted). A block's intent whose firewall
    has no outcome in the log (the run was killed half-way) counts as held until its intended
    expiry: the entry may be on the device, and the next sweep after that expiry removes it.
    """
    held: dict[tuple[str, IPv4Net], Held] = {}
    # (run, firewall, network) -> what an intent asked for, until that firewall's outcome is recorded
    unresolved: dict[tuple[str, str, IPv4Net], Held] = {}
    for rec in records:
        try:
            net = IPv4Net(rec["address"])
        except (KeyError, ValueError):
            continue
        run = str(rec.get("run") or "")
        for fw in rec.get("firewalls") or []:
            key = (str(fw.get("name")), net)
            result = fw.get("result")
            if rec.get("phase") == "intent":
                if rec.get("action") == "block" and run:
                    unresolved[(run, *key)] = Held(key[0], net, from_iso(fw.get("expires")), rec.get("reason"))
                continue
            unresolved.pop((run, *key), None)
            if rec.get("action") == "block" and result in ("added", "extended"):
                held[key] = Held(key[0], net, from_iso(fw.get("expires")), rec.get("reason"))
            elif rec.get("action") in ("release", "expire") and result in ("removed", "absent"):
                held.pop(key, None)
            else:
                continue
            # a later definitive outcome on this firewall supersedes what an unfinished run intended
            for stale in [k for k in unresolved if k[1:] == key]:
                del unresolved[stale]
    for h in unresolved.values():
        prior = held.get((h.firewall, h.network))
        if prior is None or (prior.expires is not None and (h.expires is None or h.expires > prior.expires)):
            held[(h.firewall, h.network)] = h
    return held
