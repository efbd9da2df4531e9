"""Files written whole or not at all, and one run at a time: msib's atomic write and its one lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from msib.errors import InputError, Locked


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


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str, error: type[Locked] = Locked) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on `path` for the block; another holder makes this run refuse at once.

    The lock is the kernel's: it goes when the process ends, however it ends. The file only says
    who holds it (pid, since) for the refusal's message. It is opened with ``O_NOFOLLOW`` and must
    be a regular file: a symbolic link planted at its path (``/run/lock`` is world-writable) is
    refused, never followed and truncated.

    Args:
        path: the lock file (created 0644 if absent, its directory too).
        what: the job, for the message ("msib update", "msib deploy of DIR").
        error: the :class:`~msib.errors.Locked` subclass to raise.

    Raises:
        Locked: another process holds the lock (exit status 75; nothing was done).
        InputError: the path is a symbolic link, not a regular file, or cannot be opened.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(str(path), "the lock file is a symbolic link: not following it",
                             fix="remove the link (someone else may have planted it)") from None
        raise InputError(str(path), f"cannot open the lock file: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(str(path), "the lock file is not a regular file", fix="remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            try:
                info = json.loads(holder)
                who = f"pid {info['pid']}, running since {info['since']}"
            except (ValueError, KeyError, TypeError):
                who = "holder unknown"
            raise error(f"another {what} is running ({who}; lock {path}): this run did nothing, "
                        f"exit status {error.exit_code}") from None
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": since}).encode() + b"\n", 0)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the flock
