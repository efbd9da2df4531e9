"""Helpers for the device tests: the IOS simulator (msib.lab.devsim) as a real subprocess on 127.0.0.1.

Secrets go to the simulator through its environment (never argv); it picks a free port itself
(``--port 0``) and says which on stdout, so there is no race for a port.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from msib.netdev import DeviceCredentials, DeviceTarget, NetDevice
from msib.secrets import Secret

USERNAME = "msib"
PASSWORD = "Dev1ce-pw-for-tests"
ENABLE = "En4ble-secret-for-tests"
LOCALHOST = "127.0.0.1"


@dataclass
class DevSim:
    """One running simulator process."""

    state: Path
    hostname: str = "fw-ext-1"
    proc: subprocess.Popen[str] | None = None
    port: int = 0
    fingerprint: str = ""
    extra_args: list[str] = field(default_factory=list)

    def start(self, *, reload: bool = False, timeout: float = 15.0) -> DevSim:
        env = dict(os.environ, DEVSIM_PASSWORD=PASSWORD, DEVSIM_ENABLE=ENABLE)
        args = [sys.executable, "-m", "msib.lab.devsim", "--listen", LOCALHOST, "--port", str(self.port),
                "--state", str(self.state), "--username", USERNAME, "--password-env", "DEVSIM_PASSWORD",
                "--enable-env", "DEVSIM_ENABLE", "--hostname", self.hostname, "-v", *self.extra_args]
        if reload:
            args.append("--reload")
        self.state.mkdir(parents=True, exist_ok=True)
        err = (self.state.parent / f"{self.state.name}.stderr").open("a")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line:
            if sel.select(timeout=0.2):
                line = self.proc.stdout.readline()
                if not line:
                    break
        sel.close()
        if not line.startswith("devsim ready "):
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}; stderr: {self.stderr()}")
        _, _, host, port, fingerprint = line.split()
        assert host == LOCALHOST
        self.port = int(port)
        self.fingerprint = fingerprint
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def stderr(self) -> str:
        path = self.state.parent / f"{self.state.name}.stderr"
        return path.read_text() if path.exists() else ""

    def public_key(self) -> str:
        """``ssh-ed25519 AAAA...`` of the simulator's persisted host key."""
        key_type, b64, *_ = (self.state / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{key_type} {b64}"

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(f"[{LOCALHOST}]:{self.port} {self.public_key()}\n")
        return path

    def target(self, site: str = "lab") -> DeviceTarget:
        return DeviceTarget(name=self.hostname, host=LOCALHOST, port=self.port, site=site, circuit="external")


def credentials(password: str = PASSWORD, enable: str | None = ENABLE) -> DeviceCredentials:
    return DeviceCredentials(USERNAME, Secret(password), Secret(enable) if enable is not None else None)


def netdevice(sim: DevSim, tmp: Path, *, known_hosts: Path | None = None, password: str = PASSWORD,
              enable: str | None = ENABLE, timeout: float = 10.0) -> NetDevice:
    kh = known_hosts if known_hosts is not None else sim.write_known_hosts(tmp / "known_hosts")
    return NetDevice(sim.target(), credentials(password, enable), known_hosts=kh, backup_dir=tmp / "backups",
                     timeout=timeout)
