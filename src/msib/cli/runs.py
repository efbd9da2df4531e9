"""Recording a command's outcome in the inventory's run log (msib.runlog), warning when it cannot be written."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msib.cli.console import console


def record_run(inventory: Path, kind: Any, data: Mapping[str, Any], *, ok: bool, started: float) -> None:
    """Append the run to ``<inventory>.runs.jsonl``; a failure to write is a warning, never the run's failure."""
    from msib import runlog

    error = runlog.record(inventory, kind, data, ok=ok, started=started)
    if error:
        console.print(f"[yellow]warning:[/] {error}", highlight=False, markup=True, soft_wrap=True)
