"""Units behind `msib update`: the lock, rule sources and their cache, the nightly timer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from msib import update as up
from msib.errors import InputError


def test_a_second_lock_holder_is_refused_with_exit_75(tmp_path: Path) -> None:
    lock = tmp_path / "update.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from msib.update import update_lock\n"
        f"with update_lock(Path({str(lock)!r})):\n    print('held', flush=True); sys.stdin.read()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(up.UpdateLocked) as info, up.update_lock(lock):
            pass
        assert info.value.exit_code == 75 and f"pid {holder.pid}" in str(info.value)
    finally:
        holder.communicate("", timeout=30)
    with up.update_lock(lock):  # released when its holder ended
        pass


def test_a_symlink_at_the_lock_path_is_refused_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    lock = tmp_path / "update.lock"
    lock.symlink_to(victim)  # /run/lock is world-writable: anyone can plant this
    with pytest.raises(InputError, match="symbolic link"), up.update_lock(lock):
        pass
    assert victim.read_text() == "precious\n"


def test_fetch_ruleset_verifies_checksums_and_uses_the_cache(tmp_path: Path) -> None:
    src, cache = tmp_path / "src", tmp_path / "cache"
    up.publish_ruleset(src, "7.0", "v1", {"a.rules": "alert tcp any any -> any any (sid:1;)\n"})
    rs, cached = up.fetch_ruleset(str(src), "7.0", cache)
    assert (rs.version, cached, rs.rule_lines()) == ("v1", False, 1)
    assert up.fetch_ruleset(str(src), "7.0", cache)[1] is True
    assert rs.bundle().startswith(b"# msib rule set v1 for suricata-7.0")
    (src / "suricata-7.0" / "v1" / "a.rules").write_text("tampered\n")
    (cache / "suricata-7.0" / "v1" / "a.rules").unlink()
    with pytest.raises(up.UpdateError, match="refusing it"):
        up.fetch_ruleset(str(src), "7.0", cache)


def test_publish_ruleset_refuses_path_tricks(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        up.publish_ruleset(tmp_path, "7.0", "../x", {"a.rules": ""})


def test_install_timer_writes_units_that_systemd_accepts(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yml").write_text("all: {children: {}}\n")
    paths = up.install_timer(inv, args=["--rules"], unit_dir=tmp_path / "units", env_file=tmp_path / "update.env",
                             msib="/usr/bin/true", enable=False)
    service = Path(paths["service"]).read_text()
    assert "ExecStart=/usr/bin/true update --inventory ${MSIB_INVENTORY} $MSIB_UPDATE_ARGS --json" in service
    assert "SuccessExitStatus=75" in service and f"EnvironmentFile={tmp_path / 'update.env'}" in service
    assert f"MSIB_INVENTORY={inv}" in (tmp_path / "update.env").read_text()
    assert "OnCalendar=" in Path(paths["timer"]).read_text()
    (tmp_path / "update.env").touch()
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", paths["timer"], paths["service"]],
                          capture_output=True, text=True, cwd=tmp_path / "units")
    complaints = [ln for ln in proc.stderr.splitlines() if "msib-update" in ln]
    assert proc.returncode == 0 and not complaints, proc.stderr
    # the same verification notices a broken unit (so the assertion above can fail)
    Path(paths["service"]).write_text(service.replace("Type=oneshot", "Type=bogus"))
    bad = subprocess.run(["systemd-analyze", "verify", "--man=no", paths["service"]], capture_output=True, text=True)
    assert "Failed to parse service type" in bad.stderr
