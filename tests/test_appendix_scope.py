"""Out of scope means in no output file: the exclusion closure, and excluded names withheld in other text.

The rules (`outputs.md`): a row sharing a hostname or an IP with an excluded row is excluded, and so
on to a fixpoint; an excluded hostname or IP typed inside another cell — a rejected cell echoed in
the report, the location, OS or department of an accepted object — is replaced by a marker
(`[withheld]`). Checked on hand-made cases and on generated appendices with arbitrary links, each
time by grepping every output file for every excluded value.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.appendix_forms import SITE_YAML, Row, write_form
from msib.inventory import INVENTORY_FILES, build_inventory

AS_OF = dt.date(2025, 11, 1)
WITHHELD = "[withheld]"  # the marker (msib.appendix.scope.WITHHELD, documented in docs/inventory.md)
EXCLUDED_NET = ipaddress.ip_network("10.20.99.0/24")  # SITE_YAML's excluded network; and hostnames kgs-*


def _outputs(directory: Path) -> dict[str, str]:
    return {name: (directory / name).read_text(encoding="utf-8").lower() for name in INVENTORY_FILES}


def _host_re(name: str) -> re.Pattern[str]:
    """`name` as a whole name: not inside a longer name, not the first label of another FQDN."""
    return re.compile(rf"(?<![\w.-]){re.escape(name.lower())}(?![\w-]|\.\w)")


def _ip_re(ip: str) -> re.Pattern[str]:
    """`ip` as a whole address: not inside 10.20.99.140 or 110.20.99.14."""
    return re.compile(rf"(?<![\d.]){re.escape(ip)}(?!\d|\.\d)")


def _assert_nowhere(directory: Path, hosts: set[str], ips: set[str]) -> None:
    for name, text in _outputs(directory).items():
        for host in hosts:
            assert not _host_re(host).search(text), (name, host)
        for ip in ips:
            assert not _ip_re(ip).search(text), (name, ip)


@pytest.fixture()
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.yml"
    path.write_text(SITE_YAML, encoding="utf-8")
    return path


# --- the closure --------------------------------------------------------------------------------------


def test_a_transitive_link_excludes_the_whole_chain(site: Path, tmp_path: Path) -> None:
    rows = [
        Row(host="vault-01", ip="10.20.99.14"),  # excluded by network
        Row(host="vault-01", ip="10.20.7.1"),  # A: shares the hostname
        Row(host="arm-0701", ip="10.20.7.1"),  # B: shares A's IP (leaked into senders before)
        Row(host="ARM-0701.MCRI.LOCAL", ip="10.20.7.2"),  # the same host as B
        Row(host="arm-0702", ip="010.020.007.002"),  # shares that one's IP
        Row(host="arm-0703", ip="10.20.7.3"),  # unrelated: kept
    ]
    path, _ = write_form("xlsx_sections", tmp_path, rows)
    result = build_inventory(site, [path], tmp_path / "inv", as_of=AS_OF)
    assert (result.objects, result.excluded) == (1, 5)
    hosts = yaml.safe_load((tmp_path / "inv" / "hosts.yml").read_text())
    assert hosts["all"]["vars"]["msib_circuits"]["internal"]["senders"] == ["10.20.7.3"]
    _assert_nowhere(tmp_path / "inv", {"vault-01", "arm-0701", "arm-0701.mcri.local", "arm-0702"},
                    {"10.20.99.14", "10.20.7.1", "10.20.7.2"})


# --- withheld inside other text ------------------------------------------------------------------------


def test_excluded_values_inside_other_cells_are_withheld(site: Path, tmp_path: Path) -> None:
    rows = [
        Row(host="kgs-db-01", ip="10.20.5.14"),  # excluded by pattern: its name and address are secret
        Row(host="arm-1", ip="10.20.5.14/24"),  # ip_network: the echoed value names the excluded address
        Row(host="arm-2", ip="10.20.5.14 (осн.)"),  # invalid_ip
        Row(host="old kgs-db-01", ip="10.20.5.3"),  # invalid_hostname, naming the excluded host
        Row(host="arm-4", ip="10.20.5.4", loc="стойка с kgs-db-01 (10.20.5.14), каб. 5",
            os="Windows 10, как у KGS-DB-01", dept="отдел 10.20.5.14"),  # accepted: free text withheld
        Row(host="arm-5", ip="10.20.5.140", loc="рядом 10.20.5.140 и 110.20.5.14"),  # not the address
        Row(host="arm-6", ip="10.20.5.6", sb="Министерство kgs-db-01"),  # unknown_state_body, message too
    ]
    path, _ = write_form("csv_utf8", tmp_path, rows)
    build_inventory(site, [path], tmp_path / "inv", as_of=AS_OF)
    _assert_nowhere(tmp_path / "inv", {"kgs-db-01"}, {"10.20.5.14"})
    report = json.loads((tmp_path / "inv" / "report.json").read_text())
    values = {r["reason"]: r.get("value") for r in report["rejected"]}
    assert values["ip_network"] == f"{WITHHELD}/24"
    assert values["invalid_ip"] == f"{WITHHELD} (осн.)"
    assert values["invalid_hostname"] == f"old {WITHHELD}"
    assert values["unknown_state_body"] == f"Министерство {WITHHELD}"
    objects = {o["hostname"]: o for o in json.loads((tmp_path / "inv" / "objects.json").read_text())}
    assert objects["arm-4"]["location"] == f"стойка с {WITHHELD} ({WITHHELD}), каб. 5"
    assert objects["arm-4"]["os_raw"] == f"Windows 10, как у {WITHHELD}"
    assert objects["arm-4"]["department"] == f"отдел {WITHHELD}"
    assert objects["arm-5"]["location"] == "рядом 10.20.5.140 и 110.20.5.14"  # other addresses: untouched
    assert WITHHELD in (tmp_path / "inv" / "report.md").read_text().replace("\\", "")


@pytest.mark.parametrize(("text", "masked"), [
    ("10.20.99.14/24", f"{WITHHELD}/24"),
    ("10.20.99.14 (осн.)", f"{WITHHELD} (осн.)"),
    ("10.20.99.140", "10.20.99.140"),
    ("110.20.99.14", "110.20.99.14"),
    ("10.20.99.14.5", "10.20.99.14.5"),
    ("010.020.099.014", WITHHELD),
    ("10,20,99,14", WITHHELD),
    ("SECRET-ARM-1 (old)", f"{WITHHELD} (old)"),
    ("secret-arm-1.mcri.local", WITHHELD),  # the same host
    ("secret-arm-10", "secret-arm-10"),
    ("my-secret-arm-1", "my-secret-arm-1"),
    ("secret-arm-1.", f"{WITHHELD}."),
    ("10.77.0.9, 2001:db8::5", f"{WITHHELD}, {WITHHELD}"),  # in an excluded network; an excluded IPv6
])
def test_masking_respects_boundaries(text: str, masked: str) -> None:
    from msib.appendix.scope import WITHHELD as marker
    from msib.appendix.scope import Masker

    assert marker == WITHHELD
    masker = Masker(["10.20.99.14", "2001:db8::5"], ["secret-arm-1"], [ipaddress.ip_network("10.77.0.0/16")])
    assert masker.text(text) == masked


# --- generated appendices with arbitrary links ---------------------------------------------------------

HOSTS = [f"h{k}x" for k in range(8)] + ["kgs-a1", "kgs-b2"]
IPS = [f"10.20.1.{k}" for k in range(1, 9)] + ["10.20.99.7", "10.20.99.8"]


def _same_host(a: str, b: str) -> bool:
    return a == b or (("." not in a or "." not in b) and a.split(".", 1)[0] == b.split(".", 1)[0])


def _expected_excluded(rows: list[tuple[str, str, str]]) -> tuple[set[int], set[str], set[str]]:
    """The closure computed the plain way: (rows, their hostnames, their addresses)."""

    def valid_ip(text: str) -> str | None:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return None

    def tokens(text: str) -> set[str]:
        return set(re.findall(r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9]|\.[0-9])", text))

    excluded = {i for i, (host, ip, _) in enumerate(rows)
                if host.split(".")[0].startswith("kgs-")
                or any(ipaddress.ip_address(t) in EXCLUDED_NET for t in tokens(ip) if valid_ip(ip) == t)}
    while True:
        ips = {t for i in excluded for t in tokens(rows[i][1])}
        hosts = {rows[i][0] for i in excluded}
        more = {i for i, (host, ip, _) in enumerate(rows)
                if i not in excluded and (valid_ip(ip) in ips or any(_same_host(host, h) for h in hosts))}
        if not more:
            return excluded, hosts, ips
        excluded |= more


@st.composite
def linked_appendix(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    """Rows (hostname, IP cell, location) drawn from small pools, so that they share names and
    addresses in every way; the location (free text) names any of them."""
    rows = []
    for _ in range(draw(st.integers(1, 14))):
        host = draw(st.sampled_from(HOSTS))
        if draw(st.integers(0, 3)) == 0:
            host += ".mcri.local"
        ip = draw(st.sampled_from(IPS))
        suffix = draw(st.sampled_from(["", "", "", "/24", " (осн.)"]))
        ref = draw(st.sampled_from([*HOSTS, *IPS, "каб. 5"]))
        rows.append((host, ip + suffix, f"рядом с {ref}, этаж 2"))
    return rows


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(linked_appendix(), st.sampled_from(["csv_utf8", "xlsx_sections"]))
def test_no_excluded_value_in_any_output_file(rows: list[tuple[str, str, str]], form: str) -> None:
    excluded, hosts, ips = _expected_excluded(rows)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        site = tmp / "site.yml"
        site.write_text(SITE_YAML, encoding="utf-8")
        path, places = write_form(form, tmp, [Row(host=h, ip=ip, loc=loc) for h, ip, loc in rows])  # type: ignore[arg-type]
        build_inventory(site, [path], tmp / "inv", as_of=AS_OF)
        report = json.loads((tmp / "inv" / "report.json").read_text())
        got = {r["row"] for r in report["rejected"] if r["reason"] == "excluded"}
        assert got == {places[i].row for i in excluded}
        _assert_nowhere(tmp / "inv", hosts, ips)
