"""msib contain on the lab: the object obj-int-1 (198.18.16.100) is blocked on fw-int-1 (nftables),
its packets are dropped by the containment rules (counted), the block expires by itself, release
restores traffic, and protected addresses are refused with nothing changed. The vendor part runs on
a small lab of its own (a simulated IOS firewall, msib.lab.devsim) booted beside the shared one.

Only lab addresses (198.18.0.0/15) are ever sent to. Never `msib lab up/down` on the shared lab.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ssh
from msib.lab import Lab, write_synthetic_lab

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
MSIB = [sys.executable, "-c", "from msib.cli import main; main()"]
OBJ, OBJ_NS = "198.18.16.100", "msib-obj-int-1"
FW_LAN = "198.18.16.1"          # fw-int-1's LAN address: answers ping (input chain) unless contained
SIEM = ("198.19.0.10", "6514")  # behind fw-int-1 on the uplink

#: a one-shot ICMP echo from inside a namespace (the machine has no ping; raw socket as root)
ECHO = r"""
import os, select, socket, struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
ident = os.getpid() & 0xffff
body = struct.pack('!BBHHH', 8, 0, 0, ident, 1) + b'msib-contain'
pkt = body[:2] + struct.pack('!H', csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(pkt, (sys.argv[1], 0))
while select.select([s], [], [], 1.5)[0]:
    data = s.recv(1500)
    icmp = data[(data[0] & 15) * 4:]
    if icmp[0] == 0 and struct.unpack('!H', icmp[4:6])[0] == ident:
        sys.exit(0)
sys.exit(1)
"""


def _msib(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MSIB_DEVICE_")}
    full["COLUMNS"] = "200"
    full.update(env or {})
    return subprocess.run([*MSIB, *args], capture_output=True, text=True, timeout=300, env=full, cwd=REPO)


def _echo(netns: str, dst: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", ECHO, dst],
                          capture_output=True, timeout=30).returncode == 0


def _tcp(netns: str, host: str, port: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", netns, "nc", "-z", "-w", "2", host, port],
                          capture_output=True, timeout=30).returncode == 0


def _counters(lab: Lab) -> dict[str, int]:
    """Packets counted by the containment rules (their own table) and the default drops of fw-int-1."""
    out = ssh(lab, "fw-int-1", "nft list table inet msib_contain; nft list table inet msib")
    found: dict[str, int] = {}
    chain = ""
    for line in out.splitlines():
        m = re.match(r"\s*chain (\w+)", line)
        if m:
            chain = m.group(1)
        m = re.search(r"(ip [sd]addr @msib_blocked )?counter packets (\d+) .*comment \"([^\"]+)\"", line)
        if m:
            key = f"{chain}:{(m.group(1) or '').strip() or m.group(3)}"
            found[key] = int(m.group(2))
    return found


def _elements(lab: Lab) -> str:
    return ssh(lab, "fw-int-1", "nft -j list set inet msib_contain msib_blocked")


def _blocked(lab: Lab, address: str) -> bool:
    return f'"val": "{address}"' in _elements(lab)


@pytest.fixture(scope="module")
def fw(lab: Lab) -> Path:
    """The lab inventory, with fw-int-1 deployed (idempotent: a converged deploy changes nothing)."""
    inv: Path = lab.inventory_dir
    listing = ["sudo", "nft", "list", "set", "inet", "msib_contain", "msib_blocked"]
    ok = subprocess.run(lab.ssh_argv("fw-int-1", listing), capture_output=True, timeout=60).returncode == 0
    if not ok:
        run = _msib("deploy", "--inventory", str(inv), "--engine", "pyinfra", "--vars", "playbooks/vars/lab.yml",
                    "--limit", "fw-int-1")
        assert run.returncode == 0, run.stdout + run.stderr
    return inv


@pytest.fixture
def audit(tmp_path: Path, fw: Path) -> Iterator[Path]:
    path = tmp_path / "audit.jsonl"
    yield path
    # leave the shared lab as found: obj-int-1 not contained
    _msib("contain", "-i", str(fw), "--release", OBJ, "--audit-log", str(path))


def test_blocked_object_is_dropped_at_fw_int_1_and_release_restores_it(lab: Lab, fw: Path, audit: Path) -> None:
    common = ["contain", "-i", str(fw), "--audit-log", str(audit)]
    assert _echo(OBJ_NS, FW_LAN), "obj-int-1 must reach fw-int-1 before the drill"

    t0 = time.monotonic()
    block = _msib(*common, "--ip", OBJ, "--ttl", "10m", "--reason", "lab drill", "--json")
    block_s = time.monotonic() - t0
    assert block.returncode == 0, block.stderr
    result = json.loads(block.stdout)
    assert result["circuits"] == ["internal"]
    assert [(f["name"], f["result"]) for f in result["firewalls"]] == [("fw-int-1", "added")]
    assert _blocked(lab, OBJ)

    before = _counters(lab)
    assert not _tcp(OBJ_NS, *SIEM)
    assert not _echo(OBJ_NS, FW_LAN)
    after = _counters(lab)
    # the SYNs toward the SIEM died at the containment rule, not at the default drop
    assert after["forward:ip saddr @msib_blocked"] > before["forward:ip saddr @msib_blocked"]
    assert after["forward:default drop forward"] == before["forward:default drop forward"]
    assert after["input:ip saddr @msib_blocked"] > before["input:ip saddr @msib_blocked"]

    again = _msib(*common, "--ip", OBJ, "--ttl", "10m", "--reason", "lab drill")
    assert again.returncode == 0, again.stderr
    assert "nothing changed: already contained everywhere" in again.stdout

    listed = json.loads(_msib(*common, "--list", "--json").stdout)
    assert {"address": f"{OBJ}/32", "firewalls": ["fw-int-1"], "reason": "lab drill"}.items() <= \
        next(b for b in listed["blocks"] if b["address"] == f"{OBJ}/32").items()

    t0 = time.monotonic()
    rel = _msib(*common, "--release", OBJ)
    release_s = time.monotonic() - t0
    assert rel.returncode == 0, rel.stderr
    assert "fw-int-1 (nftables): released" in rel.stdout
    assert not _blocked(lab, OBJ)
    assert _echo(OBJ_NS, FW_LAN), "traffic must flow again after the release"
    before = _counters(lab)
    _tcp(OBJ_NS, *SIEM)  # not allowed by the lab's policy anyway: now the default drop counts it
    after = _counters(lab)
    assert after["forward:ip saddr @msib_blocked"] == before["forward:ip saddr @msib_blocked"]
    assert after["forward:default drop forward"] > before["forward:default drop forward"]

    records = [r for r in map(json.loads, audit.read_text().splitlines()) if r["phase"] == "outcome"]
    assert [(r["action"], r["outcome"]) for r in records][:3] == [
        ("block", "changed"), ("block", "unchanged"), ("release", "changed")]
    assert records[0]["reason"] == "lab drill" and records[0]["user"] and records[0]["ttl_s"] == 600
    print(f"\nblock {block_s:.2f}s, release {release_s:.2f}s (msib contain, nftables, incl. read-back)")


def test_block_expires_by_itself(lab: Lab, fw: Path, audit: Path) -> None:
    run = _msib("contain", "-i", str(fw), "--audit-log", str(audit), "--ip", OBJ, "--ttl", "5s",
                "--reason", "expiry test")
    assert run.returncode == 0, run.stderr
    assert _blocked(lab, OBJ)
    assert not _echo(OBJ_NS, FW_LAN)
    t0 = time.monotonic()
    deadline = t0 + 60
    while _blocked(lab, OBJ):
        assert time.monotonic() < deadline, "the element never expired"
        time.sleep(0.5)
    print(f"\nelement gone {time.monotonic() - t0:.1f}s after the block returned (TTL 5 s)")
    assert _echo(OBJ_NS, FW_LAN), "traffic must flow again once the block expired"
    listed = json.loads(_msib("contain", "-i", str(fw), "--audit-log", str(audit), "--list", "--json").stdout)
    assert f"{OBJ}/32" not in [b["address"] for b in listed["blocks"]]


def test_check_mode_changes_nothing(lab: Lab, fw: Path, audit: Path) -> None:
    before = _elements(lab)
    run = _msib("contain", "-i", str(fw), "--audit-log", str(audit), "--ip", OBJ, "--check")
    assert run.returncode == 0, run.stderr
    assert "fw-int-1 (nftables): would block" in run.stdout
    assert _elements(lab) == before
    assert not audit.exists()


@pytest.mark.parametrize(("address", "what"), [("198.18.0.1", "management path"), ("198.18.16.10", "col-int-1"),
                                               ("198.18.31.10", "col-int-1"), ("198.19.0.10", "SIEM"),
                                               ("198.18.16.0/24", "contains")])
def test_protected_address_is_refused_and_nothing_changes(lab: Lab, fw: Path, audit: Path, address: str,
                                                          what: str) -> None:
    before = _elements(lab)
    run = _msib("contain", "-i", str(fw), "--audit-log", str(audit), "--ip", address)
    assert run.returncode == 2
    assert what in run.stderr and "nothing was changed" in run.stderr and run.stderr.count("\n") == 1
    assert _elements(lab) == before
    (rec,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert rec["action"] == "refused" and rec["firewalls"] == []


# --- vendor firewall: a lab of its own with a simulated IOS device ----------------------------------------


def test_vendor_firewall_gets_the_acl_entry_and_loses_it_on_release_and_expiry(lab: Lab, tmp_path: Path) -> None:
    site = write_synthetic_lab(tmp_path / "plan", name="mcon", collectors=1, devices=1, octet=240, proxy_port=3146)
    other = Lab.from_files(site, state_dir=tmp_path / "state")
    try:
        other.up()
        env = dict(other.device_credentials(), MSIB_BACKUP_DIR=str(tmp_path / "backups"))
        inv = other.inventory_dir
        audit = tmp_path / "audit.jsonl"
        common = ["contain", "-i", str(inv), "--audit-log", str(audit)]
        obj = "198.19.240.200"

        def acl() -> list[str]:
            data = json.loads(_msib(*common, "--list", "--json", env=env).stdout)
            assert data["errors"] == []
            return [b["address"] for b in data["blocks"] if b["firewalls"] == ["fw-dev-1"]]

        t0 = time.monotonic()
        run = _msib(*common, "--ip", obj, "--ttl", "1h", "--reason", "vendor drill", "--json", env=env)
        block_s = time.monotonic() - t0
        assert run.returncode == 0, run.stderr
        fws = json.loads(run.stdout)["firewalls"]
        assert [(f["name"], f["platform"], f["result"]) for f in fws] == [("fw-dev-1", "cisco_ios", "added")]
        assert "deny ip host 198.19.240.200 any log" in fws[0]["detail"]
        assert acl() == [f"{obj}/32"]
        again = _msib(*common, "--ip", obj, "--ttl", "1h", env=env)
        assert again.returncode == 0 and "nothing changed" in again.stdout, again.stderr

        t0 = time.monotonic()
        rel = _msib(*common, "--release", obj, env=env)
        release_s = time.monotonic() - t0
        assert rel.returncode == 0, rel.stderr
        assert "fw-dev-1 (cisco_ios): released" in rel.stdout
        assert acl() == []

        short = _msib(*common, "--ip", obj, "--ttl", "3s", "--reason", "short", env=env)
        assert short.returncode == 0, short.stderr
        deadline = time.monotonic() + 90
        while acl():  # every --list sweeps what has expired
            assert time.monotonic() < deadline, "the expired ACL entry was never swept"
            time.sleep(1)
        actions = [r["action"] for r in map(json.loads, audit.read_text().splitlines()) if r["phase"] == "outcome"]
        assert actions.count("expire") == 1
        print(f"\nvendor block {block_s:.2f}s, release {release_s:.2f}s (msib contain, cisco_ios simulator)")
    finally:
        other.down()
    assert other.leftovers() == []
    assert lab.is_up()
