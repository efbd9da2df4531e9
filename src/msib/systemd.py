"""Installing msib's systemd units from ``contrib/systemd`` on a control node (the update and health timers)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from msib.errors import MsibError
from msib.fsutil import atomic_write


class UnitError(MsibError):
    """systemctl refused (the units are written, not enabled)."""


def contrib_dir() -> Path:
    """The systemd unit templates shipped in the repository (``contrib/systemd``)."""
    return Path(__file__).resolve().parents[2] / "contrib" / "systemd"


def install_units(names: Sequence[str], *, replace: Mapping[str, str], env_file: Path, env_text: str,
                  unit_dir: Path, enable: Sequence[str] = ()) -> dict[str, str]:
    """Write the environment file and the units `names` (``@KEY@`` replaced), then ``enable --now`` the units `enable`.

    Returns:
        unit name (and "env") -> the path written.

    Raises:
        UnitError: ``systemctl daemon-reload`` or ``enable --now`` failed.
    """
    env_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(env_file, env_text, mode=0o644)
    written: dict[str, str] = {"env": str(env_file)}
    unit_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        text = (contrib_dir() / name).read_text()
        for key, value in replace.items():
            text = text.replace(f"@{key}@", value)
        atomic_write(unit_dir / name, text, mode=0o644)
        written[name] = str(unit_dir / name)
    if enable:
        for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", *enable]):
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise UnitError(f"{' '.join(argv)} failed: {proc.stderr.strip()} (units are written; "
                                "run it by hand where systemd is PID 1)")
    return written
