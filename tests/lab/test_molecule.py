"""Each role's molecule scenario passes on its lab hosts, one on each Debian release (the internal
circuit's on 12, the external's on 13): create (fresh hosts), converge, idempotence, verify.

Scenarios leave their host freshly reset (destroy = `msib lab reset`), so suites that need a
converged lab deploy it themselves (their `converged` fixtures are idempotent).
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from msib.lab import Lab

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


#: each scenario's platforms: the role's host on the internal circuit (Debian 12) and the external (13)
PLATFORMS = {"collector": ("col-int-1", "col-ext-1"), "ids_sensor": ("ids-int-1", "ids-ext-1"),
             "firewall": ("fw-int-1", "fw-ext-1")}


@pytest.mark.parametrize("scenario", ["collector", "ids_sensor", "firewall"])
def test_molecule_scenario_passes(lab: Lab, scenario: str) -> None:
    assert {lab.host(h).release for h in PLATFORMS[scenario]} == {"bookworm", "trixie"}
    junit = REPO / "reports" / "molecule" / f"{scenario}.xml"
    junit.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1",
           "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0"}
    proc = subprocess.run(["molecule", "test", "-s", scenario], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200)
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    # idempotence ran and found nothing to change
    assert "idempotence" in proc.stdout + proc.stderr
    # verify ran the testinfra checks against the host and wrote JUnit into the project
    suite = ET.parse(junit).getroot()
    cases = suite.iter("testcase")
    results = [(c.get("name"), [f.tag for f in c]) for c in cases]
    assert results, "verify ran no test"
    assert all(not tags for _name, tags in results), results
    for host in PLATFORMS[scenario]:  # verify ran on both releases, the release test included
        assert any(f"ssh://{host}" in (name or "") and "runs_the_release" in (name or "") for name, _ in results), \
            (host, [n for n, _ in results])
