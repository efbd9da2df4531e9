"""Checks every appliance gets, whatever its role: SSH hardening basics, updates, its release's support, a baseline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from msib import releases
from msib.checks import check, parse_sshd_t, pending_upgrades, weak_ssh_algorithms
from msib.contract import Appliance

Evidence = Callable[[str], None]


def _sshd(host: Any, evidence: Evidence) -> dict[str, str]:
    # the effective settings as sshd itself resolves them (defaults, includes, Match), whatever
    # the release calls its files and processes (sshd-session logs the logins on Debian 13)
    out = host.run("/usr/sbin/sshd -T")
    assert out.rc == 0, f"sshd -T failed (exit {out.rc}): {out.stderr.strip()}"
    version = host.run("/usr/sbin/sshd -V 2>&1 | head -n 1")
    evidence(f"sshd -V: {version.stdout.strip() or version.stderr.strip()}")
    return parse_sshd_t(out.stdout)


@check("MSIB-HOST-001")
def test_ssh_keys_only(host: Any, evidence: Evidence) -> None:
    conf = _sshd(host, evidence)
    keys = ("pubkeyauthentication", "passwordauthentication", "kbdinteractiveauthentication", "permitemptypasswords")
    evidence("sshd -T: " + ", ".join(f"{k} {conf.get(k)}" for k in keys))
    assert conf.get("pubkeyauthentication") == "yes", "public key authentication is off"
    assert conf.get("passwordauthentication") == "no", "password authentication is on"
    assert conf.get("kbdinteractiveauthentication") == "no", "keyboard-interactive authentication is on"
    assert conf.get("permitemptypasswords") == "no", "empty passwords are permitted"


@check("MSIB-HOST-002")
def test_ssh_no_root_password_login(host: Any, evidence: Evidence) -> None:
    conf = _sshd(host, evidence)
    value = conf.get("permitrootlogin")
    evidence(f"sshd -T: permitrootlogin {value}")
    assert value in ("no", "prohibit-password", "without-password", "forced-commands-only"), \
        f"root may log in with a password (permitrootlogin {value})"


@check("MSIB-HOST-003")
def test_ssh_algorithms_and_tries(host: Any, evidence: Evidence) -> None:
    conf = _sshd(host, evidence)
    weak = weak_ssh_algorithms(conf)
    tries = int(conf.get("maxauthtries", "6"))
    evidence(f"sshd -T: maxauthtries {tries}")
    for key in ("ciphers", "macs", "kexalgorithms"):
        evidence(f"sshd -T: {key} {conf.get(key)}")
    assert not weak, f"broken algorithms offered: {weak}"
    assert tries <= 6, f"maxauthtries {tries} is more than 6"


@check("MSIB-HOST-004")
def test_no_pending_security_updates(host: Any, evidence: Evidence) -> None:
    sim = host.run("LC_ALL=C apt-get -s -o Debug::NoLocking=1 dist-upgrade")
    assert sim.rc == 0, f"apt-get -s dist-upgrade failed: {sim.stderr.strip()}"
    pending = pending_upgrades(sim.stdout)
    security = [p for p in pending if p["security"]]
    age = host.run("find /var/lib/apt/lists -maxdepth 1 -name '*InRelease' -printf '%TY-%Tm-%Td %TH:%TM\\n'"
                   " | sort | tail -n 1")
    evidence(f"package lists last updated: {age.stdout.strip() or 'never'}")
    evidence(f"pending upgrades: {len(pending)}, of which from the security archive: {len(security)}")
    for p in pending[:40]:
        evidence(f"  {p['package']} {p['installed']} -> {p['version']}{' (security)' if p['security'] else ''}")
    assert not security, f"{len(security)} security update(s) pending: " + \
        ", ".join(p["package"] for p in security[:20])


@check("MSIB-HOST-005")
def test_systemd_running(host: Any, evidence: Evidence) -> None:
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.run("systemctl list-units --state=failed --no-legend --plain").stdout.strip()
    evidence(f"systemctl is-system-running: {state}")
    evidence(f"failed units: {failed or 'none'}")
    assert not failed, f"failed units: {failed}"
    assert state == "running", f"system state is {state}"


@check("MSIB-HOST-006")
def test_root_filesystem_room(host: Any, evidence: Evidence) -> None:
    out = host.check_output("df -P / | tail -n 1")
    evidence(f"df -P /: {out}")
    used = int(out.split()[4].rstrip("%"))
    assert used < 90, f"/ is {used}% used"


@check("MSIB-HOST-007")
def test_release_in_regular_security_support(host: Any, appliance: Appliance, release: str,
                                             evidence: Evidence) -> None:
    pretty = host.run(". /etc/os-release && echo \"$PRETTY_NAME\"").stdout.strip()
    evidence(f"/etc/os-release: {pretty} (codename {release or 'none'})")
    if appliance.release:
        evidence(f"the site plan says: {appliance.release}")
    assert release in releases.codenames(), \
        f"{pretty or 'this system'} is not a Debian release msib supports ({', '.join(releases.codenames())})"
    today = dt.date.today()
    about = releases.get(release)
    evidence(about.describe(today) + f" (data: src/msib/data/debian_releases.yml, as of {today})")
    assert about.support(today) == "regular", about.describe(today)
