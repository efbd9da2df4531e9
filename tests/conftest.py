"""Fixtures shared by every suite.

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
