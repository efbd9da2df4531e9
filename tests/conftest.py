"""Fixtures shared by every suite, and which suites a run collects.

Plain `pytest` (or `pytest tests`) runs the unit suite only: tests/lab/ is collected when it is
named on the command line (`pytest tests/lab/...`) or when MSIB_LAB_SUITES=1, which
./scripts/test sets to run everything (as root).

The lab is expensive to boot and cheap to share: the first test that needs it brings it up (or
finds it already up) and the session tears it down at the end — unless it was up before the
session started, in which case it is left as it was (a developer's running lab).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAB_SITE = REPO / "inventories" / "lab" / "site.yml"
LAB_SUITES = REPO / "tests" / "lab"


def _lab_suites_asked(config: pytest.Config) -> bool:
    """MSIB_LAB_SUITES=1, or tests/lab (or something in it) named on the command line."""
    if os.environ.get("MSIB_LAB_SUITES") == "1":
        return True
    if config.args_source != pytest.Config.ArgsSource.ARGS:  # testpaths or the current directory
        return False
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::", 1)[0]).resolve()
        if path == LAB_SUITES or LAB_SUITES in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the lab suites out of a run that did not ask for them (they need root and the lab)."""
    if collection_path == LAB_SUITES and not _lab_suites_asked(config):
        return True
    return None


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the lab suites need root (network namespaces, mounts, systemd-nspawn): run as root")


@pytest.fixture(scope="session")
def lab() -> Iterator[object]:
    """The shared local lab, up for the whole session."""
    _require_root()
    from msib.lab import Lab

    the_lab = Lab.from_files(LAB_SITE)
    was_up = the_lab.is_up()
    if not was_up:
        the_lab.up()
    yield the_lab
    if not was_up and os.environ.get("MSIB_KEEP_LAB") != "1":
        the_lab.down()
