"""`msib device ...` as a user runs it: a real process, a hosts.yml written by the real inventory
builder, two IOS simulators on 127.0.0.1, credentials in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devsim_helpers import ENABLE, LOCALHOST, PASSWORD, USERNAME, DevSim
from inventory_helpers import write_inventory
from msib.site import parse_site

MSIB = [sys.executable, "-c", "from msib.cli import main; main()"]
COLLECTOR = "127.0.0.10"   # written into device configs as the syslog target; never contacted


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[DevSim, DevSim]]:
    a = DevSim(tmp_path / "fw-a", hostname="fw-a").start()
    b = DevSim(tmp_path / "fw-b", hostname="fw-b").start()
    yield a, b
    a.stop()
    b.stop()


def _inventory(tmp_path: Path, sims: tuple[DevSim, ...], *, pin: bool = True) -> Path:
    known_hosts = tmp_path / "known_hosts"
    if pin:
        known_hosts.write_text("".join(f"[{LOCALHOST}]:{s.port} {s.public_key()}\n" for s in sims))
    # The site plan wants a distinct management address per appliance; the tests connect to
    # 127.0.0.1 only, so every simulator's address is mapped back to it after the build (as if
    # each device sat behind its own forwarded port). The collector address is data only.
    plan = parse_site({
        "state_body": "Test body", "code": "lab",
        "siem": {"syslog": {"host": LOCALHOST}},
        "circuits": {"internal": {"networks": ["127.0.0.0/8"], "appliances": [
            {"name": "col-int-1", "role": "collector", "address": COLLECTOR},
            *({"name": s.hostname, "role": "firewall", "address": f"127.0.0.{i + 1}", "platform": "cisco_ios",
               "port": s.port} for i, s in enumerate(sims)),
        ]}},
    }, "test")
    return write_inventory(tmp_path / "inventory", plan, known_hosts=known_hosts, netdev_address=LOCALHOST)


def _msib(*args: str, tmp_path: Path, creds: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MSIB_DEVICE_")}
    env["MSIB_BACKUP_DIR"] = str(tmp_path / "backups")
    env["COLUMNS"] = "200"
    if creds:
        env.update(MSIB_DEVICE_USERNAME=USERNAME, MSIB_DEVICE_PASSWORD=PASSWORD, MSIB_DEVICE_ENABLE=ENABLE)
    return subprocess.run([*MSIB, "device", *args], env=env, capture_output=True, text=True, timeout=120)


def test_backup_configure_check_over_the_inventory(two: tuple[DevSim, DevSim], tmp_path: Path) -> None:
    inv = _inventory(tmp_path, two)
    backup = _msib("backup", "-i", str(inv), "--json", tmp_path=tmp_path)
    assert backup.returncode == 0, backup.stderr
    data = json.loads(backup.stdout)
    assert [d["device"] for d in data["devices"]] == ["fw-a", "fw-b"]
    for name in ("fw-a", "fw-b"):
        assert f"hostname {name}\n" in (tmp_path / "backups" / "lab" / f"{name}.cfg").read_text()

    before = _msib("check", "-i", str(inv), tmp_path=tmp_path)
    assert before.returncode == 1
    assert "FAIL: no logging to 127.0.0.10" in before.stdout

    dry = _msib("configure-logging", "-i", str(inv), "--check", "--json", tmp_path=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert all(d["result"]["dry_run"] and d["result"]["lines"] == ["logging host 127.0.0.10 transport tcp port 514"]
               for d in json.loads(dry.stdout)["devices"])
    assert _msib("check", "-i", str(inv), tmp_path=tmp_path).returncode == 1   # --check changed nothing

    first = _msib("configure-logging", "-i", str(inv), "--json", tmp_path=tmp_path)
    second = _msib("configure-logging", "-i", str(inv), "--json", tmp_path=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert [d["result"]["changed"] for d in json.loads(first.stdout)["devices"]] == [True, True]
    assert [d["result"]["changed"] for d in json.loads(second.stdout)["devices"]] == [False, False]

    after = _msib("check", "-i", str(inv), "--json", tmp_path=tmp_path)
    assert after.returncode == 0, after.stdout
    assert [d["result"]["evidence"] for d in json.loads(after.stdout)["devices"]] == [
        ["logging host 127.0.0.10 transport tcp port 514"]] * 2


def test_one_device_with_a_wrong_key_fails_alone(two: tuple[DevSim, DevSim], tmp_path: Path) -> None:
    a, b = two
    inv = _inventory(tmp_path, two)
    (tmp_path / "known_hosts").write_text(f"[{LOCALHOST}]:{a.port} {b.public_key()}\n"
                                          f"[{LOCALHOST}]:{b.port} {b.public_key()}\n")
    run = _msib("backup", "-i", str(inv), "--json", tmp_path=tmp_path)
    assert run.returncode == 1
    outcome = {d["device"]: d for d in json.loads(run.stdout)["devices"]}
    assert outcome["fw-a"]["error"] == "HostKeyMismatch" and "HOST KEY MISMATCH" in outcome["fw-a"]["summary"]
    assert outcome["fw-b"]["ok"] is True
    assert not (tmp_path / "backups" / "lab" / "fw-a.cfg").exists()
    assert (tmp_path / "backups" / "lab" / "fw-b.cfg").exists()


def test_missing_credentials_exit_2_before_any_connection(two: tuple[DevSim, DevSim], tmp_path: Path) -> None:
    inv = _inventory(tmp_path, two)
    run = _msib("backup", "-i", str(inv), tmp_path=tmp_path, creds=False)
    assert run.returncode == 2
    assert "no device credentials" in run.stderr and "Traceback" not in run.stderr
    assert all("Accepted SSH client connection" not in s.stderr() for s in two)


def test_unknown_limit_exits_2(two: tuple[DevSim, DevSim], tmp_path: Path) -> None:
    inv = _inventory(tmp_path, two)
    run = _msib("check", "-i", str(inv), "--limit", "fw-a,fw-zz", tmp_path=tmp_path)
    assert run.returncode == 2
    assert "not a vendor firewall of the inventory: fw-zz" in run.stderr


def test_trust_shows_the_fingerprint_then_pins_only_a_matching_one(two: tuple[DevSim, DevSim],
                                                                    tmp_path: Path) -> None:
    a, _ = two
    inv = _inventory(tmp_path, two, pin=False)
    kh = tmp_path / "known_hosts"
    look = _msib("trust", "-i", str(inv), "--limit", "fw-a", tmp_path=tmp_path)
    assert look.returncode == 1 and a.fingerprint in look.stdout and "nothing written" in look.stdout
    assert not kh.exists()
    wrong = _msib("trust", "-i", str(inv), "--limit", "fw-a", "--fingerprint", "SHA256:x", tmp_path=tmp_path)
    assert wrong.returncode == 1 and not kh.exists()
    pin = _msib("trust", "-i", str(inv), "--limit", "fw-a", "--fingerprint", a.fingerprint, tmp_path=tmp_path)
    assert pin.returncode == 0 and "pinned" in pin.stdout
    assert kh.read_text() == f"[{LOCALHOST}]:{a.port} {a.public_key()}\n"
    run = _msib("backup", "-i", str(inv), "--limit", "fw-a", tmp_path=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
