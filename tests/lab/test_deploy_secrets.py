"""The collector's private key on its way to the appliance: straight into its root-owned 0700 directory,
never world-readable, never in /tmp (each engine, the lab's real sudo and SSH; inotify on the host
records every file created meanwhile).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import ssh
from msib.engines.deploy import run_deploy
from msib.lab import Lab

pytestmark = pytest.mark.lab

COLLECTOR = "col-int-1"
KEY = "/etc/msib/tls/collector.key"
WATCHED = ("/tmp", "/var/tmp", "/dev/shm", "/etc/msib/tls")

#: On the host: report every file created in the watched directories (path, its mode when seen)
#: until stdin closes. inotify through ctypes: the appliance has python3, nothing else is installed.
WATCH = r"""
import ctypes, os, select, struct, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
dirs = {libc.inotify_add_watch(fd, d.encode(), 0x100 | 0x80): d for d in sys.argv[1:]}  # IN_CREATE | IN_MOVED_TO
print("watching", flush=True)
while True:
    ready = select.select([fd, sys.stdin], [], [], 1)[0]
    if sys.stdin in ready and not sys.stdin.read(1):
        break
    if fd not in ready:
        continue
    buf, i = os.read(fd, 65536), 0
    while i < len(buf):
        wd, _mask, _cookie, size = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + size].rstrip(b"\0").decode()
        i += 16 + size
        path = os.path.join(dirs[wd], name)
        try:
            mode = oct(os.lstat(path).st_mode & 0o777)
        except OSError:
            mode = "gone"
        print(path, mode, flush=True)
"""


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_the_private_key_goes_straight_to_its_directory_never_through_tmp(
        deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any], engine: str) -> None:
    assert run_deploy(inventory_dir, "pyinfra", limit=COLLECTOR, extra_vars=lab_vars).ok
    # the key is written again by this deploy: it is not on the host any more
    subprocess.run(deploy_lab.ssh_argv(COLLECTOR, ["sudo", "sh", "-c", f"'cat > /root/msib-watch.py && rm -f {KEY}'"]),
                   input=WATCH, text=True, check=True, timeout=60)
    watcher = subprocess.Popen(deploy_lab.ssh_argv(COLLECTOR, ["sudo", "python3", "/root/msib-watch.py", *WATCHED]),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None and watcher.stdout.readline().strip() == "watching"
        result = run_deploy(inventory_dir, engine, limit=COLLECTOR, extra_vars=lab_vars)  # type: ignore[arg-type]
    finally:
        seen = watcher.communicate("", timeout=60)[0].splitlines()  # stdin closed: the watcher ends
    assert result.ok and result.hosts[COLLECTOR].changed >= 1, result.to_json()
    created = [line.rsplit(" ", 1) for line in seen]
    assert created, "the deploy wrote the key, inotify saw nothing: the watcher is broken"
    # nothing at all in /tmp, /var/tmp, /dev/shm; in the key's directory nothing readable by others
    assert [p for p, _ in created if not p.startswith("/etc/msib/tls/")] == [], created
    assert [(p, m) for p, m in created if m != "gone" and int(m, 8) & 0o077] == [], created
    assert ssh(deploy_lab, COLLECTOR, f"stat -c '%a %U %G' {KEY} /etc/msib/tls").split() == \
        ["600", "root", "root", "700", "root", "root"]
    ssh(deploy_lab, COLLECTOR, "rm -f /root/msib-watch.py")
