"""msib contain without the lab: refusals, the nftables operation as data, the audit log, and the
vendor path over real SSH to the IOS simulator on 127.0.0.1 (sweeping expired entries included)."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devsim_helpers import ENABLE, LOCALHOST, PASSWORD, USERNAME, DevSim
from inventory_helpers import write_inventory
from msib import contain as ct
from msib import contract
from msib.errors import InputError
from msib.site import parse_site

REPO = Path(__file__).resolve().parent.parent
MSIB = [sys.executable, "-c", "from msib.cli import main; main()"]
N = ipaddress.IPv4Network


def _msib(*args: str, env_extra: dict[str, str] | None = None, creds: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSIB_DEVICE_", "MSIB_CONTAIN"))}
    env["COLUMNS"] = "200"
    if creds:
        env.update(MSIB_DEVICE_USERNAME=USERNAME, MSIB_DEVICE_PASSWORD=PASSWORD, MSIB_DEVICE_ENABLE=ENABLE)
    env.update(env_extra or {})
    return subprocess.run([*MSIB, "contain", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def lab_inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hosts.yml of the lab's site plan, written by the real inventory builder (no lab needed)."""
    kh = tmp_path_factory.mktemp("inv") / "known_hosts"
    kh.write_text("")
    return write_inventory(kh.parent / "inventory", known_hosts=kh)


# --- request parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5), ("90", 90), ("30m", 1800), ("1h", 3600),
                                               ("1h30m", 5400), ("2d", 172800), (" 1H ", 3600)])
def test_ttl_is_parsed_to_seconds(text: str, seconds: int) -> None:
    assert ct.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "1x", "h", "-5s", "1.5h", "31d", "1h junk"])
def test_bad_ttl_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError) as e:
        ct.parse_ttl(text)
    assert e.value.file == "--ttl"


@pytest.mark.parametrize(("text", "why"), [("198.18.16.100/24", "host bits"), ("2001:db8::1", "IPv6"),
                                           ("not-an-ip", "not an address"), ("198.18.16.300", "not an address")])
def test_bad_target_is_an_input_error(text: str, why: str) -> None:
    with pytest.raises(InputError, match=why):
        ct.parse_target(text)


@pytest.mark.parametrize(("text", "why"), [(" 198.18.32.100", "white space"), ("198.18.32.100 ", "white space"),
                                           ("\t198.18.32.100", "white space"), ("198.18.32.100\n", "white space"),
                                           ("198.18.32.0/024", "not the canonical form of 198.18.32.0/24")])
def test_non_canonical_target_text_is_refused_not_trimmed(text: str, why: str) -> None:
    with pytest.raises(InputError, match=why) as e:
        ct.parse_target(text)
    assert e.value.fix is not None and "give exactly 198.18.32." in e.value.fix


@pytest.mark.parametrize("option", ["--ip", "--release"])
def test_contain_with_a_padded_address_exits_2_and_writes_nothing(lab_inventory: Path, tmp_path: Path,
                                                                  option: str) -> None:
    audit = tmp_path / "audit.jsonl"
    run = _msib("-i", str(lab_inventory), option, " 198.18.32.100", "--audit-log", str(audit))
    assert run.returncode == 2, run.stderr
    assert run.stdout == "" and "Traceback" not in run.stderr
    assert "' 198.18.32.100' has white space around the address" in run.stderr
    assert "give exactly 198.18.32.100" in run.stderr
    assert not audit.exists()


# --- refusals ------------------------------------------------------------------------------------------

REFUSED = {
    "198.18.0.1": "management path",          # the controller (msib_controllers)
    "198.18.0.0/24": "management path",       # a network holding it
    "198.18.31.10": "col-int-1",              # collector, management address
    "198.18.16.10": "col-int-1",              # collector, LAN (service) address
    "198.18.47.10": "col-ext-1",
    "198.19.0.10": "SIEM's syslog",           # the SIEM's receiver
    "198.18.0.10": "SIEM's API",              # the SIEM's API host
    "198.18.31.11": "ids-int-1",              # an IDS sensor
    "198.18.31.1": "fw-int-1",                # a firewall's management address
    "198.18.16.1": "fw-int-1",                # ... its LAN address
    "198.19.0.2": "fw-int-1",                 # ... its uplink address
    "198.18.16.0/20": "contains",             # the whole circuit holds the collector
    "198.19.0.8/29": "SIEM",
    "127.0.0.1": "loopback",
    "0.0.0.0": "unspecified",
    "0.0.0.0/0": "contains",
    "224.0.0.5": "multicast",
}


@pytest.mark.parametrize(("target", "why"), REFUSED.items())
def test_protected_addresses_are_refused(lab_inventory: Path, target: str, why: str) -> None:
    inv = ct.contain_inventory(contract.load(lab_inventory))
    reason = ct.refusal(ct.parse_target(target), inv.protected)
    assert reason is not None and why in reason


@pytest.mark.parametrize("target", ["198.18.16.100", "198.18.32.100", "198.18.17.0/24", "198.18.16.128/25",
                                    "10.1.2.3"])
def test_object_addresses_are_allowed(lab_inventory: Path, target: str) -> None:
    inv = ct.contain_inventory(contract.load(lab_inventory))
    assert ct.refusal(ct.parse_target(target), inv.protected) is None


def test_refusal_exits_2_writes_a_refused_record_and_contacts_nothing(lab_inventory: Path, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    # the lab's firewalls are not reachable from a test without the lab: a refusal must not try
    run = _msib("-i", str(lab_inventory), "--ip", "198.18.0.1", "--reason", "oops", "--audit-log", str(audit),
                env_extra={"SUDO_USER": "alice"})
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1 and "refused: 198.18.0.1/32 is the management path" in run.stderr
    (rec,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert rec["action"] == "refused" and rec["outcome"] == "refused" and rec["firewalls"] == []
    assert rec["sudo_user"] == "alice" and rec["reason"] == "oops" and rec["address"] == "198.18.0.1/32"


def test_refusal_in_check_mode_writes_nothing(lab_inventory: Path, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    run = _msib("-i", str(lab_inventory), "--ip", "198.19.0.10", "--check", "--audit-log", str(audit))
    assert run.returncode == 2
    assert not audit.exists()


@pytest.mark.parametrize("args", [[], ["--ip", "198.18.16.100", "--list"], ["--ip", "198.18.16.100", "--ttl", "0"],
                                  ["--ip", "198.18.16.100", "--circuit", "nowhere"], ["--release", "::1"]])
def test_bad_arguments_exit_2_with_one_line_and_no_record(lab_inventory: Path, tmp_path: Path,
                                                          args: list[str]) -> None:
    audit = tmp_path / "audit.jsonl"
    run = _msib("-i", str(lab_inventory), "--audit-log", str(audit), *args)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error:") and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert not audit.exists()


def test_circuits_default_to_where_the_address_lives(lab_inventory: Path) -> None:
    inv = ct.contain_inventory(contract.load(lab_inventory))
    assert inv.select_circuits(N("198.18.16.100/32")) == ("internal",)
    assert inv.select_circuits(N("198.18.32.100/32")) == ("external",)
    assert inv.select_circuits(N("10.1.2.3/32")) == ("internal", "external")
    assert inv.select_circuits(N("198.18.16.100/32"), ["external"]) == ("external",)
    assert [f.name for f in inv.firewalls_of(("internal",))] == ["fw-int-1"]


def test_ssh_settings_come_from_the_inventory(lab_inventory: Path) -> None:
    inv = ct.contain_inventory(contract.load(lab_inventory))
    remote = ct.NftRemote(inv, inv.firewalls_of(("internal",)))
    try:
        text = remote.config.read_text()
        assert "StrictHostKeyChecking yes" in text
        assert f"UserKnownHostsFile {lab_inventory.parent / 'known_hosts'}" in text
        assert "HostName 198.18.31.1" in text
        remote.check_strict(inv.firewalls_of(("internal",))[0])
    finally:
        remote.close()
    assert not remote.workdir.exists()


# --- the nftables operation, as data ---------------------------------------------------------------

T = N("198.18.16.100/32")
E = ct.NftElement
SET = "inet msib_contain msib_blocked"

NFT_BLOCK_CASES = {
    "absent_adds": ([], T, 3600, "added", f"add element {SET} {{ 198.18.16.100 timeout 3600s }}\n"),
    "present_later_is_noop": ([E(T, 3600)], T, 3600, "present", ""),
    "present_within_grace_is_noop": ([E(T, 3400)], T, 3600, "present", ""),
    "present_sooner_is_extended_in_one_transaction": (
        [E(T, 100)], T, 3600, "extended",
        f"delete element {SET} {{ 198.18.16.100 }}\nadd element {SET} {{ 198.18.16.100 timeout 3600s }}\n"),
    "present_without_expiry_is_noop": ([E(T, None)], T, 60, "present", ""),
    "covered_by_a_network_is_noop": ([E(N("198.18.16.0/24"), 7200)], T, 3600, "present", ""),
    "covered_but_sooner_is_a_conflict": ([E(N("198.18.16.0/24"), 10)], T, 3600, "conflict", ""),
    "a_network_over_an_address_is_a_conflict": ([E(T, 3600)], N("198.18.16.0/24"), 3600, "conflict", ""),
    "others_are_left_alone": ([E(N("198.18.16.7/32"), 5)], T, 60, "added",
                              f"add element {SET} {{ 198.18.16.100 timeout 60s }}\n"),
}


@pytest.mark.parametrize(("current", "target", "ttl", "result", "script"), NFT_BLOCK_CASES.values(),
                         ids=NFT_BLOCK_CASES.keys())
def test_nft_block(current: list[ct.NftElement], target: ipaddress.IPv4Network, ttl: int, result: str,
                   script: str) -> None:
    plan = ct.nft_block(current, target, ttl)
    assert plan.result == result
    assert plan.script == script


def test_nft_block_of_a_network_writes_its_prefix() -> None:
    assert ct.nft_block([], N("198.18.17.0/24"), 5).script == f"add element {SET} {{ 198.18.17.0/24 timeout 5s }}\n"


def test_nft_release() -> None:
    assert ct.nft_release([E(T, 9)], T).script == f"delete element {SET} {{ 198.18.16.100 }}\n"
    assert ct.nft_release([], T).result == "absent"
    inside = ct.nft_release([E(N("198.18.16.0/24"), 9)], T)
    assert inside.result == "conflict" and inside.script == "" and "198.18.16.0/24" in inside.detail


def test_nft_set_listing_is_parsed() -> None:
    # as nft 1.0.6 prints it (captured on the lab's fw-int-1)
    text = ('{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "msib_blocked", '
            '"table": "msib", "type": "ipv4_addr", "flags": ["interval", "timeout"], "timeout": 3600, "elem": ['
            '{"elem": {"val": "198.18.16.100", "timeout": 4, "expires": 3}}, '
            '{"elem": {"val": {"prefix": {"addr": "198.18.17.0", "len": 24}}, "timeout": 3, "expires": 2}}, '
            '{"elem": {"val": {"range": ["198.18.18.0", "198.18.18.3"]}, "expires": 7}}]}}]}')
    assert ct.parse_nft_set(text) == (E(T, 3), E(N("198.18.17.0/24"), 2), E(N("198.18.18.0/30"), 7))
    empty = '{"nftables": [{"set": {"name": "msib_blocked", "timeout": 3600}}]}'
    assert ct.parse_nft_set(empty) == ()
    with pytest.raises(ct.ContainError, match="deploy the firewall role"):
        ct.parse_nft_set('{"nftables": [{"metainfo": {}}]}')
    with pytest.raises(ct.ContainError, match="not nft JSON"):
        ct.parse_nft_set("Error: No such file or directory")


# --- the audit log ---------------------------------------------------------------------------------


def test_audit_record_says_who_when_what_why_until_and_the_outcome_per_firewall(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "bob")
    run = ct.ContainRun("block", T, ("internal",), (
        ct.FirewallOutcome("fw-int-1", "nftables", "added", "", 1_800_000_060.0),
        ct.FirewallOutcome("fw-dev-1", "cisco_ios", "error", "fw-dev-1: connection refused")),
        ttl_s=60, expires=1_800_000_060.0, reason="beaconing to a C2", at=1_800_000_000.0)
    rec = run.record()
    assert rec["ts"] == "2027-01-15T08:00:00Z" and rec["expires"] == "2027-01-15T08:01:00Z"
    assert rec["sudo_user"] == "bob" and rec["user"] and isinstance(rec["uid"], int)
    assert rec["action"] == "block" and rec["address"] == "198.18.16.100/32" and rec["reason"] == "beaconing to a C2"
    assert rec["outcome"] == "partial" and run.exit_code() == 1
    assert [(f["name"], f["result"]) for f in rec["firewalls"]] == [("fw-int-1", "added"), ("fw-dev-1", "error")]


def test_audit_log_only_appends_and_survives_a_torn_line(tmp_path: Path) -> None:
    log = ct.AuditLog(tmp_path / "a" / "audit.jsonl")
    log.append({"n": 1})
    first = log.path.read_bytes()
    with log.locked():
        log.append({"n": 2})
    assert log.path.read_bytes().startswith(first)
    with log.path.open("ab") as f:
        f.write(b'{"n": 3, "tor')           # a crash mid-write of someone else's line
    assert [r["n"] for r in log.records()] == [1, 2]
    assert oct(log.path.stat().st_mode & 0o777) == "0o640"


def test_held_blocks_replay_block_release_and_expire() -> None:
    def rec(action: str, result: str, fw: str = "fw-dev-1", addr: str = "10.9.9.9/32") -> dict[str, object]:
        return {"action": action, "address": addr, "reason": "r",
                "firewalls": [{"name": fw, "result": result, "expires": "2027-01-15T08:01:00Z"}]}

    held = ct.held_blocks([rec("block", "added"), rec("block", "added", addr="10.9.9.8/32"),
                           rec("release", "removed", addr="10.9.9.8/32"), rec("block", "present", fw="fw-x")])
    assert list(held) == [("fw-dev-1", N("10.9.9.9/32"))]
    assert held[("fw-dev-1", N("10.9.9.9/32"))].expires == 1_800_000_060.0
    assert ct.held_blocks([rec("block", "added"), rec("expire", "absent")]) == {}
    assert ct.held_blocks([rec("block", "error")]) == {}


def test_an_intent_without_its_outcome_is_held_until_its_intended_expiry() -> None:
    def rec(action: str, phase: str, result: str, run: str, expires: str = "2027-01-15T08:01:00Z") -> dict[str, object]:
        return {"action": action, "phase": phase, "run": run, "address": "10.9.9.9/32", "reason": "r",
                "firewalls": [{"name": "fw-dev-1", "result": result, "expires": expires}]}

    key = ("fw-dev-1", N("10.9.9.9/32"))
    # killed after the intent: the entry may be on the device, so it is swept at the intended expiry
    assert ct.held_blocks([rec("block", "intent", "pending", "a")])[key].expires == 1_800_000_060.0
    # the outcome came: it decides (an error leaves nothing held)
    assert ct.held_blocks([rec("block", "intent", "pending", "a"), rec("block", "firewall", "error", "a")]) == {}
    # a later release of the address supersedes what the unfinished run intended
    assert ct.held_blocks([rec("block", "intent", "pending", "a"), rec("release", "intent", "pending", "b"),
                           rec("release", "outcome", "absent", "b")]) == {}
    # an unfinished run that asked for longer than what is held keeps the later expiry
    later = "2027-01-15T09:00:00Z"
    held = ct.held_blocks([rec("block", "outcome", "added", "a"), rec("block", "intent", "pending", "b", later)])
    assert held[key].expires == 1_800_003_600.0


def test_default_audit_path_is_beside_the_inventory_not_in_it(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ct.ENV_AUDIT, raising=False)
    assert ct.default_audit_path(tmp_path / "inventory") == tmp_path / "inventory.contain-audit.jsonl"
    monkeypatch.setenv(ct.ENV_AUDIT, str(tmp_path / "x.jsonl"))
    assert ct.default_audit_path(tmp_path / "inventory") == tmp_path / "x.jsonl"


# --- vendor devices over real SSH (the IOS simulator on 127.0.0.1) -------------------------------------------


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[DevSim]:
    s = DevSim(tmp_path / "fw-dev-1", hostname="fw-dev-1").start()
    yield s
    s.stop()


def _running(sim: DevSim) -> str:
    """The simulator's running config as it stores it (rewritten atomically after every change)."""
    return (sim.state / "running-config").read_text()


def _device_inventory(tmp_path: Path, sim: DevSim) -> Path:
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{LOCALHOST}]:{sim.port} {sim.public_key()}\n")
    plan = parse_site({
        "state_body": "Test body", "code": "lab",
        "siem": {"syslog": {"host": "127.0.0.5"}},
        "circuits": {"internal": {"networks": ["127.0.0.0/8"], "appliances": [
            {"name": "col-int-1", "role": "collector", "address": "127.0.0.10"},
            {"name": "fw-dev-1", "role": "firewall", "address": "127.0.0.11", "platform": "cisco_ios",
             "port": sim.port}]}},
    }, "test")
    return write_inventory(tmp_path / "inventory", plan, known_hosts=kh, netdev_address=LOCALHOST)


def test_vendor_block_is_idempotent_listed_and_released(sim: DevSim, tmp_path: Path) -> None:
    inv = _device_inventory(tmp_path, sim)
    audit = tmp_path / "audit.jsonl"
    common = ["-i", str(inv), "--audit-log", str(audit)]
    extra = {"MSIB_BACKUP_DIR": str(tmp_path / "backups")}

    dry = _msib(*common, "--ip", "10.9.9.9", "--check", "--json", creds=True, env_extra=extra)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["firewalls"][0]["result"] == "would-add"
    assert "10.9.9.9" not in _running(sim) and not audit.exists()

    first = _msib(*common, "--ip", "10.9.9.9", "--ttl", "1h", "--reason", "test", "--json", creds=True,
                  env_extra=extra)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["outcome"] == "changed" and out["firewalls"][0]["result"] == "added"
    running = _running(sim)
    assert "deny   ip host 10.9.9.9 any log" in running and "deny   ip any host 10.9.9.9 log" in running

    second = _msib(*common, "--ip", "10.9.9.9", "--ttl", "1h", creds=True, env_extra=extra)
    assert second.returncode == 0, second.stderr
    assert "nothing changed: already contained everywhere" in second.stdout
    assert _running(sim) == running

    listed = _msib(*common, "--list", "--json", creds=True, env_extra=extra)
    assert listed.returncode == 0, listed.stderr
    (block,) = json.loads(listed.stdout)["blocks"]
    assert block["address"] == "10.9.9.9/32" and block["firewalls"] == ["fw-dev-1"] and block["reason"] == "test"
    assert block["expires"] == out["firewalls"][0]["expires"]

    rel = _msib(*common, "--release", "10.9.9.9", creds=True, env_extra=extra)
    assert rel.returncode == 0, rel.stderr
    assert "fw-dev-1 (cisco_ios): released" in rel.stdout
    assert "10.9.9.9" not in _running(sim)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    # write-ahead: the intent before any change, each firewall's outcome, the run's outcome last
    assert [(r["action"], r["phase"]) for r in records] == [
        ("block", "intent"), ("block", "firewall"), ("block", "outcome"),
        ("block", "intent"), ("block", "firewall"), ("block", "outcome"),
        ("release", "intent"), ("release", "firewall"), ("release", "outcome")]
    assert records[0]["firewalls"] == [{"name": "fw-dev-1", "platform": "cisco_ios", "result": "pending",
                                        "detail": "", "expires": out["firewalls"][0]["expires"]}]
    assert len({r["run"] for r in records}) == 3


def test_expired_vendor_entry_is_swept_by_the_next_run(sim: DevSim, tmp_path: Path) -> None:
    inv = _device_inventory(tmp_path, sim)
    audit = tmp_path / "audit.jsonl"
    common = ["-i", str(inv), "--audit-log", str(audit)]
    extra = {"MSIB_BACKUP_DIR": str(tmp_path / "backups")}
    blocked = _msib(*common, "--ip", "10.9.9.0/24", "--ttl", "2s", "--reason", "short", creds=True, env_extra=extra)
    assert blocked.returncode == 0, blocked.stderr
    assert "10.9.9.0 0.0.0.255" in _running(sim)
    # a block msib did not make (no record) must survive every sweep
    other = _msib(*common, "--ip", "10.8.8.8", "--ttl", "1h", creds=True, env_extra=extra)
    assert other.returncode == 0, other.stderr

    deadline = time.monotonic() + 60
    while "10.9.9.0 0.0.0.255" in _running(sim):
        assert time.monotonic() < deadline, "the expired entry was never swept"
        listed = _msib(*common, "--list", "--json", creds=True, env_extra=extra)
        assert listed.returncode == 0, listed.stderr
        time.sleep(0.5)
    assert "host 10.8.8.8" in _running(sim)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    expire = [r for r in records if r["action"] == "expire"]
    assert len(expire) == 1 and expire[0]["address"] == "10.9.9.0/24" and expire[0]["reason"] == "short"
    assert expire[0]["firewalls"][0]["result"] == "removed"
    final = json.loads(_msib(*common, "--list", "--json", creds=True, env_extra=extra).stdout)
    assert [b["address"] for b in final["blocks"]] == ["10.8.8.8/32"]


def test_vendor_run_without_credentials_exits_2_before_connecting(sim: DevSim, tmp_path: Path) -> None:
    inv = _device_inventory(tmp_path, sim)
    run = _msib("-i", str(inv), "--ip", "10.9.9.9", "--audit-log", str(tmp_path / "a.jsonl"))
    assert run.returncode == 2
    assert "no device credentials" in run.stderr
    assert "Accepted SSH client connection" not in sim.stderr()
    assert not (tmp_path / "a.jsonl").exists()


# --- faults in the middle of a run: write-ahead and per-firewall outcomes -----------------------------------


def _two_device_inventory(tmp_path: Path, one: DevSim, two: DevSim) -> Path:
    kh = tmp_path / "known_hosts"
    kh.write_text("".join(f"[{LOCALHOST}]:{s.port} {s.public_key()}\n" for s in (one, two)))
    plan = parse_site({
        "state_body": "Test body", "code": "lab",
        "siem": {"syslog": {"host": "127.0.0.5"}},
        "circuits": {"internal": {"networks": ["127.0.0.0/8"], "appliances": [
            {"name": "col-int-1", "role": "collector", "address": "127.0.0.10"},
            {"name": "fw-dev-1", "role": "firewall", "address": "127.0.0.11", "platform": "cisco_ios",
             "port": one.port},
            {"name": "fw-dev-2", "role": "firewall", "address": "127.0.0.12", "platform": "cisco_ios",
             "port": two.port}]}},
    }, "test")
    return write_inventory(tmp_path / "inventory", plan, known_hosts=kh, netdev_address=LOCALHOST)


def _when_logged(sim: DevSim, text: str, action: Callable[[], None], timeout: float = 60) -> threading.Thread:
    """Run `action` as soon as the simulator's log shows `text` (a fault at a known point of a session)."""
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in sim.stderr():
                action()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_device_lost_mid_session_is_its_own_failure_exit_1_and_the_others_are_done(tmp_path: Path) -> None:
    one = DevSim(tmp_path / "fw-dev-1", hostname="fw-dev-1").start()
    two = DevSim(tmp_path / "fw-dev-2", hostname="fw-dev-2").start()
    try:
        inv = _two_device_inventory(tmp_path, one, two)
        audit = tmp_path / "audit.jsonl"
        assert two.proc is not None
        # fw-dev-2 dies once msib is logged in and enabled: netmiko then raises OSError/EOFError, not msib's own
        killer = _when_logged(two, ": enable", two.proc.kill)
        run = _msib("-i", str(inv), "--ip", "10.9.9.9", "--ttl", "1h", "--json", "--audit-log", str(audit),
                    creds=True, env_extra={"MSIB_BACKUP_DIR": str(tmp_path / "backups")})
        killer.join(timeout=5)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "internal error" not in run.stderr
        out = json.loads(run.stdout)
        results = {f["name"]: f for f in out["firewalls"]}
        assert results["fw-dev-1"]["result"] == "added" and results["fw-dev-2"]["result"] == "error"
        assert results["fw-dev-2"]["detail"] and out["outcome"] == "partial"
        assert "deny   ip host 10.9.9.9 any log" in _running(one)
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        assert [r["phase"] for r in records] == ["intent", "firewall", "firewall", "outcome"]
        assert records[-1]["outcome"] == "partial"
    finally:
        one.stop()
        two.stop()


def test_a_run_killed_after_changing_a_device_leaves_a_record_the_next_sweep_uses(sim: DevSim, tmp_path: Path) -> None:
    inv = _device_inventory(tmp_path, sim)
    audit = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSIB_DEVICE_", "MSIB_CONTAIN"))}
    env.update(MSIB_DEVICE_USERNAME=USERNAME, MSIB_DEVICE_PASSWORD=PASSWORD, MSIB_DEVICE_ENABLE=ENABLE,
               MSIB_BACKUP_DIR=str(tmp_path / "backups"))
    proc = subprocess.Popen([*MSIB, "contain", "-i", str(inv), "--ip", "10.9.9.9", "--ttl", "3s", "--reason", "killed",
                             "--audit-log", str(audit)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # SIGKILL as soon as the device has both ACL lines: before msib saves, verifies or records an outcome
    killer = _when_logged(sim, "deny ip any host 10.9.9.9", lambda: os.kill(proc.pid, signal.SIGKILL))
    proc.wait(timeout=120)
    killer.join(timeout=5)
    assert proc.returncode == -signal.SIGKILL
    assert "deny   ip host 10.9.9.9 any log" in _running(sim)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["action"], r["phase"]) for r in records] == [("block", "intent")]
    deadline = time.monotonic() + 60
    while "host 10.9.9.9" in _running(sim):
        assert time.monotonic() < deadline, "the entry of the killed run was never swept: orphaned"
        listed = _msib("-i", str(inv), "--list", "--json", "--audit-log", str(audit), creds=True,
                       env_extra={"MSIB_BACKUP_DIR": str(tmp_path / "backups")})
        assert listed.returncode == 0, listed.stderr
        time.sleep(0.5)
    expire = [json.loads(line) for line in audit.read_text().splitlines() if '"expire"' in line]
    assert expire and expire[-1]["reason"] == "killed" and expire[-1]["firewalls"][0]["result"] == "removed"
