"""msib.netdev over real netmiko and real SSH to the IOS simulator on 127.0.0.1.

Each test gets a fresh simulator (its own state directory, host key and port)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devsim_helpers import ENABLE, LOCALHOST, PASSWORD, DevSim, credentials, netdevice
from msib.errors import DeviceError, InputError
from msib.netdev import (
    CONTAIN_ACL,
    ConfigRejected,
    DeviceAuthError,
    DeviceCredentials,
    DeviceTarget,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyMismatch,
    HostKeyUnknown,
    LoggingTarget,
    NetDevice,
    ioscfg,
    scan_host_key,
    trust_host_key,
)
from msib.secrets import Secret

COLLECTOR = LoggingTarget(ipaddress.ip_address("198.18.32.10"))


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[DevSim]:
    s = DevSim(tmp_path / "state").start()
    yield s
    s.stop()


def _tree(text: str) -> tuple[ioscfg.Block, ...]:
    return ioscfg.parse_tree(text)


# --- connect ------------------------------------------------------------------------------------


def test_constructor_only_stores_settings(tmp_path: Path) -> None:
    # nothing listens on this port, no known_hosts exists: constructing must not touch either
    dev = NetDevice(DeviceTarget("fw", LOCALHOST, 9), credentials(), known_hosts=tmp_path / "none",
                    backup_dir=tmp_path / "b")
    assert dev.backup_path == tmp_path / "b" / "default" / "fw.cfg"
    assert not (tmp_path / "b").exists()
    with pytest.raises(DeviceError, match="not connected"):
        dev.running_config()


def test_login_and_enable_reach_privileged_exec_without_logging_secrets(
        sim: DevSim, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with netdevice(sim, tmp_path) as dev:
        assert dev._conn.find_prompt() == "fw-ext-1#"
        assert "hostname fw-ext-1" in dev.running_config()
    assert dev._conn is None
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "connecting to 127.0.0.1" in text
    assert PASSWORD not in text and ENABLE not in text
    assert PASSWORD not in repr(dev) and "Secret('********')" in repr(dev)


def test_wrong_password_is_a_clear_auth_error(sim: DevSim, tmp_path: Path) -> None:
    refused = r"fw-ext-1 \(127\.0\.0\.1:\d+\): login refused for user 'msib'"
    with pytest.raises(DeviceAuthError, match=refused), netdevice(sim, tmp_path, password="wrong-password"):
        pass


def test_wrong_enable_secret_is_a_clear_auth_error_quickly(sim: DevSim, tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DeviceAuthError, match="enable secret was refused"), netdevice(sim, tmp_path,
                                                                                      enable="wrong-enable"):
        pass
    assert time.monotonic() - start < 5
    assert "enable refused" in sim.stderr()


def test_no_enable_secret_while_login_lands_in_user_exec(sim: DevSim, tmp_path: Path) -> None:
    with pytest.raises(DeviceAuthError, match="MSIB_DEVICE_ENABLE"), netdevice(sim, tmp_path, enable=None):
        pass


def test_wrong_host_key_is_refused_before_login(sim: DevSim, tmp_path: Path) -> None:
    other = DevSim(tmp_path / "other-state").start()
    other.stop()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{LOCALHOST}]:{sim.port} {other.public_key()}\n")
    with pytest.raises(HostKeyMismatch) as err, netdevice(sim, tmp_path, known_hosts=kh):
        pass
    assert sim.fingerprint in str(err.value) and other.fingerprint in str(err.value)
    assert "HOST KEY MISMATCH" in str(err.value)
    log = sim.stderr()
    assert "Accepted SSH client connection" in log
    assert "Beginning auth" not in log and "login " not in log


def test_unknown_host_key_is_refused(sim: DevSim, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{LOCALHOST}]:1 {sim.public_key()}\n")   # pinned for another port only
    with pytest.raises(HostKeyUnknown, match="msib device trust"), netdevice(sim, tmp_path, known_hosts=kh):
        pass
    missing = tmp_path / "missing"
    with pytest.raises(HostKeyUnknown, match="no known_hosts file"), netdevice(sim, tmp_path, known_hosts=missing):
        pass
    assert "Beginning auth" not in sim.stderr()


def test_connection_refused_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        port = s.getsockname()[1]
    kh = tmp_path / "kh"
    kh.write_text("")
    dev = NetDevice(DeviceTarget("fw", LOCALHOST, port), credentials(), known_hosts=kh, backup_dir=tmp_path)
    with pytest.raises(DeviceUnreachable, match="connection refused"), dev:
        pass


def test_silent_device_is_a_timeout(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind((LOCALHOST, 0))
    server.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    kh = tmp_path / "kh"
    kh.write_text("")
    dev = NetDevice(DeviceTarget("fw", LOCALHOST, server.getsockname()[1]), credentials(), known_hosts=kh,
                    backup_dir=tmp_path, timeout=1.5)
    start = time.monotonic()
    try:
        with pytest.raises(DeviceTimeout), dev:
            pass
        assert time.monotonic() - start < 10
    finally:
        for c in accepted:
            c.close()
        server.close()


# --- first contact ------------------------------------------------------------------------------


def test_first_contact_pins_the_checked_fingerprint_only(sim: DevSim, tmp_path: Path) -> None:
    key = scan_host_key(LOCALHOST, sim.port)
    assert key.fingerprint == sim.fingerprint
    kh = tmp_path / "known_hosts"
    with pytest.raises(HostKeyMismatch, match="nothing written"):
        trust_host_key(kh, key, "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert not kh.exists()
    assert trust_host_key(kh, key, sim.fingerprint) is True
    assert trust_host_key(kh, key, sim.fingerprint) is False
    assert kh.read_text() == f"[{LOCALHOST}]:{sim.port} {sim.public_key()}\n"
    with netdevice(sim, tmp_path, known_hosts=kh) as dev:
        assert dev.running_config()


# --- backup -------------------------------------------------------------------------------------


def test_backup_is_per_site_diffable_masked_and_rewritten_only_on_change(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        first = dev.backup()
        text = first.path.read_text()
        second = dev.backup()
        pushed = dev.push(["logging host 10.7.7.7"])       # backs up first: unchanged since `second`
        third = dev.backup()
    assert first.path == tmp_path / "backups" / "lab" / "fw-ext-1.cfg"
    assert pushed.backup == first.path
    assert (first.changed, second.changed, third.changed) == (True, False, True)
    assert first.sha256 == second.sha256 != third.sha256
    assert "logging host 10.7.7.7\n" in first.path.read_text()
    assert "hostname fw-ext-1\n" in text and "logging host 10.7.7.7" not in text
    assert "Building configuration" not in text and "Last configuration change" not in text
    assert "\r" not in text and "$9$" not in text and "secret 9 <masked by msib>" in text
    assert [p.name for p in first.path.parent.iterdir()] == ["fw-ext-1.cfg"]   # no temp files left
    # the device's whole configuration: readable by its owner only
    assert oct(first.path.stat().st_mode & 0o777) == "0o600"
    assert oct(first.path.parent.stat().st_mode & 0o777) == oct((tmp_path / "backups").stat().st_mode & 0o777) \
        == "0o700"


# --- logging ------------------------------------------------------------------------------------


def test_configure_logging_then_second_run_changes_nothing(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        dev.push(["logging trap warnings", "logging host 198.18.32.10"])
        first = dev.configure_logging([COLLECTOR])
        second = dev.configure_logging([COLLECTOR])
        running = dev.running_config()
        startup = dev.startup_config()
    assert first.changed and first.saved
    assert first.lines == ("logging host 198.18.32.10 transport tcp port 514", "logging trap informational")
    assert first.backup is not None and "logging trap warnings" in first.backup.read_text()
    assert not second.changed and second.lines == () and not second.saved
    for text in (running, startup):
        state = ioscfg.logging_state(_tree(text))
        assert state.trap == "informational"
        assert [h.line() for h in state.hosts] == ["logging host 198.18.32.10 transport tcp port 514"]


def test_configure_logging_dry_run_changes_nothing(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        before = dev.running_config()
        result = dev.configure_logging([COLLECTOR], dry_run=True)
        after = dev.running_config()
    assert result.dry_run and result.changed and result.lines == ("logging host 198.18.32.10 transport tcp port 514",)
    assert _tree(before) == _tree(after)
    assert not (tmp_path / "backups").exists()
    assert not (sim.state / "startup-config").exists()   # nothing saved either


def test_check_logging_fails_then_passes_with_evidence(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        missing = dev.check_logging([COLLECTOR])
        dev.configure_logging([COLLECTOR])
        ok = dev.check_logging([COLLECTOR])
        # configured by hand and not saved: passes in running-config only
        dev._conn.send_config_set(["logging host 198.18.32.11 transport tcp port 514", "logging trap errors"],
                                  error_pattern=r"^%.*$")
        other = LoggingTarget(ipaddress.ip_address("198.18.32.11"))
        unsaved = dev.check_logging([COLLECTOR, other])
    assert not missing.passed
    assert missing.problems == ("no logging to 198.18.32.10 (want `logging host 198.18.32.10 transport tcp port 514`)",)
    assert missing.evidence == ("(no logging lines in running-config)",)
    assert ok.passed and ok.problems == ()
    assert ok.evidence == ("logging host 198.18.32.10 transport tcp port 514",)
    assert not unsaved.passed
    assert any("198.18.32.11 transport tcp port 514` is not saved" in p for p in unsaved.problems)
    assert any("logging trap errors drops informational" in p for p in unsaved.problems)
    assert "logging trap errors" in unsaved.evidence


def test_check_logging_fails_on_wrong_transport(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        dev.push(["logging host 198.18.32.10"])
        result = dev.check_logging([COLLECTOR])
    assert not result.passed
    assert result.problems == ("logging to 198.18.32.10 is `logging host 198.18.32.10`, want "
                               "`logging host 198.18.32.10 transport tcp port 514`",)


# --- containment --------------------------------------------------------------------------------


def test_block_and_unblock_are_idempotent(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        b1 = dev.block("198.18.32.66")
        b2 = dev.block("198.18.32.66")
        b3 = dev.block(ipaddress.ip_network("198.18.33.0/24"))
        blocked = dev.blocks()
        acl = dev._conn.send_command(f"show ip access-lists {CONTAIN_ACL}")
        u1 = dev.unblock("198.18.32.66")
        u2 = dev.unblock("198.18.32.66")
        after = dev.blocks()
        startup = dev.startup_config()
    assert b1.changed and b1.saved and not b2.changed and b2.lines == () and b3.changed
    assert b1.lines == (f"ip access-list extended {CONTAIN_ACL}", " 10 deny ip host 198.18.32.66 any log",
                        " 20 deny ip any host 198.18.32.66 log", " 1000000 permit ip any any")
    assert b3.lines[1:] == (" 30 deny ip 198.18.33.0 0.0.0.255 any log", " 40 deny ip any 198.18.33.0 0.0.0.255 log")
    assert [str(n) for n in blocked] == ["198.18.32.66/32", "198.18.33.0/24"]
    assert acl.splitlines() == [
        f"Extended IP access list {CONTAIN_ACL}",
        "    10 deny ip host 198.18.32.66 any log", "    20 deny ip any host 198.18.32.66 log",
        "    30 deny ip 198.18.33.0 0.0.0.255 any log", "    40 deny ip any 198.18.33.0 0.0.0.255 log",
        "    1000000 permit ip any any"]
    assert u1.changed and u1.lines == (f"ip access-list extended {CONTAIN_ACL}", " no 10", " no 20")
    assert not u2.changed
    assert [str(n) for n in after] == ["198.18.33.0/24"]
    assert "198.18.32.66" not in startup and "30 deny   ip 198.18.33.0 0.0.0.255 any log" in startup


def test_acl_bindings_show_where_the_containment_acl_applies(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        dev.block("198.18.32.66")
        assert dev.acl_bindings() == ()
        dev.push(["interface GigabitEthernet0/1", " ip access-group MSIB-CONTAIN in"])
        assert dev.acl_bindings() == (("GigabitEthernet0/1", "in"),)


def test_bad_block_input_is_refused_before_any_io(tmp_path: Path) -> None:
    dev = NetDevice(DeviceTarget("fw", LOCALHOST, 9), credentials(), known_hosts=tmp_path / "kh",
                    backup_dir=tmp_path)
    with pytest.raises(InputError, match="IPv4 only"):
        dev.block("2001:db8::1")
    with pytest.raises(InputError, match="not a usable ACL name"):
        dev.block("10.0.0.1", acl="bad name")


# --- a change that fails mid-way ----------------------------------------------------------------


def test_rejected_line_is_named_and_the_change_reverted_from_the_backup(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        dev.configure_logging([COLLECTOR])
        startup_before = dev.startup_config()
        lines = ["logging host 198.18.32.99", "logging trap debugging", "ip access-list extended MSIB-CONTAIN",
                 " 10 deny ip host 198.18.32.77 any log", "logging hots 198.18.32.98", "logging host 198.18.32.97"]
        with pytest.raises(ConfigRejected) as err:
            dev.push(lines)
        running_after = dev.running_config()
        startup_after = dev.startup_config()
        assert dev._conn.find_prompt() == "fw-ext-1#"
    exc = err.value
    assert exc.line == "logging hots 198.18.32.98"
    assert "rejected 'logging hots 198.18.32.98'" in str(exc) and "Invalid input detected" in str(exc)
    assert exc.backup == tmp_path / "backups" / "lab" / "fw-ext-1.cfg"
    backup = exc.backup.read_text()
    assert _tree(running_after) == _tree(backup)                 # running config equals the backup
    assert "198.18.32.99" not in running_after and "MSIB-CONTAIN" not in running_after
    assert "198.18.32.97" not in running_after                   # nothing after the rejected line
    assert _tree(startup_after) == _tree(startup_before)         # nothing was saved
    assert "no logging trap debugging" in sim.stderr()            # the revert went to the device


def test_rejected_acl_entry_inside_the_submode_is_reverted(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        dev.block("198.18.32.66")
        before = dev.running_config()
        with pytest.raises(ConfigRejected) as err:
            dev.push(["ip access-list extended MSIB-CONTAIN", " 30 deny ip host 198.18.32.67 any log",
                      " no 10", " 40 deny ipx host 198.18.32.68 any"])
        after = dev.running_config()
        blocked = dev.blocks()
    assert err.value.line == "40 deny ipx host 198.18.32.68 any"
    assert _tree(after) == _tree(before)
    assert [str(n) for n in blocked] == ["198.18.32.66/32"]
    # entry 10 came back at its own sequence number, before 20 and the final permit
    entries = ioscfg.acl_entries(_tree(after), CONTAIN_ACL)
    assert entries is not None and [e.seq for e in entries] == [10, 20, 1000000]


def test_restore_brings_back_the_backup(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        saved = dev.backup()
        dev._conn.send_config_set(["logging host 10.1.1.1", "logging trap alerts", "hostname fw-renamed"],
                                  error_pattern=r"^%.*$")
        dev._conn.set_base_prompt()
        result = dev.restore()
        again = dev.restore()
        running = dev.running_config()
    assert result.changed and result.saved
    assert set(result.lines) == {"no logging host 10.1.1.1", "no logging trap alerts", "no hostname fw-renamed",
                                 "hostname fw-ext-1"}
    assert not again.changed
    assert _tree(running) == _tree(saved.path.read_text())
    assert (saved.path.parent / "fw-ext-1.before-restore.cfg").exists()


# --- credentials ----------------------------------------------------------------------------------


def test_credentials_from_env_are_masked() -> None:
    env = {"MSIB_DEVICE_USERNAME": "ops", "MSIB_DEVICE_PASSWORD": "pw-1", "MSIB_DEVICE_ENABLE": "en-1"}
    creds = DeviceCredentials.resolve(env=env)
    assert creds.username == "ops" and creds.password == Secret("pw-1") and creds.enable == Secret("en-1")
    assert "pw-1" not in repr(creds) and "en-1" not in f"{creds}"
    with pytest.raises(InputError, match="MSIB_DEVICE_PASSWORD"):
        DeviceCredentials.resolve(env={"MSIB_DEVICE_USERNAME": "ops"})


def test_credentials_from_ansible_vault(tmp_path: Path) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(b"vault-pw"))])
    (tmp_path / "vault.yml").write_bytes(vault.encrypt(
        "msib_device_username: ops\nmsib_device_password: pw-2\nmsib_device_enable: en-2\n"))
    (tmp_path / "pw").write_text("vault-pw\n")
    creds = DeviceCredentials.resolve(tmp_path / "vault.yml", tmp_path / "pw", env={})
    assert (creds.username, creds.password.unmask(), creds.enable and creds.enable.unmask()) == ("ops", "pw-2", "en-2")
    (tmp_path / "wrong").write_text("nope\n")
    with pytest.raises(InputError, match="cannot decrypt"):
        DeviceCredentials.resolve(tmp_path / "vault.yml", tmp_path / "wrong", env={})
    (tmp_path / "plain.yml").write_text("msib_device_username: ops\nmsib_device_password: pw\n")
    with pytest.raises(InputError, match="not an ansible-vault file"):
        DeviceCredentials.resolve(tmp_path / "plain.yml", tmp_path / "pw", env={})


def test_privilege_15_login_needs_no_enable_secret(sim: DevSim, tmp_path: Path) -> None:
    with netdevice(sim, tmp_path) as dev:
        dev.push(["username admin privilege 15 secret 0 Adm1n-pw"])
    admin = NetDevice(sim.target(), DeviceCredentials("admin", Secret("Adm1n-pw")),
                      known_hosts=tmp_path / "known_hosts", backup_dir=tmp_path / "backups")
    with admin as dev:
        assert dev._conn.find_prompt() == "fw-ext-1#"
        assert "username admin privilege 15 secret 9 $9$" in dev.running_config()
    assert "Adm1n-pw" not in (sim.state / "running-config").read_text()
