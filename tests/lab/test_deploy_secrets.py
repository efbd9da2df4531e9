"""The collector's private key on its way to the appliance: never in /tmp, never readable by others
(each engine, the lab's real sudo and SSH; inotify on the host records every file created meanwhile
and whether it holds a line of the key).

pyinfra (msib's `config` operation) writes it straight into its root-owned 0700 directory, 0600 from
creation. Ansible's `copy` stages it in the management user's 0700 `~/.ansible/tmp` and moves it
into that directory (a new file there is created with the staged file's mode, 0644, and set to 0600
right after: no one but root can enter the directory meanwhile).
"""

from __future__ import annotations

import hashlib
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
SHARED = ("/tmp", "/var/tmp", "/dev/shm")
WATCHED = (*SHARED, "/etc/msib/tls", "/home/msib")

#: On the host: every file created (or written) under the watched directories, new subdirectories
#: included: its path, its mode when seen, and whether it holds a line of the key (sha256 of the
#: lines compared: the key itself is never on a command line). Runs until its stdin closes.
WATCH = r"""
import ctypes, hashlib, os, select, struct, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
key_lines = set(sys.argv[1].split(","))
dirs = {}
def watch(d):
    w = libc.inotify_add_watch(fd, d.encode(), 0x100 | 0x80 | 0x8)  # IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE
    if w >= 0:
        dirs[w] = d
for d in sys.argv[2:]:
    watch(d)
print("watching", flush=True)
while True:
    ready = select.select([fd, sys.stdin], [], [], 1)[0]
    if sys.stdin in ready and not sys.stdin.read(1):
        break
    if fd not in ready:
        continue
    buf, i = os.read(fd, 65536), 0
    while i < len(buf):
        wd, mask, _cookie, size = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + size].rstrip(b"\0").decode()
        i += 16 + size
        path = os.path.join(dirs.get(wd, "?"), name)
        try:
            mode, is_dir = os.lstat(path).st_mode & 0o777, os.path.isdir(path)
        except OSError:
            continue
        if is_dir:
            watch(path)
            continue
        holds = False
        if mask & (0x8 | 0x80):  # written, or moved in: read what it holds
            try:
                with open(path, "rb") as fh:
                    holds = any(hashlib.sha256(ln.strip()).hexdigest() in key_lines for ln in fh)
            except OSError:
                pass
        print(path, oct(mode), "KEY" if holds else "-", flush=True)
"""


@pytest.mark.parametrize("engine", ["pyinfra", "ansible"])
def test_the_private_key_never_passes_through_tmp_nor_is_readable_by_others(
        deploy_lab: Lab, inventory_dir: Path, lab_vars: dict[str, Any], engine: str) -> None:
    assert run_deploy(inventory_dir, "pyinfra", limit=COLLECTOR, extra_vars=lab_vars).ok
    key = Path(lab_vars["collector_cert_dir"]) / f"{COLLECTOR}.key"
    lines = ",".join(hashlib.sha256(ln.strip()).hexdigest() for ln in key.read_bytes().splitlines()
                     if ln.strip() and not ln.startswith(b"-----"))
    # the key is written again by this deploy: it is not on the host any more
    subprocess.run(deploy_lab.ssh_argv(COLLECTOR, ["sudo", "sh", "-c", f"'cat > /root/msib-watch.py && rm -f {KEY}'"]),
                   input=WATCH, text=True, check=True, timeout=60)
    watcher = subprocess.Popen(deploy_lab.ssh_argv(COLLECTOR, ["sudo", "python3", "/root/msib-watch.py", lines,
                                                               *WATCHED]),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None and watcher.stdout.readline().strip() == "watching"
        result = run_deploy(inventory_dir, engine, limit=COLLECTOR, extra_vars=lab_vars)  # type: ignore[arg-type]
    finally:
        seen = [line.split(" ") for line in watcher.communicate("", timeout=60)[0].splitlines()]
    ssh(deploy_lab, COLLECTOR, "rm -f /root/msib-watch.py")
    assert result.ok and result.hosts[COLLECTOR].changed >= 1, result.to_json()
    assert [p for p, _mode, holds in seen if p == KEY and holds == "KEY"], "the watcher never saw the key written"
    # never in a directory others share: not the key, not pyinfra's upload of anything
    shared = [(p, holds) for p, _mode, holds in seen if p.startswith(tuple(f"{d}/" for d in SHARED))]
    assert [s for s in shared if s[1] == "KEY" or "/pyinfra-" in s[0]] == [], shared
    # wherever the key is, no one but its owner may read it: 0600, or inside a 0700 directory
    assert ssh(deploy_lab, COLLECTOR, f"stat -c '%a %U %G' {KEY} /etc/msib/tls").split() == \
        ["600", "root", "root", "700", "root", "root"]
    staged = [(p, m) for p, m, holds in seen if holds == "KEY" and p != KEY]
    for path, _mode in staged:
        parent = ssh(deploy_lab, COLLECTOR, f"stat -c %a \"$(dirname {path})\" 2>/dev/null || echo gone").strip()
        assert parent in ("700", "gone"), (path, parent)
    if engine == "pyinfra":  # msib's own operation: 0600 from the first byte, and nowhere else
        assert [(p, m) for p, m, _h in seen if p.startswith("/etc/msib/tls/") and int(m, 8) & 0o077] == [], seen
        assert set(staged) == {(f"{KEY}.msib-tmp", "0o600")}, staged
