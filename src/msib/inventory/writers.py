"""Writing an inventory directory whole: its files flushed in a directory beside it, swapped in with one rename."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from queue import SimpleQueue
from typing import Final

from msib.errors import InputError
from msib.inventory.model import INVENTORY_FILES

_RENAME_EXCHANGE: Final = 2
_AT_FDCWD: Final = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False when not supported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_out_dir(out: Path) -> None:
    """Refuse an output path that is a file, or a directory holding files msib did not write.

    Raises:
        InputError: naming the path and what to do (nothing is written).
    """
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "exists and is not a directory", fix="choose a directory for the inventory")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in INVENTORY_FILES)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", …" if len(foreign) > 5 else "")
            raise InputError(
                str(out),
                f"holds files that are not part of an inventory ({shown}); the build replaces the whole directory",
                fix="choose an empty or new directory for --out",
            )


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _write_file(path: Path, data: bytes | Iterable[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    with os.fdopen(fd, "wb") as f:
        if isinstance(data, bytes):
            f.write(data)
        else:
            for chunk in data:
                f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def _write_pieces(pool: ThreadPoolExecutor, path: Path, pieces: Iterable[bytes]) -> Future[None]:
    """Write a file given in pieces: they are produced here and written by a thread of `pool` as
    they come (the thread holds the GIL only between two writes), then flushed to disk there."""
    queue: SimpleQueue[bytes | None] = SimpleQueue()
    done = pool.submit(_write_file, path, iter(queue.get, None))
    try:
        for piece in pieces:
            queue.put(piece)
    finally:
        queue.put(None)  # the end, also when producing failed: the writer thread always finishes
    return done


def write_atomically(
    out: Path,
    files: Mapping[str, bytes | Iterable[bytes]] | Iterable[tuple[str, bytes | Iterable[bytes]]],
    *,
    discard: Callable[[Path], object] = shutil.rmtree,
) -> None:
    """Replace directory `out` by one holding exactly `files`: all of them, or `out` as it was.

    The files are written (and flushed to disk) in a temporary directory beside `out` — by
    background threads while the next file is produced, when `files` is a generator — and swapped
    in with one rename (an atomic exchange when `out` exists, on Linux). Any error, also one raised
    by the generator, removes the temporary directory and leaves `out` untouched.

    A file's content is bytes, or an iterable of byte pieces (produced by the calling thread and
    written by another as they come).

    Args:
        out: the directory to replace (created when missing).
        files: file name -> content, as a mapping or as (name, content) pairs.
        discard: removes the replaced set (a directory beside `out`) once the new one is in place;
            :func:`build_inventory` hands that to a thread.

    Raises:
        InputError: `out` is a file, or a directory holding files that are not an inventory's.
    """
    out = Path(out)
    check_out_dir(out)
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".new", dir=parent))
    items = files.items() if isinstance(files, Mapping) else files
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        names: set[str] = set()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="msib-write") as pool:
            pending = []
            for name, data in items:
                if name not in INVENTORY_FILES or name in names:
                    raise ValueError(f"not an inventory file, or given twice: {name!r}")
                names.add(name)
                if isinstance(data, bytes):
                    pending.append(pool.submit(_write_file, tmp / name, data))
                else:
                    pending.append(_write_pieces(pool, tmp / name, data))
            for done in pending:
                done.result()
        _fsync_dir(tmp)
        if out.exists():
            if _exchange(tmp, out):
                discard(tmp)  # the old set, now at tmp
            else:
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
                os.rmdir(old)
                os.rename(out, old)
                try:
                    os.rename(tmp, out)
                except BaseException:
                    os.rename(old, out)
                    raise
                discard(old)
        else:
            os.rename(tmp, out)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

