"""Building one SB's inventory directory: read the site plan and the appendices, check the rows, write the views."""

from __future__ import annotations

import datetime as dt
import gc
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from msib.appendix import Appendix, OsFamily, ReadResult, Reason, Rejection, check_rows, os_table, read_appendix
from msib.appendix.bounds import DEFAULT_LIMITS, ReadLimits
from msib.errors import InputError, MsibError
from msib.inventory.model import _RESERVED_GROUPS, INVENTORY_FILES, SshSettings
from msib.inventory.views import _counts, iter_inventory_files
from msib.inventory.writers import check_out_dir, write_atomically
from msib.site import CircuitName, SitePlan, load_site


@dataclass(frozen=True)
class BuildResult:
    """What one build wrote: counts for people, the lab and schedulers."""

    out_dir: Path
    as_of: dt.date
    data_rows: int
    objects: int
    rejected: int
    excluded: int
    appliances: int
    os_eol: int
    by_reason: Mapping[Reason, int]
    by_circuit: Mapping[CircuitName, int]
    by_os_family: Mapping[OsFamily, int]
    files: tuple[str, ...] = field(default=INVENTORY_FILES)
    #: header cells read as no field: `file [sheet] D 'header'`
    unmapped_columns: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line for the terminal."""
        circ = ", ".join(f"{c} {n}" for c, n in self.by_circuit.items())
        reasons = ", ".join(f"{r} {n}" for r, n in self.by_reason.items() if n and r != "excluded")
        text = f"{self.objects} objects ({circ or 'none'}), {self.appliances} appliances"
        text += f"; {self.rejected - self.excluded} rows rejected" + (f" ({reasons})" if reasons else "")
        if self.excluded:
            text += f", {self.excluded} excluded"
        if self.os_eol:
            text += f"; {self.os_eol} objects past OS end of life"
        if self.unmapped_columns:
            shown = ", ".join(self.unmapped_columns[:5]) + (", …" if len(self.unmapped_columns) > 5 else "")
            text += f"; columns not understood: {shown}"
        return text


class RowsRejected(MsibError):
    """`--strict` and at least one row was rejected: nothing was written (exit status 1)."""

    exit_code = 1

    def __init__(self, rejected: Sequence[Rejection]) -> None:
        self.rejected = tuple(rejected)
        super().__init__(f"{len(self.rejected)} rows rejected and --strict given: nothing written")


# --- the build --------------------------------------------------------------------------------------


def _check_plan_for_build(plan: SitePlan, appendix: Appendix, site: str) -> None:
    if plan.code in _RESERVED_GROUPS:
        raise InputError(site, f"code {plan.code!r} is also the name of an inventory group", where="code",
                         fix="choose another code")
    by_circuit: Counter[CircuitName] = Counter()
    for (circ, *_), n in appendix.stats.items():
        by_circuit[circ] += n
    for cname, n in by_circuit.items():
        circuit = plan.circuits.get(cname)
        if circuit is not None and n and not circuit.by_role("collector"):
            raise InputError(
                site,
                f"the {cname} circuit has {n} objects in the appendix but no collector to send their logs to",
                where=f"circuits.{cname}.appliances",
                fix="add an appliance with role collector to the circuit",
            )


def _check_ssh(ssh: SshSettings) -> None:
    for flag, path in (("--ssh-config", ssh.ssh_config), ("--ssh-key", ssh.identity_file)):
        if path is not None and not Path(path).expanduser().is_file():
            raise InputError(str(path), "no such file", where=flag, fix="check the path")
    if ssh.user is not None:
        import re

        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", ssh.user):
            raise InputError("--ssh-user", f"{ssh.user!r} is not a valid user name", fix="use a POSIX user name")


def build_inventory(
    site_path: str | Path,
    appendix_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    as_of: dt.date | None = None,
    strict: bool = False,
    ssh: SshSettings | None = None,
    limits: ReadLimits | None = None,
) -> BuildResult:
    """Build one SB's inventory directory from its site plan and appendix files.

    Args:
        site_path: the site plan (`site.yml`).
        appendix_paths: `.xlsx`/`.csv` appendix files, any mix; may be empty (appliances only).
        out_dir: the inventory directory, replaced as a whole (created if missing).
        as_of: the day that decides what is past end of life (default: today).
        strict: refuse to write anything when a row is rejected.
        ssh: connection settings for the engines (host keys are always checked strictly).
        limits: how much an appendix file may hold (size, rows, columns, cell length; default
            :data:`~msib.appendix.bounds.DEFAULT_LIMITS`): over one, the build refuses it (exit 2)
            before spending the memory.

    Returns:
        The counts of what was written.

    Raises:
        InputError: an unusable input or output path (exit status 2); nothing is written.
        RowsRejected: `strict` and some row was rejected (exit status 1); nothing is written.

    Example:
        >>> build_inventory("site.yml", ["appendix.xlsx"], "inv").objects    # doctest: +SKIP
        40
    """
    if as_of is not None and not isinstance(as_of, dt.date):
        raise InputError("--as-of", f"{as_of!r} is not a date", fix="give the date as YYYY-MM-DD")
    out = Path(out_dir)
    ssh = ssh or SshSettings()
    paths = [Path(p) for p in appendix_paths]
    check_out_dir(out)
    _check_ssh(ssh)
    site = Path(site_path)
    with _gc_paused(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="msib-discard") as discarding:
        plan, reads = _read_inputs(site, paths, limits or DEFAULT_LIMITS)
        appendix = check_rows(reads, plan, as_of=as_of or dt.date.today())
        _check_plan_for_build(plan, appendix, str(site))
        if strict and appendix.rejected:
            raise RowsRejected(appendix.rejected)
        counts = _counts(plan, appendix)
        day = appendix.as_of
        unmapped = tuple(
            f"{s.file}{'' if s.sheet is None else f' [{s.sheet}]'} {letter} {header!r}"
            for s in appendix.sheets for letter, header in s.unmapped
        )
        old_set: list[Future[None]] = []
        files = iter_inventory_files(plan, appendix, ssh=ssh, site_dir=site.absolute().parent)
        # the rows as read are freed once objects.json is rendered, while it is flushed to disk (and
        # before the reports are rendered: the peak of a 200,000-row build stays lower)
        write_atomically(out, _after_first(files, lambda: _free(reads)),
                         discard=lambda path: old_set.append(discarding.submit(_remove_old_set, path)))
        del files, appendix  # freed while the replaced set is removed (unlink runs without the GIL)
        for removed in old_set:
            removed.result()
    return BuildResult(
        out_dir=out,
        as_of=day,
        data_rows=counts["data_rows"],
        objects=counts["objects"],
        rejected=counts["rejected"],
        excluded=counts["excluded"],
        appliances=counts["appliances"],
        os_eol=counts["os_eol"],
        by_reason=dict(counts["by_reason"]),
        by_circuit=dict(counts["by_circuit"]),
        by_os_family=dict(counts["by_os_family"]),
        unmapped_columns=unmapped,
    )


def _after_first[T](items: Iterable[T], finish: Callable[[], object]) -> Iterator[T]:
    """The items; `finish()` once the first one is done with (when the second is asked for)."""
    it = iter(items)
    for first in it:
        yield first
        break
    finish()
    yield from it


def _free(reads: list[ReadResult]) -> None:
    """Drop the rows as read, and give the memory back to the system."""
    reads.clear()
    from msib.appendix.read import _release_freed_memory

    _release_freed_memory()


def _remove_old_set(path: Path) -> None:
    """Remove a replaced inventory directory, objects.json first: the file whose unlink takes long
    (freeing tens of megabytes), which then runs while the caller goes on."""
    with suppress(FileNotFoundError, IsADirectoryError):
        os.unlink(path / "objects.json")
    shutil.rmtree(path)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while tens of thousands of rows are built (nothing cyclic is)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_inputs(site: Path, paths: Sequence[Path], limits: ReadLimits) -> tuple[SitePlan, list[ReadResult]]:
    """The site plan and every appendix: files are parsed in threads (calamine releases the GIL)
    while the plan is validated. Errors are raised in a fixed order: the plan, then the files as given."""
    if not paths:
        return load_site(site), []
    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1, 4),
                            thread_name_prefix="msib-read") as pool:
        futures = [pool.submit(read_appendix, p, limits=limits) for p in paths]
        try:
            plan = load_site(site)
            os_table()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return plan, [f.result() for f in futures]

