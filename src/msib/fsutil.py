"""Files written whole or not at all: the one atomic-write helper of msib."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: str | Path, data: str | bytes, *, mode: int = 0o644, fsync: bool = True,
                 make_parents: bool = True) -> None:
    """Write `data` to `path` through a temp file beside it and a rename.

    A reader sees the old file or the new one, never half of one; the temp file has `mode` from its
    creation (a secret is never readable by others, even for a moment) and is removed on failure.

    Args:
        path: the file to write.
        data: text (written as UTF-8) or bytes.
        mode: permissions of the new file.
        fsync: flush the data to disk before the rename (survives a power loss).
        make_parents: create missing parent directories (0755; callers that need 0700 make their own).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(d / "x.txt", "hello", mode=0o600)
    >>> (d / "x.txt").read_text(), oct((d / "x.txt").stat().st_mode & 0o777)
    ('hello', '0o600')
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
