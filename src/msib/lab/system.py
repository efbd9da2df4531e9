"""What the lab does to the machine: commands run, sysctls set, PIDs read, cgroups found."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Protocol

from msib import releases
from msib.errors import LabError
from msib.lab.mirror import machine_mirrors


class Reporter(Protocol):
    """Anything with a rich-like `print` (a rich Console), for progress lines."""

    def print(self, *objects: Any, **kwargs: Any) -> None: ...


class Quiet:
    """A reporter that says nothing."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        return None


def run(argv: list[str], *, check: bool = True, input: str | None = None,
         timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed: run ./scripts/setup") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from None
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv[:6])} failed ({proc.returncode}): {err[-1] if err else ''}")
    return proc


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "-netns", netns, *args] if netns else ["ip", *args]
    return run(argv, check=check)


def sysctl(key: str, value: str, netns: str | None = None) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    if netns:
        run(["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > {path}"])
    else:
        Path(path).write_text(value + "\n")


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (killed, not yet reaped: PID 1 here may never reap) is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def debian_mirrors() -> dict[str, str]:
    """The machine's Debian mirrors (main archive and security): one mirror serves every release's suites."""
    return machine_mirrors(releases.codenames())


def cgroup_roots() -> list[Path]:
    """The cgroup hierarchies a lab host must be placed in (hybrid: name=systemd and unified)."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.procs").exists():  # pure cgroup v2
        return [base]
    return [p for p in (base / "systemd", base / "unified") if (p / "cgroup.procs").exists()]
