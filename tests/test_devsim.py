"""The IOS device simulator: the CLI it speaks (pure, line by line) and the device it is over real
SSH with real netmiko on 127.0.0.1 (login, enable, config modes, persistence, host key, secrets)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netmiko import ConnectHandler

from devsim_helpers import ENABLE, LOCALHOST, PASSWORD, USERNAME, DevSim
from msib.lab.devsim import CliSession, Device, Interface, type9_hash, type9_verify

ERROR_PATTERN = r"^%.*$"


# --- the CLI, line by line (no SSH) ------------------------------------------------------------


def _session(mode: str = "exec") -> CliSession:
    dev = Device(hostname="R1", enable_secret=type9_hash("en"))
    dev.interfaces["GigabitEthernet0/1"] = Interface("GigabitEthernet0/1")
    s = CliSession(dev, "u", privilege=15 if mode != "user" else 1)
    if mode == "config":
        s.handle("configure terminal")
    elif mode == "acl":
        s.handle("configure terminal")
        s.handle("ip access-list extended A")
    elif mode == "if":
        s.handle("configure terminal")
        s.handle("interface gi0/1")
    return s


INVALID = "% Invalid input detected at '^' marker.\n"

# (name, mode, line, exact output)
CLI_CASES = [
    ("invalid_keyword_caret_under_word", "exec", "show runing-config", " " * len("R1#show ") + "^\n" + INVALID),
    ("user_exec_has_no_configure", "user", "configure terminal", " " * 3 + "^\n" + INVALID),
    ("incomplete_show", "exec", "sh", "% Incomplete command.\n"),
    ("incomplete_configure", "exec", "conf", "% Incomplete command.\n"),
    ("ambiguous_prefix", "exec", "e", '% Ambiguous command:  "e"\n'),
    ("unknown_single_word", "exec", "frobnicate",
     "% Unknown command or computer name, or unable to find computer address\n"),
    ("bad_ip_caret_under_address", "config", "logging host 10.1.1.256",
     " " * len("R1(config)#logging host ") + "^\n" + INVALID),
    ("logging_host_incomplete", "config", "logging host", "% Incomplete command.\n"),
    ("ambiguous_level", "config", "logging trap e", '% Ambiguous command:  "logging trap e"\n'),
    ("bad_protocol_caret", "acl", "10 permit ipx any any",
     " " * len("R1(config-ext-nacl)#10 permit ") + "^\n" + INVALID),
    ("ace_missing_destination", "acl", "deny ip any", "% Incomplete command.\n"),
    ("bad_netmask", "if", "ip address 10.0.0.1 0.0.0.255", "% Bad mask 0xFF for address 10.0.0.1\n"),
    ("caret_after_do_prefix", "config", "do show runing-config", " " * len("R1(config)#do show ") + "^\n" + INVALID),
]


@pytest.mark.parametrize(("mode", "line", "expected"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_error_strings_are_the_ios_ones(mode: str, line: str, expected: str) -> None:
    s = _session(mode)
    assert s.handle(line).text == expected


def test_abbreviations_resolve_like_ios() -> None:
    s = _session("exec")
    assert s.handle("sh run").text.startswith("Building configuration...")
    assert s.handle("conf t").text.startswith("Enter configuration commands")
    assert s.prompt() == "R1(config)#"
    s.handle("logg trap warn")
    s.handle("ip access-l ext BLOCK")
    assert s.prompt() == "R1(config-ext-nacl)#"
    s.handle("per tcp any host 10.0.0.1 eq 80")
    s.handle("end")
    assert s.prompt() == "R1#"
    run = s.handle("show running-config").text
    assert "logging trap warnings\n" in run
    assert " 10 permit tcp any host 10.0.0.1 eq www\n" in run


def test_acl_entries_numbered_unnumbered_and_no_forms() -> None:
    s = _session("acl")
    s.handle("deny ip host 10.0.0.5 any log")          # unnumbered: 10
    s.handle("deny ip 10.1.1.77 0.0.0.255 any")          # host bits cleared by the wildcard: 20
    s.handle("5 permit icmp any any")
    assert s.handle("5 permit udp any any").text == "% Duplicate sequence number\n"
    s.handle("1000 permit ip any any")
    s.handle("deny ip host 10.0.0.5 any log")          # already there: ignored
    show = s.handle("do show ip access-lists A").text
    assert show == ("Extended IP access list A\n"
                    "    5 permit icmp any any\n"
                    "    10 deny ip host 10.0.0.5 any log\n"
                    "    20 deny ip 10.1.1.0 0.0.0.255 any\n"
                    "    1000 permit ip any any")
    s.handle("no 5")
    s.handle("no deny ip host 10.0.0.5 any log")
    run = s.handle("do show running-config").text
    # show run pads "deny" to the width of "permit", as IOS does
    assert "ip access-list extended A\n 20 deny   ip 10.1.1.0 0.0.0.255 any\n 1000 permit ip any any\n" in run


def test_global_command_leaves_the_acl_submode() -> None:
    s = _session("acl")
    assert s.handle("logging host 10.9.9.9").text == ""
    assert s.prompt() == "R1(config)#"
    assert "logging host 10.9.9.9\n" in s.handle("do show running-config").text


def test_logging_host_forms_and_no_forms() -> None:
    s = _session("config")
    s.handle("logging host 10.0.0.1")
    s.handle("logging host 10.0.0.2 transport tcp")
    s.handle("logging 10.0.0.3")
    s.handle("logging host 10.0.0.1 transport tcp port 514")   # replaces the entry for 10.0.0.1
    run = s.handle("do show running-config").text
    assert ("logging host 10.0.0.1 transport tcp port 514\nlogging host 10.0.0.2 transport tcp port 601\n"
            "logging host 10.0.0.3\n") in run
    s.handle("no logging host 10.0.0.1 transport udp")        # does not match: nothing removed
    s.handle("no logging host 10.0.0.2")
    s.handle("no logging 10.0.0.3")
    run = s.handle("do show running-config").text
    assert "logging host 10.0.0.1 transport tcp port 514\n!" in run
    assert "10.0.0.2" not in run and "10.0.0.3" not in run


def test_logging_trap_default_is_hidden() -> None:
    s = _session("config")
    s.handle("logging trap 4")
    assert "logging trap warnings\n" in s.handle("do show running-config").text
    s.handle("logging trap informational")
    assert "logging trap" not in s.handle("do show running-config").text


def test_enable_secret_three_tries_then_bad_secrets() -> None:
    s = _session("user")
    s.handle("enable")
    assert s.prompt() == "Password: " and not s.echo
    assert s.handle("wrong").text == ""
    assert s.handle("").text == ""
    assert s.handle("again").text == "% Bad secrets\n"
    assert s.prompt() == "R1>"
    s.handle("enable")
    s.handle("en")
    assert s.prompt() == "R1#"


def test_type9_secret_roundtrip() -> None:
    stored = type9_hash("s3cret")
    assert stored.startswith("$9$") and len(stored) == 3 + 14 + 1 + 43
    assert type9_verify("s3cret", stored)
    assert not type9_verify("s3creT", stored)


# --- the device over SSH ------------------------------------------------------------------------


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[DevSim]:
    s = DevSim(tmp_path / "state").start()
    yield s
    s.stop()


def _connect(sim: DevSim, tmp_path: Path, **extra: object) -> object:
    kh = sim.write_known_hosts(tmp_path / "known_hosts")
    params: dict[str, object] = {
        "device_type": "cisco_ios", "host": LOCALHOST, "port": sim.port, "username": USERNAME,
        "password": PASSWORD, "secret": ENABLE, "ssh_strict": True, "system_host_keys": False,
        "alt_host_keys": True, "alt_key_file": str(kh), "use_keys": False, "allow_agent": False,
    }
    params.update(extra)
    return ConnectHandler(**params)


def test_netmiko_logs_in_to_user_exec_and_enables(sim: DevSim, tmp_path: Path) -> None:
    conn: ConnectHandler = _connect(sim, tmp_path)
    try:
        assert conn.find_prompt() == "fw-ext-1>"
        assert conn.base_prompt == "fw-ext-1"
        conn.enable()
        assert conn.find_prompt() == "fw-ext-1#"
        assert "Current privilege level is 15" in conn.send_command("show privilege")
    finally:
        conn.disconnect()


def test_rejected_line_is_seen_with_error_pattern_and_caret_is_under_the_word(sim: DevSim, tmp_path: Path) -> None:
    from netmiko.exceptions import ConfigInvalidException

    conn: ConnectHandler = _connect(sim, tmp_path)
    try:
        conn.enable()
        out = conn.send_config_set(["logging host 10.2.2.2", "logging hots 1.1.1.1"])
        echoed = "fw-ext-1(config)#logging hots 1.1.1.1\n"
        assert echoed in out
        caret_line = out.split(echoed, 1)[1].splitlines()[0]
        assert caret_line == " " * len("fw-ext-1(config)#logging ") + "^"
        with pytest.raises(ConfigInvalidException, match="logging hots"):
            conn.send_config_set(["logging hots 1.1.1.1"], error_pattern=ERROR_PATTERN)
    finally:
        conn.disconnect()


def test_config_mode_acl_submode_and_save(sim: DevSim, tmp_path: Path) -> None:
    conn: ConnectHandler = _connect(sim, tmp_path)
    try:
        conn.enable()
        conn.send_config_set(["ip access-list extended MSIB-CONTAIN", " 10 deny ip host 198.18.32.66 any log",
                              "1000000 permit ip any any", "logging host 198.18.32.10 transport tcp port 514"],
                             error_pattern=ERROR_PATTERN)
        assert conn.find_prompt() == "fw-ext-1#"
        acl = conn.send_command("show ip access-lists MSIB-CONTAIN")
        assert "10 deny ip host 198.18.32.66 any log" in acl
        assert "startup-config is not present" in conn.send_command("show startup-config")
        assert "[OK]" in conn.save_config()
        startup = conn.send_command("show startup-config")
        assert startup.startswith("Using ")
        assert "logging host 198.18.32.10 transport tcp port 514" in startup
        assert "! NVRAM config last updated at" in startup
        out = conn.send_command("copy running-config startup-config", expect_string=r"Destination filename")
        out += conn.send_command("\n", expect_string=r"#")
        assert "[OK]" in out
    finally:
        conn.disconnect()


def test_running_and_startup_persist_across_restarts(tmp_path: Path) -> None:
    sim = DevSim(tmp_path / "state").start()
    try:
        conn: ConnectHandler = _connect(sim, tmp_path)
        conn.enable()
        conn.send_config_set(["logging host 10.3.3.3"], error_pattern=ERROR_PATTERN)
        conn.save_config()
        conn.send_config_set(["logging host 10.4.4.4"], error_pattern=ERROR_PATTERN)   # not saved
        conn.disconnect()
    finally:
        sim.stop()
    fingerprint = sim.fingerprint
    # a process restart keeps the running config (the device did not reload)
    sim.start()
    try:
        assert sim.fingerprint == fingerprint
        conn = _connect(sim, tmp_path)
        conn.enable()
        run = conn.send_command("show running-config")
        assert "logging host 10.3.3.3" in run and "logging host 10.4.4.4" in run
        conn.disconnect()
    finally:
        sim.stop()
    # a reload boots from startup-config: the unsaved line is gone
    sim.start(reload=True)
    try:
        conn = _connect(sim, tmp_path)
        conn.enable()
        run = conn.send_command("show running-config")
        assert "logging host 10.3.3.3" in run and "logging host 10.4.4.4" not in run
        conn.disconnect()
    finally:
        sim.stop()
    assert (sim.state / "ssh_host_ed25519_key").stat().st_mode & 0o077 == 0


def test_host_key_is_generated_once_per_state_dir(tmp_path: Path) -> None:
    a = DevSim(tmp_path / "a").start()
    a.stop()
    b = DevSim(tmp_path / "b").start()
    b.stop()
    assert a.fingerprint.startswith("SHA256:") and a.fingerprint != b.fingerprint
    key_a = (tmp_path / "a" / "ssh_host_ed25519_key").read_bytes()
    a.start()
    a.stop()
    assert (tmp_path / "a" / "ssh_host_ed25519_key").read_bytes() == key_a


def test_secrets_come_from_the_environment_not_argv(sim: DevSim) -> None:
    assert sim.proc is not None
    cmdline = Path(f"/proc/{sim.proc.pid}/cmdline").read_bytes().decode()
    assert PASSWORD not in cmdline and ENABLE not in cmdline
    assert "--password-env" in cmdline
    # nor in the stored config (only type 9 hashes) or the log
    stored = (sim.state / "running-config").read_text()
    assert PASSWORD not in stored and ENABLE not in stored and "secret 9 $9$" in stored
    assert PASSWORD not in sim.stderr()


def test_missing_secret_variable_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_SECRET_VAR"}
    proc = subprocess.run(
        [sys.executable, "-m", "msib.lab.devsim", "--state", str(tmp_path / "s"), "--password-env",
         "NO_SUCH_SECRET_VAR", "--enable-env", "NO_SUCH_SECRET_VAR"],
        env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "NO_SUCH_SECRET_VAR is not set" in proc.stderr


def test_a_stored_config_the_device_refuses_stops_the_boot(tmp_path: Path) -> None:
    state = tmp_path / "s"
    state.mkdir()
    (state / "running-config").write_text("hostname r1\nlogging host 10.0.0.1\nfrobnicate all\nend\n")
    sim = DevSim(state)
    with pytest.raises(RuntimeError, match="did not start"):
        sim.start()
    assert "running-config:3" in sim.stderr() and "frobnicate all" in sim.stderr()


def test_wrong_password_is_refused_by_ssh(sim: DevSim, tmp_path: Path) -> None:
    from netmiko.exceptions import NetmikoAuthenticationException

    with pytest.raises(NetmikoAuthenticationException):
        _connect(sim, tmp_path, password="not-the-password")
    assert "login refused for 'msib'" in sim.stderr()
