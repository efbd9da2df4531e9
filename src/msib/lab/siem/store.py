"""The lab SIEM's state: agents and CDB lists in one SQLite file, kept across restarts.

A deleted agent is gone, its name free again, with or without `purge` (Wazuh 4.x frees the name
on delete); its ID is never reused.
"""

from __future__ import annotations

import base64
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    ip TEXT NOT NULL,
    register_ip TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'never_connected',
    date_add REAL NOT NULL,
    last_keepalive REAL,
    key TEXT NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS lists (
    filename TEXT PRIMARY KEY,
    content TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


@dataclass(frozen=True)
class AgentRow:
    """One registered agent as stored."""

    id: int
    name: str
    ip: str
    register_ip: str
    status: str
    date_add: float
    last_keepalive: float | None
    key: str
    removed: bool


class DuplicateName(Exception):
    """A registered agent already has this name."""


class Store:
    """Thread-safe access to the SQLite file `DIR/siemlab.sqlite3`."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / "siemlab.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        # state from older lab SIEMs kept deleted agents as reserved names: Wazuh 4.x frees them
        self._db.execute("DELETE FROM agents WHERE removed != 0")
        # agent ids continue after 000 (the manager) and are never reused
        self._db.execute(
            "INSERT OR IGNORE INTO sqlite_sequence(name, seq) "
            "SELECT 'agents', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name='agents')"
        )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # --- agents -----------------------------------------------------------------------------

    def agents(self) -> list[AgentRow]:
        """Every agent that is not removed, by id."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, name, ip, register_ip, status, date_add, last_keepalive, key, removed "
                "FROM agents WHERE removed = 0 ORDER BY id"
            ).fetchall()
        return [
            AgentRow(id=r[0], name=r[1], ip=r[2], register_ip=r[3], status=r[4], date_add=r[5],
                     last_keepalive=r[6], key=r[7], removed=bool(r[8]))
            for r in rows
        ]

    def add_agent(self, name: str, ip: str) -> AgentRow:
        """Register a new agent.

        Raises:
            DuplicateName: the name is taken by a registered agent.
        """
        with self._tx() as db:
            if db.execute("SELECT 1 FROM agents WHERE name = ?", (name,)).fetchone():
                raise DuplicateName(name)
            now = time.time()
            cur = db.execute(
                "INSERT INTO agents(name, ip, register_ip, date_add, key) VALUES (?, ?, ?, ?, '')",
                (name, ip, ip, now),
            )
            agent_id = int(cur.lastrowid or 0)
            key = base64.b64encode(
                f"{agent_id:03d} {name} {ip} {secrets.token_hex(32)}".encode()
            ).decode("ascii")
            db.execute("UPDATE agents SET key = ? WHERE id = ?", (key, agent_id))
        return AgentRow(agent_id, name, ip, ip, "never_connected", now, None, key, False)

    def remove_agents(self, ids: list[int]) -> None:
        """Delete agents; their names are free again (IDs are not reused)."""
        with self._tx() as db:
            db.executemany("DELETE FROM agents WHERE id = ?", [(agent_id,) for agent_id in ids])

    # --- CDB lists --------------------------------------------------------------------------

    def get_list(self, filename: str) -> str | None:
        """The list's text, or None when there is no such list."""
        with self._tx() as db:
            row = db.execute("SELECT content FROM lists WHERE filename = ?", (filename,)).fetchone()
        return None if row is None else str(row[0])

    def put_list(self, filename: str, content: str, overwrite: bool) -> bool:
        """Store a list; False (nothing written) when it exists and `overwrite` is false."""
        with self._tx() as db:
            exists = db.execute("SELECT 1 FROM lists WHERE filename = ?", (filename,)).fetchone()
            if exists and not overwrite:
                return False
            db.execute(
                "INSERT INTO lists(filename, content, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(filename) DO UPDATE SET content = excluded.content, updated = excluded.updated",
                (filename, content, time.time()),
            )
        return True

    def delete_list(self, filename: str) -> bool:
        """Delete a list; False when there was none."""
        with self._tx() as db:
            cur = db.execute("DELETE FROM lists WHERE filename = ?", (filename,))
        return cur.rowcount > 0
