"""The SIEM driver interface: what `msib siem sync` needs from any SIEM, and nothing more.

A driver is a context manager: the constructor only stores settings, `with` opens the connection.

Example:
    >>> with WazuhDriver(url, creds, ca_file=ca) as siem:                 # doctest: +SKIP
    ...     mine = siem.list_agents("lab.")
    ...     siem.publish_list("msib-lab-objects", {"10.0.0.5": "pc5,internal,windows"})
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

RequestKind = Literal["read", "write"]


@dataclass(frozen=True)
class Agent:
    """A source registered at the SIEM (an agent, in Wazuh's words)."""

    id: str
    name: str
    ip: str
    status: str = "never_connected"


@dataclass
class RequestCounts:
    """HTTP requests a driver sent: `write` changed (or tried to change) the SIEM, `read` did not.

    A login counts as a read; a retried request counts once per attempt.
    """

    read: int = 0
    write: int = 0

    def add(self, kind: RequestKind) -> None:
        """Count one request of `kind`."""
        if kind == "write":
            self.write += 1
        else:
            self.read += 1

    @property
    def total(self) -> int:
        """Every request sent."""
        return self.read + self.write


class SiemDriver(abc.ABC):
    """One SIEM's registration API, as msib uses it."""

    counts: RequestCounts

    @abc.abstractmethod
    def list_agents(self, prefix: str) -> list[Agent]:
        """Every registered source whose name starts with `prefix` (exactly; paged through)."""

    @abc.abstractmethod
    def register(self, name: str, ip: str) -> Agent:
        """Register one source; SiemError if the SIEM refuses (e.g. the name is taken)."""

    @abc.abstractmethod
    def deregister(self, agents: Sequence[Agent]) -> None:
        """Remove sources for good (no key or name left behind); SiemError if any is not removed."""

    @abc.abstractmethod
    def publish_list(self, name: str, entries: Mapping[str, str]) -> None:
        """Create or replace the lookup list `name` with `entries` (key -> value) in one request."""

    @abc.abstractmethod
    def read_list(self, name: str) -> dict[str, str] | None:
        """The lookup list `name` (key -> value), or None when the SIEM has no such list."""

    @abc.abstractmethod
    def delete_list(self, name: str) -> None:
        """Delete the lookup list `name` (nothing to do if it does not exist)."""

    def open(self) -> None:  # noqa: B027 - optional hook
        """Open connections (called by `with`)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Close connections (called at the end of `with`)."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def encode_cdb(entries: Mapping[str, str]) -> str:
    """CDB list text: one `key:value` a line, sorted by key; a key holding `:` (IPv6) is quoted.

    Example:
        >>> encode_cdb({"2001:db8::5": "pc,external,linux", "10.0.0.5": "pc5,internal,windows"})
        '10.0.0.5:pc5,internal,windows\\n"2001:db8::5":pc,external,linux\\n'
    """
    lines = []
    for key in sorted(entries):
        value = entries[key]
        if "\n" in key or '"' in key or "\n" in value:
            raise ValueError(f"a CDB entry cannot hold a newline or a double quote: {key!r}")
        lines.append(f'"{key}":{value}' if ":" in key else f"{key}:{value}")
    return "".join(line + "\n" for line in lines)


def decode_cdb(text: str) -> dict[str, str]:
    """Parse CDB list text back into key -> value (the inverse of :func:`encode_cdb`).

    Raises:
        ValueError: a line that is not `key:value`.
    """
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
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
        out[key] = value
    return out
