"""Each role says what its variables are once: defaults/main.yml, meta/argument_specs.yml and the README agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "defaults" / "main.yml").is_file())
_ROW = re.compile(r"^\| `(\w+)` \| (\w+) \| `([^`]*)` \| (.*) \|$", re.M)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_argument_specs_and_readme_agree(role: str) -> None:
    base = REPO / "roles" / role
    defaults = yaml.safe_load((base / "defaults" / "main.yml").read_text(encoding="utf-8"))
    spec = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    options = spec["argument_specs"]["main"]["options"]
    rows = {m.group(1): m.groups()[1:] for m in _ROW.finditer((base / "README.md").read_text(encoding="utf-8"))}
    assert set(defaults) == set(options) == set(rows)
    for name, option in options.items():
        assert option.get("default") == defaults[name], name
        kind, _default, meaning = rows[name]
        allowed = f" Allowed: {', '.join(map(str, option['choices']))}." if "choices" in option else ""
        assert (kind, meaning) == (option["type"], option["description"] + allowed), name


@pytest.mark.parametrize("role", ROLES)
def test_defaults_say_what_each_value_is_and_point_nowhere_outside_the_repository(role: str) -> None:
    text = (REPO / "roles" / role / "defaults" / "main.yml").read_text(encoding="utf-8")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+:", line):
            assert lines[i - 1].startswith("#"), f"{line}: no comment says what it is"
    assert not re.search(r"(?<![\w.])/(work|home|root|tmp)/", text), "a path from a developer's machine"
    for doc in re.findall(r"docs/[\w-]+\.md", text):
        assert (REPO / doc).is_file(), doc
