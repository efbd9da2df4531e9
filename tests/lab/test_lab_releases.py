"""Debian 12 and 13 side by side on the lab: what differs between them, proven on the real hosts.

- The apt preflight of `msib update --packages`: Debian 13's apt refuses a repository whose key is
  bound with SHA-1 (Debian 12's still takes it); the run reports the repository and why, and
  upgrades nothing anywhere: a host with an upgrade pending keeps it.
- Suricata 7 on Debian 13 (from trixie main) as well as the lab's Suricata 8 (trixie-backports);
  a sensor whose installed major is not the inventory's fails the deploy loudly, on both engines.
"""

from __future__ import annotations

import functools
import io
import json
import shlex
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ssh
from msib.engines.deploy import run_deploy
from msib.lab import Lab

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
MSIB = str(REPO / ".venv" / "bin" / "msib")
LAB_VARS = REPO / "playbooks" / "vars" / "lab.yml"
OLD, NEW = "col-int-1", "col-ext-1"  # Debian 12, Debian 13
REPO_DIR, KEYRING, SOURCE = "/srv/msib-test-sha1", "/etc/apt/keyrings/msib-test-sha1.gpg", \
    "/etc/apt/sources.list.d/msib-test-sha1.list"


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                           "--passphrase", "", *args], input=stdin, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def sha1_bound_repository(home: Path) -> bytes:
    """A tar of a tiny signed repository and its key, whose binding signature is SHA-1."""
    _gpg(home, "--cert-digest-algo", "SHA1", "--quick-gen-key", "msib lab SHA-1 key <sha1@lab.msib>",
         "rsa2048", "sign", "never")
    key = _gpg(home, "--export", "sha1@lab.msib")
    packages = b""
    release = ("Origin: msib-test\nSuite: msib\nCodename: msib\nArchitectures: amd64\nComponents: main\n"
               f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\n"
               "SHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 "
               "main/binary-amd64/Packages\n").encode()
    inrelease = _gpg(home, "--digest-algo", "SHA256", "--clearsign", "-o", "-", stdin=release)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("dists/msib/main/binary-amd64/Packages", packages), ("dists/msib/InRelease", inrelease),
                           ("key.gpg", key)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _put(lab: Lab, name: str, tar: bytes) -> None:
    script = (f"set -e; mkdir -p {REPO_DIR} /etc/apt/keyrings; tar -x -C {REPO_DIR}; "
              f"mv {REPO_DIR}/key.gpg {KEYRING}; echo 'deb [signed-by={KEYRING}] file:{REPO_DIR} msib main' > {SOURCE}")
    # ssh hands the remote shell one string: the script is quoted once, as a whole
    proc = subprocess.run(lab.ssh_argv(name, ["sudo", "sh", "-c", shlex.quote(script)]), input=tar,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert ssh(lab, name, f"cat {SOURCE}").strip() == f"deb [signed-by={KEYRING}] file:{REPO_DIR} msib main"


def _update(*extra: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([MSIB, "update", "--inventory", "/var/lib/msib-lab/inventory", "--vars", str(LAB_VARS),
                           "--packages", "--limit", OLD, "--limit", NEW, "--json",
                           "--lock-file", "/run/lock/msib-update-tests.lock", *extra],
                          capture_output=True, text=True, timeout=1800)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _dpkg_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    lower = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], capture_output=True).returncode == 0
    return -1 if lower else 1


def _installed(lab: Lab, name: str, package: str) -> str:
    return ssh(lab, name, f"dpkg-query -W -f='${{Version}}' {package}").strip()


@pytest.fixture
def gnupg(deploy_lab: Lab) -> Iterator[Path]:
    """A throwaway GnuPG home in the lab's own 0700 state directory (not /tmp), its agent stopped after."""
    home = deploy_lab.state_dir / "test-gnupg"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700)
    try:
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def test_apt_preflight_reports_the_sha1_bound_repository_and_upgrades_nothing(deploy_lab: Lab, gnupg: Path) -> None:
    assert (deploy_lab.host(OLD).release, deploy_lab.host(NEW).release) == ("bookworm", "trixie")
    tar = sha1_bound_repository(gnupg)
    # an upgrade pending on the Debian 12 host: ca-certificates back to the oldest version its mirror has
    versions = ssh(deploy_lab, OLD, "apt-get update -qq && apt-cache madison ca-certificates | cut -d'|' -f2")
    oldest = min({v.strip() for v in versions.splitlines() if v.strip()}, key=functools.cmp_to_key(_dpkg_cmp))
    assert oldest != _installed(deploy_lab, OLD, "ca-certificates"), "the mirror offers one version only"
    ssh(deploy_lab, OLD, f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-downgrades "
                         f"ca-certificates={oldest}", timeout=300)
    old_version = _installed(deploy_lab, OLD, "ca-certificates")
    try:
        for name in (OLD, NEW):
            _put(deploy_lab, name, tar)
        rc, summary = _update()
        assert rc == 1 and summary["ok"] is False, summary
        packages = summary["packages"]
        refused = packages[NEW]["refused_repositories"]
        assert [r["repository"] for r in refused] == [f"file:{REPO_DIR} msib InRelease"], packages[NEW]
        assert "SHA1" in refused[0]["reason"], refused
        # Debian 12's apt still takes the same repository: only the Debian 13 host refuses it
        assert packages[OLD]["refused_repositories"] == [], packages[OLD]
        assert f"the apt preflight failed on {NEW}" in packages[OLD]["error"]
        assert packages[OLD]["upgraded"] == packages[NEW]["upgraded"] == []
        assert _installed(deploy_lab, OLD, "ca-certificates") == old_version, "an upgrade ran despite the preflight"
        assert {f.split(":")[0] for f in summary["failures"]} == {OLD, NEW}
    finally:
        for name in (OLD, NEW):
            ssh(deploy_lab, name, f"rm -rf {REPO_DIR} {KEYRING} {SOURCE}")
    rc, summary = _update()
    assert rc == 0 and summary["ok"], summary["failures"]
    assert any(u["package"] == "ca-certificates" for u in summary["packages"][OLD]["upgraded"])
    assert _installed(deploy_lab, OLD, "ca-certificates") != old_version


@pytest.fixture
def fresh_sensor(deploy_lab: Lab) -> Iterator[str]:
    """ids-ext-1 (Debian 13) freshly installed, and fresh again afterwards for the suites that follow."""
    deploy_lab.reset(["ids-ext-1"])
    try:
        yield "ids-ext-1"
    finally:
        deploy_lab.reset(["ids-ext-1"])


def test_suricata_7_on_debian_13_and_a_major_mismatch_fails_loudly(
        deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any], fresh_sensor: str) -> None:
    seven = {**lab_vars, "ids_sensor_suricata_major": 7}
    first = run_deploy(inventory_dir, "pyinfra", limit=fresh_sensor, extra_vars=seven)
    assert first.ok, first.to_json()
    second = run_deploy(inventory_dir, "pyinfra", limit=fresh_sensor, extra_vars=seven)
    assert second.ok and second.hosts[fresh_sensor].changed == 0, second.to_json()
    assert "version 7.0." in ssh(deploy_lab, fresh_sensor, "suricata -V")
    policy = ssh(deploy_lab, fresh_sensor, "LC_ALL=C apt-cache policy suricata")
    assert "***" in policy and "trixie/main" in policy.split("***", 1)[1].split("\n", 2)[1], policy
    # the plan says Suricata 8 for this sensor: a deploy must not leave 7 running silently
    for engine in ("pyinfra", "ansible"):
        result = run_deploy(inventory_dir, engine, limit=fresh_sensor, extra_vars=lab_vars)  # type: ignore[arg-type]
        host = result.hosts[fresh_sensor]
        assert not result.ok and host.error, result.to_json()
        # both engines say what is installed, what the inventory asks and what to do
        assert "Suricata 7.0." in host.error and "ids_sensor_suricata_major is 8" in host.error, (engine, host.error)
        assert "a sensor changes major by a fresh install" in host.error, (engine, host.error)
    assert "version 7.0." in ssh(deploy_lab, fresh_sensor, "suricata -V")


def test_lab_hosts_log_ssh_logins_by_their_releases_program(deploy_lab: Lab) -> None:
    # Debian 13's OpenSSH logs a login from sshd-session, Debian 12's from sshd: msib's SSH checks read
    # `sshd -T` (what sshd resolves), never a program name
    for name, program in ((OLD, "sshd"), (NEW, "sshd-session")):
        out = ssh(deploy_lab, name, "journalctl -o json --no-pager -n 200 _COMM=" + program +
                  " | grep -c 'Accepted publickey' || true")
        assert int(out.strip() or 0) > 0, (name, program)
