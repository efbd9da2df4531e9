"""The one exception tree of msib.

A user's own mistake (bad appendix, broken site plan, wrong argument) is an :class:`InputError`
and reaches the user as one clear line, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class MsibError(Exception):
    """Root of every error msib raises on purpose; the CLI maps it to a message and exit code."""

    exit_code: int = 1


@dataclass
class InputError(MsibError, ValueError):
    """Unusable input: names the file and the place in it, and says what to do.

    Args:
        file: the file (or argument) at fault.
        message: what is wrong.
        where: sheet/row/column or key path inside the file, if known.
        fix: what the user should do about it.
    """

    file: str
    message: str
    where: str | None = None
    fix: str | None = None
    exit_code: int = 2

    def __str__(self) -> str:
        place = f"{self.file}: {self.where}" if self.where else self.file
        text = f"{place}: {self.message}"
        if self.fix:
            text += f" ({self.fix})"
        return text


class Locked(MsibError):
    """Another run holds the lock of this job: this run did nothing (75, EX_TEMPFAIL: try again later)."""

    exit_code = 75


class LabError(MsibError):
    """The local lab could not be brought up, reached or torn down."""


class DeployError(MsibError):
    """An engine run failed on one or more hosts."""


class SiemError(MsibError):
    """The SIEM refused, failed or could not be reached."""


class DeviceError(MsibError):
    """A network device refused a command or could not be reached."""


class CheckError(MsibError):
    """A compliance check could not be run (not: a check that failed)."""

    exit_code = 2
