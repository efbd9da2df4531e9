"""The views of the model (msib.inventory.views): objects.json is exactly orjson of each record."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from msib.appendix import OBJECT_COLUMNS, Appendix
from msib.inventory import render_objects_json

AS_OF = dt.date(2025, 11, 1)
_TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(['","', '\\\\', '"', '},{"sb":', "\n", "ё"]))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(_TEXT, _TEXT, _TEXT, st.text(min_size=1, max_size=8), st.booleans()), min_size=1,
                max_size=60), st.integers(1, 4))
def test_objects_json_entries_are_orjson_of_each_record(rows: list[tuple[Any, ...]], repeat: int) -> None:
    rows = rows * repeat  # repeated values take the encode-once path, unique ones the split path
    n = len(rows)
    columns: dict[str, list[Any]] = {
        "sb": ["SB"] * n, "department": [r[0] for r in rows], "location": [r[1] for r in rows],
        "responsible": [r[2] for r in rows], "hostname": [f"{r[3]}-{i}" for i, r in enumerate(rows)],
        "ip": [f"10.0.{i // 256}.{i % 256}" for i in range(n)], "os": [r[0] for r in rows],
        "os_raw": [r[1] for r in rows], "os_family": ["other"] * n, "os_eol": [r[4] or None for r in rows],
        "os_eol_date": [None] * n, "circuit": ["internal"] * n, "file": ["a.xlsx"] * n,
        "sheet": [r[2] for r in rows], "row": list(range(7, 7 + n)),
    }
    assert tuple(columns) == OBJECT_COLUMNS
    appendix = Appendix(as_of=AS_OF, inputs=(), sheets=(), columns=columns, rejected=(), skipped=())
    want = b"[\n" + b",\n".join(orjson.dumps(o.to_json()) for o in appendix.objects) + b"\n]\n"
    assert render_objects_json(appendix) == want
