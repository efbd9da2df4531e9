"""Pure parts of the SIEM code: the Secret type, CDB text, back-off, and logs free of secrets."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msib.lab.siem.wire import parse_cdb
from msib.secrets import Secret
from msib.siem.base import decode_cdb, encode_cdb
from msib.siem.sync import sb_inventory, sync
from msib.siem.wazuh import RetryPolicy
from siem_helpers import PASSWORD, appliance, obj, start_lab_siem, write_inventory


def test_secret_is_masked_everywhere_but_unmask() -> None:
    s = Secret("hunter2")
    shown = [str(s), repr(s), f"{s}", f"{s!r}", "%s" % s, str([s]), str({"pw": s})]  # noqa: UP031
    assert all("hunter2" not in text for text in shown)
    assert s.unmask() == "hunter2" and s == Secret("hunter2") and s != Secret("other")
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(s)


_ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(lambda ip: ipaddress.ip_address(ip).compressed)
_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-,", min_size=1, max_size=40)


@given(st.dictionaries(_ips, _values, max_size=50))
def test_cdb_text_round_trips_through_client_and_server_parsers(entries: dict[str, str]) -> None:
    text = encode_cdb(entries)
    assert decode_cdb(text) == entries
    assert dict(parse_cdb(text)) == entries  # what the lab SIEM reads is what the driver meant


def test_cdb_quotes_ipv6_keys_only() -> None:
    assert encode_cdb({"10.0.0.1": "a", "2001:db8::1": "b"}) == '10.0.0.1:a\n"2001:db8::1":b\n'


@given(st.integers(min_value=1, max_value=40), st.floats(min_value=0, max_value=1))
def test_backoff_grows_then_stays_within_its_cap(retry: int, r: float) -> None:
    policy = RetryPolicy(attempts=10, base=1.0, cap=30.0)
    ceiling = min(30.0, 2.0 ** (retry - 1))
    assert ceiling / 2 <= policy.delay(retry, lambda: r) <= ceiling


def test_no_password_or_token_in_any_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    siem = start_lab_siem(tmp_path / "s", max_rpm=4, window=1.0)  # back-offs log too
    try:
        inv = sb_inventory(write_inventory(tmp_path / "inv", "lab", [appliance("col-int-1", "198.18.31.10")],
                                             [obj("198.18.16.5", "pc5.lab")], url=siem.url,
                                             ca_file=str(siem.ca_file)))
        caplog.set_level(logging.DEBUG)
        with siem.driver() as d:
            sync(inv, d)
            token = d._token.value.unmask() if d._token else ""
            assert d.backoffs >= 1
        assert token and caplog.records
        assert PASSWORD not in caplog.text and token not in caplog.text
    finally:
        siem.stop()
