"""The lab's hosts: the cached base images, each host's overlay root, its boot and its end.

A Linux host is a booted Debian 12 or 13, as its plan says (systemd-nspawn with systemd as PID 1,
kept up by a small supervisor across reboots), on an overlay of that release's base image; a
vendor device is msib's IOS simulator (:mod:`msib.lab.devsim`). Each host's processes live in its own cgroup, so that
tearing it down leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from msib import releases
from msib.errors import LabError
from msib.fsutil import atomic_write
from msib.lab.mirror import APT_TIMEOUT_S
from msib.lab.plan import LabHost
from msib.lab.system import Reporter, cgroup_roots, debian_mirrors, pid_alive, read_pid, run
from msib.site import SitePlan

# What every lab host has before any role runs: what a freshly installed Debian server has.
BASE_PACKAGES = (
    "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "iproute2", "sudo",
    "ca-certificates", "procps", "netcat-openbsd", "less",
)
BOOT_TIMEOUT_S = 90.0

SUPERVISOR = """#!/bin/bash
# Keeps one lab host booted: systemd-nspawn exits 133 when the host reboots; start it again.
pidfile=$1; shift
while :; do
  "$@" &
  echo $! > "$pidfile"
  wait $!; rc=$?
  [ "$rc" -eq 133 ] || exit "$rc"
done
"""


class HostRunner:
    """Starts, waits for and stops the hosts of one lab, under its state and cache directories."""

    def __init__(self, lab: str, plan: SitePlan, hosts: Sequence[LabHost], *, state_dir: Path, cache_dir: Path,
                 proxy_url: str, ssh_argv: Callable[[str, list[str]], list[str]]) -> None:
        self.lab = lab
        self.plan = plan
        self.hosts = hosts
        self.state_dir = state_dir
        self.cache_dir = cache_dir
        self.proxy_url = proxy_url
        self.ssh_argv = ssh_argv
        self.cgroup_name = f"msib-lab-{lab}"

    def host_dir(self, h: LabHost) -> Path:
        return self.state_dir / "hosts" / h.name

    # -- base image -----------------------------------------------------------------------------

    def base_dir(self, release: str) -> Path:
        """The cached base root filesystem of `release`: one per release, package list, mirrors and supervisor."""
        mirrors = debian_mirrors()
        key = json.dumps([release, BASE_PACKAGES, mirrors, SUPERVISOR, 2], sort_keys=True)
        return self.cache_dir / f"base-{release}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def releases(self) -> list[str]:
        """The releases the lab's Linux hosts run, each once."""
        return sorted({h.release for h in self.hosts if h.release})

    def ensure_bases(self, progress: Reporter) -> dict[str, Path]:
        """The base root filesystem of every release the lab's hosts run (built when missing)."""
        return {r: self.ensure_base(r, progress) for r in self.releases()}

    def ensure_base(self, release: str, progress: Reporter) -> Path:
        """Build the base root filesystem of `release` once (mmdebstrap) and cache it.

        The machine's own mirror serves every release's suites (main, -updates, -security,
        -backports): its URLs come from the machine's apt sources, the suites from the release.
        """
        base = self.base_dir(release)
        if (base / "etc/os-release").exists():
            return base
        m = debian_mirrors()
        backports = releases.get(release).backports
        progress.print(f"building the base image ({releases.get(release).name}, mmdebstrap) into {base} ...")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = base.with_name(base.name + ".tmp")
        # an interrupted build leaves mmdebstrap's /proc, /sys and /dev mounts inside: mmdebstrap
        # refuses a non-empty target, so they go before the half-built tree does
        unmount(mounts_under(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
        sources = [
            f"deb {m['main']} {release} main",
            f"deb {m['main']} {release}-updates main",
            f"deb {m['security']} {release}-security main",
            f"deb {m['main']} {backports} main",
        ]
        hooks = [
            'rm -f "$1"/etc/ssh/ssh_host_*',
            # apt-daily timers grab the dpkg lock mid-run; an appliance gets updates from msib
            'for t in apt-daily.timer apt-daily-upgrade.timer; do ln -sf /dev/null "$1/etc/systemd/system/$t"; done',
            # units that cannot work in a container and would leave the system "degraded" (those a
            # release does not have are masked all the same: harmless)
            'for u in systemd-networkd-wait-online.service systemd-timesyncd.service getty@tty1.service; '
            'do ln -sf /dev/null "$1/etc/systemd/system/$u"; done',
            'echo "" > "$1/etc/machine-id"',
        ]
        argv = ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                "--skip=cleanup/apt/lists", "--aptopt=Acquire::Retries \"3\"",
                *[f"--customize-hook={h}" for h in hooks], release, str(tmp), *sources]
        t0 = time.monotonic()
        run(argv, timeout=900)
        tmp.rename(base)
        progress.print(f"base image of {release} built in {time.monotonic() - t0:.0f}s")
        return base

    # -- hosts ----------------------------------------------------------------------------------

    def prepare_root(self, h: LabHost, base: Path, pubkey: str) -> Path:
        d = self.host_dir(h)
        upper, work, root = d / "upper", d / "work", d / "root"
        shutil.rmtree(d, ignore_errors=True)
        for p in (upper, work, root):
            p.mkdir(parents=True)
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={base},upperdir={upper},workdir={work}", str(root)])
        etc = root / "etc"
        (etc / "hostname").write_text(h.name + "\n")
        lines = ["127.0.0.1 localhost", f"127.0.1.1 {h.name}"]
        lines += [f"{x.address} {x.name}" for x in self.hosts if not x.console_only and x is not h]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        (etc / "machine-id").write_text(secrets.token_hex(16) + "\n")
        key = etc / "ssh" / "ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{h.name}", "-f", str(key)])
        (etc / "ssh" / "sshd_config.d" / "00-msib-lab.conf").write_text(
            "# lab host: one pinned host key, keys only\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n")
        if not h.console_only:  # objects are SB workstations: no management path, no proxy
            proxy = self.plan.management.package_proxy or self.proxy_url
            # bounded waits and retries: a proxy that does not answer fails a run instead of hanging it
            (etc / "apt" / "apt.conf.d" / "01msib-proxy").write_text(
                f'// the lab\'s package proxy, as a closed circuit has\nAcquire::http::Proxy "{proxy}";\n'
                f'Acquire::http::Timeout "{APT_TIMEOUT_S}";\nAcquire::Retries "3";\n')
        user = self.plan.management.ssh_user
        if user != "root":
            run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash", user])
            (etc / "sudoers.d" / "msib").write_text(f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n")
            (etc / "sudoers.d" / "msib").chmod(0o440)
        for home in {Path("/root"), Path(f"/home/{user}") if user != "root" else Path("/root")}:
            ssh_dir = root / home.relative_to("/") / ".ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            (ssh_dir / "authorized_keys").write_text(pubkey)
            (ssh_dir / "authorized_keys").chmod(0o600)
            if home != Path("/root"):
                run(["chroot", str(root), "chown", "-R", f"{user}:{user}", str(home / ".ssh")])
        return root

    def boot(self, h: LabHost, root: Path) -> None:
        d = self.host_dir(h)
        ns = h.netns(self.lab)
        supervisor = self.state_dir / "supervisor.sh"
        # stale leftovers of a crashed run would stop nspawn from starting
        shutil.rmtree(Path("/run/systemd/nspawn/propagate") / h.name, ignore_errors=True)
        argv = ["/bin/bash", str(supervisor), str(d / "nspawn.pid"),
                "systemd-nspawn", "--boot", "--register=no", "--keep-unit", f"--directory={root}",
                f"--machine={h.name}", f"--network-namespace-path=/run/netns/{ns}",
                "--capability=CAP_NET_ADMIN,CAP_IPC_LOCK,CAP_NET_RAW,CAP_SYS_NICE",
                "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--console=read-only"]
        proc = self.spawn(h, argv)
        (d / "supervisor.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + 10
        while not self.running(h):  # the supervisor writes nspawn's PID as it starts it
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"lab host {h.name} did not start: see {d / 'console.log'}")
            time.sleep(0.01)

    def spawn(self, h: LabHost, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a host's process detached, in the host's own cgroup (in every hierarchy), logging to its console."""
        cgroups = []
        for r in cgroup_roots():
            cg = r / self.cgroup_name / h.name
            cg.mkdir(parents=True, exist_ok=True)
            cgroups.append(cg / "cgroup.procs")

        def enter_cgroup() -> None:  # runs in the child before exec
            for procs in cgroups:
                procs.write_text(str(os.getpid()))

        with open(self.host_dir(h) / "console.log", "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, preexec_fn=enter_cgroup)

    def start(self, h: LabHost, bases: dict[str, Path], pubkey: str) -> None:
        """Start one host: a booted Debian system of its release, or for a vendor device msib's simulator."""
        if h.role == "device":
            self.start_device(h)
        else:
            assert h.release is not None, h.name
            self.boot(h, self.prepare_root(h, bases[h.release], pubkey))

    def host_key_pub(self, h: LabHost) -> Path:
        if h.role == "device":
            return self.host_dir(h) / "devsim" / "ssh_host_ed25519_key.pub"
        return self.host_dir(h) / "upper/etc/ssh/ssh_host_ed25519_key.pub"

    def device_credentials(self) -> dict[str, str]:
        """The lab devices' login (generated once; kept 0600 in the lab state, never printed)."""
        path = self.state_dir / "devices" / "credentials.env"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(path, f"MSIB_DEVICE_USERNAME={self.plan.management.ssh_user}\n"
                               f"MSIB_DEVICE_PASSWORD={secrets.token_urlsafe(18)}\n"
                               f"MSIB_DEVICE_ENABLE={secrets.token_urlsafe(18)}\n", mode=0o600)
        return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)

    def start_device(self, h: LabHost) -> None:
        """A vendor firewall: msib's IOS simulator (msib.lab.devsim) listening in the host's namespace."""
        d = self.host_dir(h)
        shutil.rmtree(d, ignore_errors=True)
        state = d / "devsim"
        state.mkdir(parents=True)
        # the host key is made here, so that the lab pins it before the first connection
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{h.name}", "-f",
             str(state / "ssh_host_ed25519_key")])
        creds = self.device_credentials()
        env = {**os.environ, **creds}
        argv = ["ip", "netns", "exec", h.netns(self.lab), sys.executable, "-m", "msib.lab.devsim",
                "--listen", str(h.address), "--port", "22", "--state", str(state),
                "--username", creds["MSIB_DEVICE_USERNAME"], "--password-env", "MSIB_DEVICE_PASSWORD",
                "--enable-env", "MSIB_DEVICE_ENABLE", "--hostname", h.name]
        proc = self.spawn(h, argv, env)
        (d / "nspawn.pid").write_text(f"{proc.pid}\n")

    def wait_device(self, h: LabHost, deadline: float) -> None:
        while time.monotonic() < deadline:
            if not self.running(h):
                tail = (self.host_dir(h) / "console.log").read_text(errors="replace")[-400:]
                raise LabError(f"lab device {h.name} stopped while starting: {tail.strip()}")
            with contextlib.suppress(OSError), socket.create_connection((str(h.address), 22), timeout=1):
                return
            time.sleep(0.1)
        raise LabError(f"lab device {h.name} did not listen on SSH within {BOOT_TIMEOUT_S:.0f}s")

    def wait_ssh(self, h: LabHost, deadline: float) -> None:
        if h.role == "device":
            self.wait_device(h, deadline)
            return
        while time.monotonic() < deadline:
            if not self.running(h):
                tail = (self.host_dir(h) / "console.log").read_text(errors="replace")[-400:]
                raise LabError(f"lab host {h.name} stopped while booting: {tail.strip()}")
            proc = subprocess.run(self.ssh_argv(h.name, ["systemctl", "is-system-running", "--wait"]),
                                  capture_output=True, text=True, timeout=BOOT_TIMEOUT_S)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                if state == "degraded":
                    failed = subprocess.run(self.ssh_argv(h.name, ["systemctl", "--failed", "--plain",
                                                                   "--no-legend"]),
                                            capture_output=True, text=True, timeout=30).stdout
                    raise LabError(f"lab host {h.name} booted degraded: {failed.strip()}")
                return
            time.sleep(0.2)
        raise LabError(f"lab host {h.name} did not answer over SSH within {BOOT_TIMEOUT_S:.0f}s")

    def running(self, h: LabHost) -> bool:
        return read_pid(self.host_dir(h) / "nspawn.pid") is not None

    def stop_host(self, h: LabHost) -> int | None:
        """Ask the host to power off (SIGTERM to nspawn); returns the PID to wait for."""
        d = self.host_dir(h)
        (d / "stopping").touch() if d.exists() else None
        pid = read_pid(d / "nspawn.pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        return pid

    def cgroup_procs(self, host: str | None = None) -> list[int]:
        pids: list[int] = []
        for r in cgroup_roots():
            top = r / self.cgroup_name / host if host else r / self.cgroup_name
            if top.exists():
                for procs in top.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError):
                        pids += [int(p) for p in procs.read_text().split()]
        return sorted(set(pids))

    def remove_cgroups(self) -> None:
        for r in cgroup_roots():
            top = r / self.cgroup_name
            if not top.exists():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    d.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()

    def mounts(self, host: str | None = None) -> list[str]:
        return mounts_under(self.state_dir / "hosts" / host if host else self.state_dir / "hosts")

    def teardown(self, hosts: list[LabHost], host: str | None = None) -> None:
        """Power hosts off (SIGTERM to nspawn), kill what is left in their cgroups, unmount them.

        `host` narrows the cgroup and mount sweep to one host (reset); None sweeps the whole lab.
        """
        pids = [p for p in (self.stop_host(h) for h in hosts) if p]
        deadline = time.monotonic() + 15
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if pid_alive(p)]
            time.sleep(0.1)
        for _ in range(3):
            left = self.cgroup_procs(host)
            if not left:
                break
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        for h in hosts:
            sup = read_pid(self.host_dir(h) / "supervisor.pid")
            if sup:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(sup, signal.SIGKILL)
        unmount(self.mounts(host))


def mounts_under(directory: Path, proc_mounts: str | None = None) -> list[str]:
    """The mount points at or below `directory`, deepest first, in `proc_mounts` (a /proc/self/mounts
    text; None: the machine's now)."""
    if proc_mounts is None:
        with open("/proc/self/mounts") as f:
            proc_mounts = f.read()
    top = str(directory).rstrip("/")
    out = []
    for line in proc_mounts.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        target = fields[1].replace("\\040", " ")
        if target == top or target.startswith(top + "/"):
            out.append(target)
    return sorted(out, key=len, reverse=True)


def unmount(targets: Sequence[str]) -> None:
    """Unmount each target (deepest first), lazily where a plain unmount is refused."""
    for target in targets:
        if run(["umount", target], check=False).returncode != 0:
            run(["umount", "-l", target], check=False)
