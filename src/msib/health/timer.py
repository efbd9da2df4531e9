"""``msib health install-timer``: the systemd timer that runs health every few minutes, and the exporter."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from msib.errors import InputError
from msib.systemd import install_units

UNITS = ("msib-health.service", "msib-health.timer", "msib-health-exporter.service")


def install_timer(*, inventory: Path | None, fleet: Path | None, config: Path | None = None,
                  unit_dir: Path = Path("/etc/systemd/system"), env_file: Path = Path("/etc/msib/health.env"),
                  listen: str = "127.0.0.1", port: int = 9309, msib: str | None = None,
                  enable: bool = True) -> dict[str, str]:
    """Install msib-health.service + .timer (every 5 minutes) and msib-health-exporter.service.

    Args:
        inventory: the inventory health runs over (or `fleet`).
        fleet: the fleet directory health runs over (or `inventory`).
        config: health settings (YAML) for ``--config``.
        unit_dir: where the units go.
        env_file: the environment file the services read.
        listen: the exporter's address (loopback by default).
        port: the exporter's port.
        msib: the msib executable (default: the one running now).
        enable: ``systemctl daemon-reload`` and ``enable --now`` the timer and the exporter.

    Returns:
        "env" and each unit's name -> the path written.

    Raises:
        InputError: neither or both of inventory and fleet, or a path that would break the unit.
    """
    if (inventory is None) == (fleet is None):
        raise InputError("install-timer", "give --inventory or --fleet")
    source = ["--inventory", str(Path(inventory).resolve())] if inventory else ["--fleet", str(Path(fleet).resolve())]  # type: ignore[arg-type]
    args = [*source, *(["--config", str(config.resolve())] if config else [])]
    if any(re.search(r"[\s\"'$\\%;]", w) for w in args):
        raise InputError("install-timer", "paths must not contain spaces, quotes, $, %, ; or \\")
    exe = msib or str(Path(sys.executable).with_name("msib"))
    env = (f"# written by msib health install-timer\nMSIB_HEALTH_ARGS={' '.join(args)}\n"
           f"MSIB_HEALTH_SOURCE={' '.join(source)}\nMSIB_HEALTH_LISTEN={listen}\nMSIB_HEALTH_PORT={port}\n")
    return install_units(UNITS, replace={"MSIB": exe, "ENV": str(env_file)}, env_file=env_file, env_text=env,
                         unit_dir=unit_dir,
                         enable=["msib-health.timer", "msib-health-exporter.service"] if enable else [])
