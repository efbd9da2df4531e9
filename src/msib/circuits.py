"""The two circuits of the Rules, by name: a module of its own, light to import (the appendix reader
names them without loading the site plan's validation)."""

from __future__ import annotations

from typing import Final, Literal

CircuitName = Literal["internal", "external"]
CIRCUITS: Final[tuple[CircuitName, ...]] = ("internal", "external")
