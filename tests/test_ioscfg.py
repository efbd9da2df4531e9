"""`show running-config` text → canonical rules, and desired state → the lines to send (pure).

One case file per behaviour in tests/data/showrun/ (its opening comment says what it proves);
this runner checks every key a case has:

- `logging`: {trap, hosts: [canonical lines]} read from `config`
- `desired`: {targets, trap, lines}: the lines netdev would send (`[]` = converged, a no-op)
- `acl`: {name, entries: [[seq, text]] | null}; `blocks`: networks blocked in it
- `block` / `unblock`: {network, lines}
- `clean`: the backup text made from `config`
- `target` + `current` → `revert`: the commands that turn current back into target
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from msib.errors import InputError
from msib.netdev import (
    LoggingTarget,
    block_lines,
    blocked_networks,
    ioscfg,
    logging_lines,
    unblock_lines,
)

CASES = sorted((Path(__file__).parent / "data" / "showrun").glob("*.yml"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def test_there_are_case_files_for_every_kind() -> None:
    keys = set().union(*(_load(p).keys() for p in CASES))
    assert {"logging", "desired", "acl", "blocks", "block", "unblock", "clean", "revert"} <= keys
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_showrun_case(path: Path) -> None:
    case = _load(path)
    checked = 0
    if "revert" in case:
        target, current = ioscfg.parse_tree(case["target"]), ioscfg.parse_tree(case["current"])
        assert ioscfg.revert_commands(target, current) == case["revert"]
        checked += 1
    config = case.get("config", "")
    if "logging" in case:
        state = ioscfg.logging_state(ioscfg.parse_tree(config))
        assert state.trap == case["logging"]["trap"]
        assert [h.line() for h in state.hosts] == case["logging"]["hosts"]
        checked += 1
    if "desired" in case:
        d = case["desired"]
        targets = [LoggingTarget(ipaddress.ip_address(t["address"]), t["transport"], t["port"]) for t in d["targets"]]
        assert logging_lines(config, targets, d["trap"]) == d["lines"]
        checked += 1
    if "acl" in case:
        entries = ioscfg.acl_entries(ioscfg.parse_tree(config), case["acl"]["name"])
        want = case["acl"]["entries"]
        assert (None if entries is None else [[e.seq, e.text] for e in entries]) == want
        checked += 1
    if "blocks" in case:
        assert [str(n) for n in blocked_networks(config)] == case["blocks"]
        checked += 1
    if "block" in case:
        assert block_lines(config, case["block"]["network"]) == case["block"]["lines"]
        checked += 1
    if "unblock" in case:
        assert unblock_lines(config, case["unblock"]["network"]) == case["unblock"]["lines"]
        checked += 1
    if "clean" in case:
        assert ioscfg.clean_config(config) == case["clean"]
        checked += 1
    assert checked, f"{path.name} checks nothing"


def test_lines_netdev_would_send_reach_the_converged_state_when_applied_by_the_simulator() -> None:
    """What the op writes and what the fact reads back compare equal (the no-op is reliable)."""
    from msib.lab.devsim import CliSession, Device

    dev = Device(hostname="r1")
    session = CliSession(dev, "t", privilege=15)
    session.handle("configure terminal")
    targets = [LoggingTarget(ipaddress.ip_address("198.18.32.10")),
               LoggingTarget(ipaddress.ip_address("198.18.32.11"), "udp", 1514)]
    for line in ["logging trap warnings", "logging host 198.18.32.10", "logging host 198.18.32.11"]:
        session.handle(line)
    lines = logging_lines(dev.show_running(), targets)
    assert len(lines) == 3
    for line in [*lines, *block_lines(dev.show_running(), "198.18.40.0/22")]:
        assert session.handle(line).text == "", line
    assert logging_lines(dev.show_running(), targets) == []
    assert block_lines(dev.show_running(), "198.18.40.0/22") == []
    assert [str(n) for n in blocked_networks(dev.show_running())] == ["198.18.40.0/22"]


@pytest.mark.parametrize(("value", "message"), [
    ("2001:db8::1", "IPv4 only"),
    ("0.0.0.0/0", "everything"),
    ("10.0.0.1/24", "host bits"),
    ("10.0.0.300", "not an address"),
])
def test_bad_block_address_refused_before_any_io(value: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        block_lines("", value)


def test_unknown_trap_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown syslog level 'loud'"):
        logging_lines("", [], "loud")


def test_severity_order() -> None:
    assert ioscfg.severity("informational") == 6
    assert ioscfg.severity("debugging") > ioscfg.severity("warnings")
