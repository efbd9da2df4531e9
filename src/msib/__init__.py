"""msib: roll out, keep alive and check the IS event sources of state bodies."""

from __future__ import annotations

__version__ = "0.1.0"
