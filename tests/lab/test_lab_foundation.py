"""The lab is made of real hosts: SSH with pinned keys, systemd, apt through the proxy, no way out."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from msib.lab import LAB_RANGE, Lab, write_synthetic_lab

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


def ssh(lab: Lab, name: str, *cmd: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab.ssh_argv(name, list(cmd)), capture_output=True, text=True, timeout=120, **kw)


def test_every_host_answers_over_ssh_with_strict_host_keys(lab: Lab) -> None:
    config = lab.ssh_config.read_text()
    assert "StrictHostKeyChecking yes" in config
    for h in lab.hosts:
        proc = subprocess.run(["ssh", "-F", str(lab.ssh_config), "-o", "StrictHostKeyChecking=yes",
                               h.name, "hostname"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{h.name}: {proc.stderr}"
        assert proc.stdout.strip() == h.name


def test_systemd_is_pid1_and_running_on_every_host(lab: Lab) -> None:
    for h in lab.hosts:
        proc = ssh(lab, h.name, "cat /proc/1/comm; systemctl is-system-running")
        assert proc.stdout.split() == ["systemd", "running"], f"{h.name}: {proc.stdout} {proc.stderr}"


def test_each_host_has_its_own_root_filesystem(lab: Lab) -> None:
    marker = "/var/tmp/msib-own-rootfs-marker"
    first, second = lab.hosts[0].name, lab.hosts[1].name
    assert ssh(lab, first, f"echo {first} > {marker}").returncode == 0
    assert ssh(lab, second, f"cat {marker}").returncode != 0
    assert ssh(lab, first, f"cat {marker}").stdout.strip() == first
    ssh(lab, first, f"rm -f {marker}")


def _lab_with_wrong_key(lab: Lab, tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A copy of the lab's client files in which `name`'s pinned key is some other key."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()
    lines = []
    for line in lab.known_hosts.read_text().splitlines():
        hosts, _kt, _key = line.split()
        if name in hosts.split(","):
            line = f"{hosts} {other[0]} {other[1]}"
        lines.append(line)
    known = tmp_path / "known_hosts"
    known.write_text("\n".join(lines) + "\n")
    config = tmp_path / "ssh_config"
    config.write_text(lab.ssh_config.read_text().replace(str(lab.known_hosts), str(known)))
    return config, known


def test_changed_host_key_is_refused_by_openssh(lab: Lab, tmp_path: Path) -> None:
    config, _ = _lab_with_wrong_key(lab, tmp_path, "col-int-1")
    bad = subprocess.run(["ssh", "-F", str(config), "col-int-1", "true"], capture_output=True, text=True)
    assert bad.returncode == 255
    assert "Host key verification failed" in bad.stderr
    good = subprocess.run(["ssh", "-F", str(config), "col-ext-1", "true"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr


def test_changed_host_key_is_refused_by_ansible(lab: Lab, tmp_path: Path) -> None:
    config, _ = _lab_with_wrong_key(lab, tmp_path, "col-int-1")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(textwrap.dedent(f"""\
        all:
          vars:
            ansible_ssh_common_args: "-F {config}"
            ansible_python_interpreter: /usr/bin/python3
          hosts:
            col-int-1: {{}}
            col-ext-1: {{}}
        """))
    proc = subprocess.run([str(VENV_BIN / "ansible"), "all", "-i", str(inventory), "-m", "ansible.builtin.ping",
                           "-o"], capture_output=True, text=True, timeout=120,
                          env={"PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "ANSIBLE_NOCOLOR": "1",
                               "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    assert "col-int-1 | UNREACHABLE" in proc.stdout
    assert "col-ext-1 | SUCCESS" in proc.stdout
    # only col-int-1 carries a wrong key, so the verification failure is its
    assert "Host key verification failed" in proc.stdout
    assert proc.returncode != 0


def _pyinfra_exec(lab: Lab, address: str, known: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "pyinfra"), address, "exec", "-y", "--data", f"ssh_known_hosts_file={known}",
         "--data", "ssh_strict_host_key_checking=yes", "--data", "ssh_user=msib",
         "--data", f"ssh_key={lab.identity}", "--", "hostname"],
        capture_output=True, text=True, timeout=120)


def test_changed_host_key_is_refused_by_pyinfra(lab: Lab, tmp_path: Path) -> None:
    _, known = _lab_with_wrong_key(lab, tmp_path, "col-int-1")
    col_int = str(lab.host("col-int-1").address)
    col_ext = str(lab.host("col-ext-1").address)
    bad = _pyinfra_exec(lab, col_int, known)
    assert bad.returncode != 0
    assert "host key" in (bad.stdout + bad.stderr).lower()
    good = _pyinfra_exec(lab, col_ext, known)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "col-ext-1" in good.stdout + good.stderr


def test_changed_host_key_is_refused_by_testinfra(lab: Lab, tmp_path: Path) -> None:
    import testinfra

    config, _ = _lab_with_wrong_key(lab, tmp_path, "col-int-1")
    good = testinfra.get_host("ssh://col-ext-1", ssh_config=str(config))
    assert good.check_output("hostname") == "col-ext-1"
    bad = testinfra.get_host("ssh://col-int-1", ssh_config=str(config))
    with pytest.raises(RuntimeError, match="Host key verification failed"):
        bad.check_output("hostname")


def test_unknown_host_is_refused(lab: Lab, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = tmp_path / "ssh_config"
    config.write_text(lab.ssh_config.read_text().replace(str(lab.known_hosts), str(known)))
    proc = subprocess.run(["ssh", "-F", str(config), "fw-int-1", "true"], capture_output=True, text=True)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr
    assert known.read_text() == ""  # nothing was added behind the operator's back


def test_apt_install_works_through_the_lab_proxy(lab: Lab) -> None:
    log = lab.package_proxy.access_log
    before = log.read_text() if log.exists() else ""
    proc = ssh(lab, "siem", "sudo apt-get clean && sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive "
               "apt-get install -y -q --reinstall hostname && dpkg-query -W -f='${Status}' hostname")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("install ok installed")
    after = log.read_text()
    assert "hostname_" in after[len(before):], "the package did not come through the lab's proxy"
    # and the host has no other way out: no default route, no DNS
    assert ssh(lab, "siem", "ip route show default").stdout.strip() == ""


@pytest.mark.parametrize("outside", ["10.0.0.1", "192.168.1.1", "172.16.0.1", "8.8.8.8", "203.0.113.5"])
def test_lab_hosts_have_no_route_outside_the_lab(lab: Lab, outside: str) -> None:
    # `ip route get` asks the kernel's routing table only: no packet is sent anywhere
    for h in lab.hosts:
        ns = h.netns(lab.spec.name)
        proc = subprocess.run(["ip", "-netns", ns, "route", "get", outside], capture_output=True, text=True)
        assert proc.returncode != 0 and "unreachable" in proc.stderr.lower(), f"{h.name}: {proc.stdout}"


def test_every_lab_address_is_in_the_lab_range(lab: Lab) -> None:
    for h in lab.hosts:
        ns = h.netns(lab.spec.name)
        data = json.loads(subprocess.run(["ip", "-netns", ns, "-j", "addr"], capture_output=True, text=True).stdout)
        addrs = [a["local"] for link in data for a in link.get("addr_info", []) if link["ifname"] != "lo"]
        assert addrs, h.name
        for a in addrs:
            assert ipaddress.ip_address(a) in LAB_RANGE, f"{h.name}: {a}"


def test_objects_reach_the_siem_only_through_their_firewall(lab: Lab) -> None:
    route = ssh(lab, "obj-int-1", f"ip route get {lab.spec.siem.address}").stdout
    fw = lab.host("fw-int-1")
    fw_lan = next(i.address for i in fw.ifaces if i.name == "eth1")
    assert fw_lan is not None and f"via {fw_lan.ip}" in route
    # and the controller has no path to object hosts (they are data, not managed hosts), nor to any
    # address of the lab range that the lab does not route: nothing of the range leaves the machine
    for target in (lab.host("obj-int-1").address, lab.spec.siem.address):
        proc = subprocess.run(["ip", "route", "get", str(target)], capture_output=True, text=True)
        refused = "unreachable" in proc.stderr.lower() or "no route" in proc.stderr.lower()
        assert proc.returncode != 0 and refused, (target, proc.stdout, proc.stderr)


def test_lab_status_json_has_the_promised_shape(lab: Lab) -> None:
    proc = subprocess.run([str(VENV_BIN / "msib"), "lab", "status", "--json", "--site", str(lab.site_path)],
                          capture_output=True, text=True, timeout=60)
    data = json.loads(proc.stdout)
    assert set(data) == {"hosts", "ssh_config", "known_hosts", "inventory", "controller_address"}
    roles = {h["role"] for h in data["hosts"]}
    assert {"collector", "ids_sensor", "firewall", "siem", "object"} <= roles
    assert all(h["up"] for h in data["hosts"])
    assert all(set(h) == {"name", "role", "circuit", "address", "release", "up"} for h in data["hosts"])
    assert data["controller_address"] == "198.18.0.1"
    # the default lab runs the two circuits on different releases, so every suite covers both
    by_circuit = {c: {h["release"] for h in data["hosts"] if h["circuit"] == c and h["role"] != "object"}
                  for c in ("internal", "external")}
    assert by_circuit == {"internal": {"bookworm"}, "external": {"trixie"}}


def test_every_host_runs_the_release_its_plan_says(lab: Lab) -> None:
    for h in lab.hosts:
        proc = ssh(lab, h.name, ". /etc/os-release && echo $VERSION_CODENAME")
        assert (proc.stdout.strip(), proc.returncode) == (h.release, 0), (h.name, proc.stderr)


def test_a_second_lab_comes_up_beside_and_down_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    site = write_synthetic_lab(tmp_path / "plan", name="mtest", collectors=1, octet=200, devices=1)
    other = Lab.from_files(site, state_dir=tmp_path / "state")
    try:
        other.up()
        assert [h["up"] for h in other.status()["hosts"]] == [True, True, True, True]
        # the vendor firewall (msib.lab.devsim) answers SSH on its management address like the rest
        assert set(other.check().values()) == {"running"}
        proc = subprocess.run(other.ssh_argv("col-1", ["systemctl", "is-system-running"]),
                              capture_output=True, text=True, timeout=60)
        assert proc.stdout.strip() == "running"
        assert other.leftovers(), "leftovers() must see a running lab"
    finally:
        other.down()
    assert other.leftovers() == []
    other.down()  # idempotent
    assert other.leftovers() == []
    assert lab.is_up(), "tearing down one lab must not touch another"


def test_up_recovers_from_a_crashed_lab(lab: Lab, tmp_path: Path) -> None:
    """Every process of a lab killed at once (a session that died): `up` cleans up and boots again."""
    import os
    import signal

    site = write_synthetic_lab(tmp_path / "plan", name="mcr", collectors=1, octet=248, proxy_port=3147)
    crashed = Lab.from_files(site, state_dir=tmp_path / "state")
    try:
        crashed.up()
        for pid in crashed.runner.cgroup_procs():
            with contextlib.suppress(ProcessLookupError):  # a process may end between listing and kill
                os.kill(pid, signal.SIGKILL)
        for f in (tmp_path / "state" / "hosts").glob("*/supervisor.pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(f.read_text()), signal.SIGKILL)
        # the proxy's master only: its workers live on, orphaned, and still hold the port
        os.kill(int((tmp_path / "state" / "proxy" / "pid").read_text()), signal.SIGKILL)
        assert crashed.package_proxy.processes(), "the orphaned nginx workers"
        assert not crashed.is_up()
        assert any(x.startswith("mount ") for x in crashed.leftovers())  # stale mounts, netns, links
        again = Lab.from_files(site, state_dir=tmp_path / "state")
        again.up()
        assert set(again.check().values()) == {"running"}
    finally:
        crashed.down()
    assert crashed.leftovers() == []
