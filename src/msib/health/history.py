"""What health remembers between runs, beside the inventory directory: the last result, baselines, silent periods.

``<inventory dir>.health/`` (0700; every file 0600, written whole):

- ``latest.json``: the last run's :class:`~msib.health.model.SbHealth` (what ``msib fleet status``,
  the HTML page and the Prometheus exporter show);
- ``rates.json``: per hour, per source, the mean of the rates the runs of that hour saw (kept for
  ``baseline_days`` + 1 days): the baseline is the median of a source's hourly rates, once the
  oldest hour kept is ``baseline_days`` old;
- ``open.json``: the sources silent now, since when;
- ``silences.jsonl``: every silent period that ended, one JSON line each (``key``, ``name``,
  ``kind``, ``circuit``, ``from``, ``to``): what the quarterly report lists.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from msib.fsutil import atomic_write
from msib.health.model import SbHealth

HOUR = 3600.0


def state_dir(inventory_dir: str | Path) -> Path:
    """``<inventory dir>.health`` beside the inventory directory."""
    resolved = Path(inventory_dir).resolve()
    return resolved.parent / f"{resolved.name}.health"


class History:
    """The health state of one inventory."""

    def __init__(self, inventory_dir: str | Path) -> None:
        self.dir = state_dir(inventory_dir)

    def _write(self, name: str, data: Any) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        atomic_write(self.dir / name, json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n",
                     mode=0o600, make_parents=False)

    def _read(self, name: str) -> Any:
        try:
            return json.loads((self.dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # -- the last result ----------------------------------------------------------------------------

    def latest(self) -> SbHealth | None:
        """The last saved result, or None."""
        data = self._read("latest.json")
        try:
            return SbHealth.from_json(data) if isinstance(data, dict) else None
        except (KeyError, TypeError, ValueError):
            return None

    # -- baselines ----------------------------------------------------------------------------------

    def baselines(self, now: float, days: float) -> dict[str, float]:
        """Source key -> median of its hourly rates over `days`, once the history is `days` old."""
        hours = self._hours()
        if not hours or now - min(hours) < days * 86400.0:
            return {}
        rates: dict[str, list[float]] = {}
        for hour, per in hours.items():
            if now - hour <= days * 86400.0:
                for key, (total, n) in per.items():
                    if n:
                        rates.setdefault(key, []).append(total / n)
        return {key: statistics.median(values) for key, values in rates.items()}

    def _hours(self) -> dict[float, dict[str, list[float]]]:
        data = self._read("rates.json")
        if not isinstance(data, dict):
            return {}
        out: dict[float, dict[str, list[float]]] = {}
        for hour, per in data.items():
            with contextlib.suppress(ValueError, TypeError):
                out[float(hour)] = {str(k): [float(v[0]), float(v[1])] for k, v in per.items()}
        return out

    # -- saving a run -------------------------------------------------------------------------------

    def save(self, result: SbHealth, days: float) -> None:
        """Keep `result` as the latest, add its rates to the hour's, open and close silent periods."""
        self._write("latest.json", result.to_json())
        hours = self._hours()
        hour = result.at - result.at % HOUR
        per = hours.setdefault(hour, {})
        for s in result.sources:
            if s.rate is not None and s.state != "unknown":
                total, n = per.get(s.key, [0.0, 0.0])
                per[s.key] = [total + s.rate, n + 1]
        keep = (days + 1) * 86400.0
        self._write("rates.json", {repr(h): v for h, v in sorted(hours.items()) if result.at - h <= keep})
        opened = self._read("open.json")
        opened = opened if isinstance(opened, dict) else {}
        now_silent = {s.key: s for s in result.sources if s.state == "silent"}
        closed = []
        for key, period in list(opened.items()):
            if key not in now_silent and isinstance(period, dict):
                src = next((s for s in result.sources if s.key == key), None)
                if src is not None and src.state == "unknown":
                    continue  # nobody could tell: the period neither ends nor grows here
                closed.append({**period, "to": result.at})
                del opened[key]
        for key, s in now_silent.items():
            if key not in opened:
                opened[key] = {"key": key, "name": s.name, "kind": s.kind, "circuit": s.circuit,
                               "from": s.last_heard if s.last_heard is not None else result.at}
        if closed:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.dir / "silences.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in closed).encode())
            finally:
                os.close(fd)
        self._write("open.json", opened)

    # -- silent periods -----------------------------------------------------------------------------

    def silences(self, start: float, end: float, now: float) -> list[dict[str, Any]]:
        """Every silent period overlapping [start, end): ended ones, and those still open (``to`` None)."""
        out = [p for p in self._closed() if p["from"] < end and p["to"] > start]
        opened = self._read("open.json")
        for p in (opened or {}).values() if isinstance(opened, dict) else []:
            if isinstance(p, dict) and isinstance(p.get("from"), int | float) and p["from"] < end and now > start:
                out.append({**p, "to": None})
        return sorted(out, key=lambda p: (p["from"], str(p.get("name"))))

    def _closed(self) -> Iterator[dict[str, Any]]:
        try:
            text = (self.dir / "silences.jsonl").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                p = json.loads(line)
                if isinstance(p, dict) and all(isinstance(p.get(k), int | float) for k in ("from", "to")):
                    yield p
