"""The lab as a fleet: one SB per running lab (the shared lab, and a second small SB beside it).

``inventories/lab-fleet/`` holds the fleet's ``fleet.yml`` and each SB's appendices by quarter
(``appendix/<code>/2026Q4.csv``: only the lab's real object hosts, so that health can hear every
object it expects). :func:`write_lab_fleet` makes a fleet directory of them: per lab, its site
plan as the engines see it (with the lab CA), links to its known_hosts and ssh_config (they change
when a host is reset), and the role variables of its PKI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import yaml

from msib.errors import LabError
from msib.lab.core import Lab
from msib.lab.siem.host import lab_role_vars

TEMPLATE = Path(__file__).resolve().parents[3] / "inventories" / "lab-fleet"
SECOND_SITE = Path(__file__).resolve().parents[3] / "inventories" / "lab-akm" / "site.yml"


def second_lab(state_dir: Path | None = None) -> Lab:
    """The lab's second SB (``inventories/lab-akm``: one circuit), its state in ``/var/lib/msib-lab-akm``."""
    return Lab.from_files(SECOND_SITE, state_dir=state_dir or Path("/var/lib/msib-lab-akm"))


def write_lab_fleet(root: Path, labs: Sequence[Lab], template: Path = TEMPLATE) -> Path:
    """Write (or refresh) a fleet directory whose SBs are the running `labs`; returns its fleet.yml.

    Raises:
        LabError: a lab is not up, or the template has no appendix for one of them.
    """
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(template / "fleet.yml", root / "fleet.yml")
    for lab in labs:
        if not lab.is_up():
            raise LabError(f"lab {lab.spec.name} is not up: msib lab up --site {lab.site_path}")
        code = lab.plan.code
        src = template / "appendix" / code
        if not src.is_dir():
            raise LabError(f"no appendices for SB {code} in {src}")
        sb = root / "sbs" / code
        (sb / "appendix").mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            shutil.copyfile(f, sb / "appendix" / f.name)
        shutil.copyfile(lab.effective_site(), sb / "site.yml")
        for name, target in (("known_hosts", lab.known_hosts), ("ssh_config", lab.ssh_config)):
            link = sb / name
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(target, link)
        (sb / "vars.yml").write_text("# the lab's PKI (written by msib lab fleet)\n"
                                     + yaml.safe_dump(dict(lab_role_vars(lab)), sort_keys=True))
    return root / "fleet.yml"
