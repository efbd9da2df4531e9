"""Reading appendix files ahead: started by the command line before it has finished loading.

`msib inventory build` spends a few hundred milliseconds importing its own command line (typer,
rich, pydantic) before it knows its arguments; python-calamine parses a workbook without holding the
GIL. So :mod:`msib.cli` starts reading the appendix files named on the command line at once, in
threads (:func:`start`: nothing is imported before they run, the threads import the readers), and
:func:`msib.inventory.build_inventory` takes those reads (:func:`take`)
instead of starting its own, when they are of the same file, unchanged, with the same limits.
Anything else (another file, a changed one, other limits) is read as usual, and an unused read
is dropped: the result is the same as without it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msib.appendix.bounds import ReadLimits
    from msib.appendix.model import ReadResult

_Key = tuple[str, tuple[tuple[str, int], ...]]  # the path as given, the limits that are not the defaults
_lock = threading.Lock()
_pending: dict[_Key, tuple[tuple[int, int, int, int], Future[ReadResult]]] = {}


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _limits_key(limits: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(limits.items()))


def start(paths: list[Path], limits: Mapping[str, int] | None = None) -> None:
    """Start reading `paths` in daemon threads (at most four at once); errors are kept for :func:`take`.

    `limits`: the :class:`~msib.appendix.bounds.ReadLimits` fields given (the rest are the defaults).
    Nothing is imported here: the threads import the readers.
    """
    given = dict(limits or {})
    jobs: list[tuple[Path, Future[ReadResult]]] = []
    for path in paths:
        try:
            ident = _identity(path)
        except OSError:
            continue
        future: Future[ReadResult] = Future()
        with _lock:
            _pending[str(path), _limits_key(given)] = (ident, future)
        jobs.append((path, future))
    if not jobs:
        return

    def work(batch: list[tuple[Path, Future[ReadResult]]]) -> None:
        for path, future in batch:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                from msib.appendix.bounds import ReadLimits
                from msib.appendix.read import read_appendix

                future.set_result(read_appendix(path, limits=ReadLimits(**given)))
            except BaseException as exc:  # kept for the build, which raises it in its own order
                future.set_exception(exc)

    workers = max(1, min(len(jobs), os.cpu_count() or 1, 4))
    for k in range(workers):
        threading.Thread(target=work, args=(jobs[k::workers],), name="msib-prefetch", daemon=True).start()


def take(path: Path, limits: ReadLimits) -> Future[ReadResult] | None:
    """The read started for `path` with `limits`, if the file is unchanged since; else None."""
    from dataclasses import fields

    from msib.appendix.bounds import DEFAULT_LIMITS

    given = {f.name: getattr(limits, f.name) for f in fields(limits)
             if getattr(limits, f.name) != getattr(DEFAULT_LIMITS, f.name)}
    with _lock:
        item = _pending.pop((str(path), _limits_key(given)), None)
    if item is None:
        return None
    ident, future = item
    try:
        unchanged = _identity(path) == ident
    except OSError:
        unchanged = False
    if not unchanged:
        future.cancel()
        return None
    return future


def discard() -> None:
    """Forget every read not taken (they finish in the background)."""
    with _lock:
        for _, future in _pending.values():
            future.cancel()
        _pending.clear()
