"""Where the CLI writes: messages and progress on stderr, results on stdout, JSON for scripts."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console

from msib.escape import json_text

console = Console(stderr=True)
out = Console()


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (for schedulers and scripts)."""
    sys.stdout.write(json_text(data) + "\n")
