"""The test tree itself: every test file's basename is unique across tests/ and tests/lab/.

pytest imports test files without packages by basename: two files of the same name (one a unit
test, one a lab test) make the whole-suite run (`./scripts/test`) fail at collection.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_test_file_basenames_are_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts)
    assert [n for n, c in names.items() if c > 1] == []
