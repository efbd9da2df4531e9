"""Where the CLI writes: messages and progress on stderr, results on stdout, JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(stderr=True)
out = Console()


def print_json(data: Any) -> None:
    """Print `data` as JSON on stdout (for schedulers and scripts)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
