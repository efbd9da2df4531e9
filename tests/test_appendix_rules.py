"""Every case of the appendix spec, in every input form: row in -> object or reason code out.

The cases are data (tests/data/appendix_cases.yml); each runs in each form of
tests/data/appendix_forms.py (xlsx with sections, xlsx with a sheet per circuit, cp1251 CSV,
UTF-8 CSV with and without BOM) through the real readers and checks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from data.appendix_forms import FORMS, SITE_YAML, Form, Row, write_form
from msib.appendix import REASONS, AppendixObject, Rejection, check_rows, read_appendix
from msib.site import parse_site

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "appendix_cases.yml").read_text(encoding="utf-8")
)
PLAN = parse_site(yaml.safe_load(SITE_YAML), "site.yml")
AS_OF = dt.date(2025, 11, 1)
COLUMN_OF = {"host": "F", "ip": "G", "sb": "B"}


def _row(spec: dict[str, Any]) -> Row:
    return Row(**{"circuit": "internal", **spec})


def _run(form: Form, rows: list[Row], tmp: Path) -> tuple[dict[tuple[str | None, int], Any], list[Any]]:
    path, places = write_form(form, tmp, rows)
    appendix = check_rows([read_appendix(path)], PLAN, as_of=AS_OF)
    outcome: dict[tuple[str | None, int], Any] = {}
    for obj in appendix.objects:
        outcome[obj.source.sheet, obj.source.row] = obj
    for rej in appendix.rejected:
        assert (rej.sheet, rej.row) not in outcome, f"row {rej.row} both accepted and rejected"
        outcome[rej.sheet, rej.row] = rej
    return outcome, [(p.sheet, p.row) for p in places]


def test_every_reason_code_has_a_case() -> None:
    covered = {e["reason"] for c in CASES for e in c["expect"] if "reason" in e}
    assert covered == set(REASONS)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any], form: Form, tmp_path: Path) -> None:
    rows = [_row(r) for r in case["rows"]]
    outcome, places = _run(form, rows, tmp_path)
    assert len(outcome) == len(rows), "every data row is an object or a rejection, and nothing else"
    for k, want in enumerate(case["expect"]):
        got = outcome[places[k]]
        if "reason" in want:
            assert isinstance(got, Rejection), f"row {k}: expected {want['reason']}, got object {got}"
            assert got.reason == want["reason"], got.message
            if "column" in want:
                assert got.column == COLUMN_OF[want["column"]]
            if "duplicate_of" in want:
                assert got.duplicate_of is not None
                assert (got.duplicate_of.sheet, got.duplicate_of.row) == places[want["duplicate_of"]]
                sheet, row = places[want["duplicate_of"]]
                assert f"{'line' if sheet is None else 'row'} {row} " in got.message
            if want["reason"] == "excluded":
                assert got.to_json().keys() == {"file", "sheet", "row", "column", "reason", "message"}
            else:
                assert "value" in got.to_json()
        else:
            assert isinstance(got, AppendixObject), f"row {k}: expected an object, got {got}"
            record = got.to_json()
            for key, value in want.items():
                assert record[key] == value, key


# --- the exclusion matcher agrees with the site plan's own ------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.from_regex(r"[a-zA-Z0-9.*?\[\]-]{1,12}", fullmatch=True),
       st.from_regex(r"[a-zA-Z0-9.-]{0,16}", fullmatch=True))
def test_hostname_exclusion_is_the_site_plans(pattern: str, host: str) -> None:
    from msib.appendix import InputFile, ReadResult, Table

    data = yaml.safe_load(SITE_YAML)
    data["excluded"] = [{"hostname": pattern, "reason": "classified_system"}]
    plan = parse_site(data, "site.yml")
    table = Table("a.csv", None, 1, {"hostname": "F", "ip": "G"}, [2], ["internal"],
                  {"sb": [""], "department": [""], "location": [""], "responsible": [""], "hostname": [host],
                   "ip": ["10.20.1.1"], "os": [""]})
    read = ReadResult(InputFile("a.csv", "csv", ""), (table,), (), ())
    appendix = check_rows([read], plan, as_of=AS_OF)
    excluded = [r for r in appendix.rejected if r.reason == "excluded"]
    folded = host.strip().lower().rstrip(".")
    assert bool(excluded) == (bool(folded) and plan.exclusion_for(folded, None) is not None)
