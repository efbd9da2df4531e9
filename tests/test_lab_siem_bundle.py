"""The lab SIEM's API runs on the SIEM host from the files msib ships it, with a bare system python.

The SIEM host has Debian's python3 and nothing else (no PyYAML, no ansible): every module in the
bundle must import with only the standard library. A product module that gained a top-level
third-party import broke `msib lab up` once (secrets.py importing yaml).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from msib.lab.siem import host

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason="no system python3")
def test_the_bundled_api_imports_with_the_standard_library_only(tmp_path: Path) -> None:
    pkg = Path(host.__file__).resolve().parents[2]
    for rel in host.API_SOURCES:
        (tmp_path / "msib" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pkg / rel, tmp_path / "msib" / rel)
    (tmp_path / "msib" / "lab" / "siem").mkdir(parents=True, exist_ok=True)
    for src in (pkg / "lab" / "siem").glob("*.py"):
        shutil.copy(src, tmp_path / "msib" / "lab" / "siem" / src.name)
    # -S: no site-packages, as on the SIEM host; -I: no user site, no PYTHONPATH from this run
    proc = subprocess.run([SYSTEM_PYTHON, "-S", "-I", "-c",
                           "import sys; sys.path.insert(0, '.'); import msib.lab.siem.api, msib.lab.siem.users"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
