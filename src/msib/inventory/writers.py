"""Writing an inventory directory whole: its files flushed in a directory beside it, swapped in with one rename."""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from queue import Queue
from stat import S_ISDIR as stat_is_dir
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


#: Inventories hold the names of people (`responsible`), their offices and hosts: readable by the
#: owner only, whatever the umask.
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700


# --- temporary directories: named after the build that owns them ----------------------------------


def _start_time(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None when it is gone.

    A PID can be reused by a later process: the start time tells the two apart.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return ""  # /proc not readable: known alive or not by os.kill only
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


def _owner_tag() -> str:
    """`msib-<pid>-<start time>`: what the temporary directories of this process are named with."""
    pid = os.getpid()
    return f"msib-{pid}-{_start_time(pid) or 0}"


_TEMP_RE: Final = re.compile(r"\.(?P<out>.+)\.msib-(?P<pid>[0-9]+)-(?P<start>[0-9]+)\.[A-Za-z0-9_]+\.(?:new|old)")


def _owner_alive(pid: int, start: str) -> bool:
    """Whether the build that named a temporary directory may still run: its PID is taken by a
    process started at the time the name says (when /proc cannot tell, it is taken as running)."""
    now = _start_time(pid)
    if now is None:
        return False
    return not (now and start != "0") or now == start


def remove_stale_temp_dirs(out: Path) -> list[Path]:
    """Remove the temporary directories an earlier build of `out` left when it was killed (SIGKILL,
    power loss): a new set half written, or a replaced set not yet removed.

    Only what this code names (`.<out>.msib-<pid>-<start>.<random>.new|.old`), beside `out`, owned by
    this user, a directory (not a link), and only when the process named in it is gone (its PID is
    free, or taken by a process started at another time). Returns what was removed.
    """
    parent = out.absolute().parent
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.fullmatch(entry.name)
        if m is None or m["out"] != out.name:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat_is_dir(st.st_mode) or st.st_uid != os.getuid() or _owner_alive(int(m["pid"]), m["start"]):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _write_file(path: Path, data: bytes | Iterable[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        if isinstance(data, bytes):
            f.write(data)
        else:
            for chunk in data:
                f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


_PIECES_AHEAD: Final = 8


def _write_pieces(pool: ThreadPoolExecutor, path: Path, pieces: Iterable[bytes]) -> Future[None]:
    """Write a file given in pieces: they are produced here and written by a thread of `pool` as
    they come (the thread holds the GIL only between two writes), then flushed to disk there. At most
    :data:`_PIECES_AHEAD` pieces wait: the producer never holds the whole file (objects.json of
    200,000 rows is over 100 MB)."""
    queue: Queue[bytes | None] = Queue(maxsize=_PIECES_AHEAD)
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
    remove_stale_temp_dirs(out)
    tag = _owner_tag()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{tag}.", suffix=".new", dir=parent))  # mode 0700
    items = files.items() if isinstance(files, Mapping) else files
    try:
        os.chmod(tmp, DIR_MODE)
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
                old = Path(tempfile.mkdtemp(prefix=f".{out.name}.{tag}.", suffix=".old", dir=parent))
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

