"""Value normalisation (msib.appendix.values): IP addresses, network names, the OS table."""

from __future__ import annotations

import datetime as dt

import pytest

from msib.appendix import classify_os, normalize_hostname, normalize_ip, os_table

AS_OF = dt.date(2025, 11, 1)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("10.20.1.5", "10.20.1.5"), (" 010.020.001.005 ", "10.20.1.5"), ("10,20,1,77", "10.20.1.77"),
     ("10 . 20 . 1 . 7", "10.20.1.7"), ("2001:DB8::0001", "2001:db8::1"), ("::ffff:10.20.1.9", "10.20.1.9")],
)
def test_ip_normalised(text: str, canonical: str) -> None:
    assert normalize_ip(text).text == canonical


@pytest.mark.parametrize(
    "text", ["10.20.1.256", "10.20.1", "10.20.1.1.1", "0.1.2.3", "127.0.0.1", "224.0.0.5", "10.2 0.1.5",
             "10.20.1.5/24", "١٠.٢٠.١.٥", "::1", "dhcp", ""],
)
def test_ip_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        normalize_ip(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("ARM-0003.MCRI.LOCAL", "arm-0003.mcri.local"), (" srv_db-1 ", "srv_db-1"), ("host.", "host"),
     ("a", "a"), ("x\u200b1", "x1")],
)
def test_hostname_normalised(text: str, canonical: str) -> None:
    assert normalize_hostname(text) == canonical


@pytest.mark.parametrize(
    ("text", "why"),
    [("АРМ-1", "Cyrillic"), ("arm 1", "spaces"), ("_arm", "starts or ends"), ("arm-", "starts or ends"),
     ("a..b", "empty part"), ("\u212aelvin", "characters other than"), ("10.20.1.5", "an IP address"),
     ("a" * 64, "longer than 63")],
)
def test_hostname_rejected_with_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalize_hostname(text)


def _os_examples() -> list[tuple[str, str]]:
    return [(example, entry.name) for entry in os_table().systems for example in entry.examples]


@pytest.mark.parametrize(("spelling", "name"), _os_examples())
def test_os_table_examples_classify_as_their_entry(spelling: str, name: str) -> None:
    assert classify_os(spelling, AS_OF).name == name


@pytest.mark.parametrize(
    ("spelling", "as_of", "family", "eol"),
    [
        ("Win 10 Корп.", dt.date(2025, 10, 14), "windows", False),
        ("Win 10 Корп.", dt.date(2025, 10, 15), "windows", True),
        ("Windows 7 Профессиональная", dt.date(2019, 1, 1), "windows", False),
        ("Windows 11 Pro", dt.date(2030, 1, 1), "windows", False),
        ("Astra Linux SE 1.7", dt.date(2030, 1, 1), "linux", None),
        ("Gentoo", dt.date(2030, 1, 1), "linux", None),
        ("MikroTik RouterOS 7", dt.date(2030, 1, 1), "network", None),
        ("macOS 14", dt.date(2030, 1, 1), "other", None),
        ("", dt.date(2030, 1, 1), "other", None),
    ],
)
def test_os_family_and_end_of_life_on_a_date(spelling: str, as_of: dt.date, family: str, eol: bool | None) -> None:
    info = classify_os(spelling, as_of)
    assert (info.family, info.eol) == (family, eol)


# --- linear time whatever a cell holds (#14: a run of spaces made normalize_ip quadratic) -------------


def test_pathological_cells_are_read_in_linear_time() -> None:
    import sys
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    from bench_cells import CELLS

    for what, make, read in CELLS:
        t0 = time.perf_counter()
        read(make(20_000))  # quadratic patterns took seconds here (57.7 s at 100,000 characters)
        assert time.perf_counter() - t0 < 0.25, what
