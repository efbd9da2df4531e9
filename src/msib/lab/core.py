"""The Lab: one lab on this machine, brought up, reset, checked and torn down as a whole.

Real Debian 12 and 13 hosts on one machine, shaped by a site plan (which release each appliance
runs; lab.yml for the lab's own hosts): each host has its own network namespace and addresses in
198.18.0.0/15, its own overlay root filesystem over the cached base image of its release,
systemd as PID 1 (systemd-nspawn), a real sshd with a pinned host key, and apt through the lab's
own package proxy (nginx, :mod:`msib.lab.mirror`). See inventories/lab/lab.yml for the topology
and /work/shared/spec/lab.md for the recipe this follows.

Example:
    >>> lab = Lab.from_files("inventories/lab/site.yml")   # doctest: +SKIP
    >>> lab.up(); lab.status()["hosts"][0]["up"]             # doctest: +SKIP
    True
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from msib.errors import InputError, LabError
from msib.lab.hosts import BOOT_TIMEOUT_S, SUPERVISOR, HostRunner
from msib.lab.mirror import Mirror, PackageProxy
from msib.lab.network import guard_routes, links, namespaces, net_down, net_up
from msib.lab.plan import LabHost, LabSpec, build_topology, load_spec
from msib.lab.system import Quiet, Reporter, cgroup_roots, debian_mirrors, run
from msib.site import SitePlan, load_site

DEFAULT_STATE_DIR = Path("/var/lib/msib-lab")
DEFAULT_CACHE_DIR = Path("/var/cache/msib-lab")
INOTIFY_INSTANCES = 1024


class Lab:
    """One lab on this machine: its plan, its topology and its state directory."""

    def __init__(self, plan: SitePlan, spec: LabSpec, *, site_path: Path,
                 state_dir: Path | None = None, cache_dir: Path | None = None) -> None:
        self.plan = plan
        self.spec = spec
        self.site_path = site_path
        self.topology = build_topology(plan, spec)
        self.hosts = self.topology.hosts
        self.state_dir = Path(state_dir or os.environ.get("MSIB_LAB_DIR") or DEFAULT_STATE_DIR)
        self.cache_dir = Path(cache_dir or os.environ.get("MSIB_LAB_CACHE") or DEFAULT_CACHE_DIR)
        self.ssh_config = self.state_dir / "ssh_config"
        self.known_hosts = self.state_dir / "known_hosts"
        self.identity = self.state_dir / "id_ed25519"
        self.inventory_dir = self.state_dir / "inventory"
        self.runner = HostRunner(spec.name, plan, self.hosts, state_dir=self.state_dir, cache_dir=self.cache_dir,
                                 proxy_url=self.proxy_url, ssh_argv=self.ssh_argv)

    @classmethod
    def from_files(cls, site: str | Path, *, lab_file: str | Path | None = None,
                   state_dir: Path | None = None, cache_dir: Path | None = None) -> Lab:
        """Load the site plan and the lab.yml beside it (or `lab_file`)."""
        site = Path(site)
        plan = load_site(site)
        spec = load_spec(Path(lab_file) if lab_file else site.with_name("lab.yml"))
        return cls(plan, spec, site_path=site, state_dir=state_dir, cache_dir=cache_dir)

    # -- names ----------------------------------------------------------------------------------

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise InputError(name, "no such lab host",
                         fix=f"one of: {', '.join(h.name for h in self.hosts)}")

    @property
    def controller_address(self) -> str:
        return str(self.spec.controller.ip)

    @property
    def proxy_url(self) -> str:
        return f"http://{self.spec.controller.ip}:{self.spec.proxy_port}"

    def device_credentials(self) -> dict[str, str]:
        """The lab devices' login (generated once; kept 0600 in the lab state, never printed)."""
        return self.runner.device_credentials()

    # -- package proxy --------------------------------------------------------------------------

    @property
    def package_proxy(self) -> PackageProxy:
        """The lab's package proxy (nginx in front of the machine's Debian mirrors; msib.lab.mirror)."""
        m = debian_mirrors()
        return PackageProxy([Mirror.parse(m["main"]), Mirror.parse(m["security"])],
                            listen=str(self.spec.controller.ip), port=self.spec.proxy_port,
                            state_dir=self.state_dir / "proxy", cache_dir=self.cache_dir / "packages")

    # -- client files ---------------------------------------------------------------------------

    def _write_client_files(self) -> None:
        keys = []
        host_blocks = []
        for h in self.hosts:
            pub = self.runner.host_key_pub(h).read_text().split()
            keys.append(f"{h.name},{h.address} {pub[0]} {pub[1]}")
            block = [f"Host {h.name}", f"    HostName {h.address}"]
            if h.console_only:
                # objects have no management path: the lab reaches them through their namespace
                block.append(f"    ProxyCommand ip netns exec {h.netns(self.spec.name)} nc %h %p")
            host_blocks.append("\n".join(block))
        self.known_hosts.write_text("\n".join(keys) + "\n")
        self.ssh_config.write_text(
            "# written by `msib lab up`: strict host keys, pinned known_hosts, no agent, no prompts\n"
            + "\n".join(host_blocks)
            + f"\n\nHost *\n    User {self.plan.management.ssh_user}\n    IdentityFile {self.identity}\n"
            f"    IdentitiesOnly yes\n    UserKnownHostsFile {self.known_hosts}\n"
            "    StrictHostKeyChecking yes\n    BatchMode yes\n    ConnectTimeout 10\n"
            "    ServerAliveInterval 15\n    LogLevel ERROR\n")

    def _provision_siem(self, rep: Reporter) -> None:
        from msib.lab.siem.host import provision

        t0 = time.monotonic()
        ep = provision(self)
        rep.print(f"  {self.spec.siem.name}: lab SIEM receiver (TLS 6514, RELP 2514) and API {ep.api_url} "
                  f"up in {time.monotonic() - t0:.1f}s")

    def _write_inventory(self) -> None:
        from msib.inventory import SshSettings, build_inventory

        appendices = sorted(self.site_path.parent.glob("appendix*.xlsx"))
        ssh = SshSettings(ssh_config=self.ssh_config, known_hosts=self.known_hosts,
                          identity_file=self.identity, user=self.plan.management.ssh_user)
        build_inventory(self.effective_site(), appendices, self.inventory_dir, ssh=ssh)

    def effective_site(self) -> Path:
        """The lab's site plan as the engines see it: the committed one plus the CA made at `up`."""
        data = yaml.safe_load(self.site_path.read_text(encoding="utf-8"))
        ca = self.state_dir / "pki" / "ca.pem"
        if ca.exists() and not data["siem"].get("ca_file"):
            data["siem"]["ca_file"] = str(ca)
        out = self.state_dir / "site.yml"
        out.write_text("# written by `msib lab up` from " + str(self.site_path) + ": do not edit\n"
                       + yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        return out

    def ssh_argv(self, name: str, command: list[str] | None = None) -> list[str]:
        """The ssh command line to reach lab host `name` (strict host keys, the lab's config)."""
        self.host(name)
        return ["ssh", "-F", str(self.ssh_config), name, *(command or [])]

    # -- up / down / status ---------------------------------------------------------------------

    def up(self, progress: Reporter | None = None) -> None:
        """Bring the whole lab up from whatever state it is in; idempotent when already up."""
        rep = progress or Quiet()
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, mounts, systemd-nspawn)")
        if self.is_up():
            rep.print("lab is already up")
            self._write_client_files()
            self._write_inventory()
            return
        self.down(progress=Quiet())
        t0 = time.monotonic()
        bases = self.runner.ensure_bases(rep)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        (self.state_dir / "supervisor.sh").write_text(SUPERVISOR)
        if not self.identity.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "msib-lab-controller",
                 "-f", str(self.identity)])
        pubkey = Path(str(self.identity) + ".pub").read_text()
        inotify = Path("/proc/sys/fs/inotify/max_user_instances")
        old = inotify.read_text().strip()
        if int(old) < INOTIFY_INSTANCES:
            # two dozen systemd hosts exhaust the default 128 instances
            (self.state_dir / "inotify.saved").write_text(old)
            inotify.write_text(str(INOTIFY_INSTANCES))
        try:
            rep.print(f"network: {len(self.topology.bridges)} bridges, {len(self.hosts)} namespaces")
            net_up(self.topology, self.spec.name, self.controller_address)
            self.package_proxy.start()
            for h in self.hosts:
                self.runner.start(h, bases, pubkey)
            self._write_client_files()
            deadline = time.monotonic() + BOOT_TIMEOUT_S
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(self.hosts))) as pool:
                futures = {pool.submit(self.runner.wait_ssh, h, deadline): h for h in self.hosts}
                for fut in concurrent.futures.as_completed(futures):
                    fut.result()
                    rep.print(f"  {futures[fut].name}: up")
            self._provision_siem(rep)
            self._write_inventory()
            (self.state_dir / "up").write_text(json.dumps({"since": time.time()}))
        except BaseException:
            self.down(progress=Quiet())
            raise
        rep.print(f"lab up in {time.monotonic() - t0:.1f}s")

    def reset(self, names: list[str], progress: Reporter | None = None) -> None:
        """Give hosts a fresh root filesystem and boot them again (as if newly installed).

        The network stays as it is; each reset host gets a new pinned host key.
        """
        rep = progress or Quiet()
        if not self.is_up():
            raise LabError("the lab is not up: run `msib lab up` first")
        hosts = [self.host(n) for n in names] if names else list(self.hosts)
        bases = self.runner.ensure_bases(rep)
        pubkey = Path(str(self.identity) + ".pub").read_text()
        for h in hosts:
            self.runner.teardown([h], host=h.name)
            self.runner.start(h, bases, pubkey)
        self._write_client_files()
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
            for h, fut in [(h, pool.submit(self.runner.wait_ssh, h, deadline)) for h in hosts]:
                fut.result()
                rep.print(f"  {h.name}: reset and up")
        if any(h.role == "siem" for h in hosts):
            self._provision_siem(rep)

    def is_up(self) -> bool:
        return (self.state_dir / "up").exists() and all(self.runner.running(h) for h in self.hosts)

    def down(self, progress: Reporter | None = None) -> None:
        """Power every host off and remove every trace of the lab; safe to run at any time."""
        rep = progress or Quiet()
        (self.state_dir / "up").unlink(missing_ok=True)
        self.runner.teardown(self.hosts)
        self.runner.remove_cgroups()
        self.package_proxy.stop()
        net_down(self.spec.name)
        shutil.rmtree(self.state_dir / "hosts", ignore_errors=True)
        saved = self.state_dir / "inotify.saved"
        if saved.exists():
            Path("/proc/sys/fs/inotify/max_user_instances").write_text(saved.read_text())
            saved.unlink()
        rep.print("lab down")

    def status(self) -> dict[str, Any]:
        """What `msib lab status --json` prints."""
        return {
            "hosts": [{"name": h.name, "role": h.role, "circuit": h.circuit, "address": str(h.address),
                       "release": h.release, "up": self.runner.running(h)} for h in self.hosts],
            "ssh_config": str(self.ssh_config),
            "known_hosts": str(self.known_hosts),
            "inventory": str(self.inventory_dir),
            "controller_address": self.controller_address,
        }

    def check(self) -> dict[str, str]:
        """Each host's `systemctl is-system-running`, asked over SSH with strict host keys."""

        def ask(h: LabHost) -> str:
            if h.role == "device":  # no systemd to ask: an SSH server that answers is a running device
                try:
                    with socket.create_connection((str(h.address), 22), timeout=5) as sock:
                        return "running" if sock.recv(64).startswith(b"SSH-2.0") else "no SSH banner"
                except OSError as exc:
                    return f"unreachable: {exc}"
            try:
                proc = subprocess.run(self.ssh_argv(h.name, ["systemctl", "is-system-running"]),
                                      capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                return "timeout"
            return proc.stdout.strip() or (proc.stderr.strip().splitlines() or ["unreachable"])[-1]

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(self.hosts))) as pool:
            return dict(zip([h.name for h in self.hosts], pool.map(ask, self.hosts), strict=True))

    def leftovers(self) -> list[str]:
        """Everything of this lab still present on the machine (empty after `down`)."""
        found: list[str] = []
        found += [f"netns {ns}" for ns in namespaces(self.spec.name)]
        found += [f"link {name}" for name in links(self.spec.name)]
        found += [f"route {r}" for r in guard_routes(self.spec.name)]
        found += [f"mount {m}" for m in self.runner.mounts()]
        found += [f"process {p}" for p in self.runner.cgroup_procs()]
        cgroup = self.runner.cgroup_name
        found += [f"cgroup {r / cgroup}" for r in cgroup_roots() if (r / cgroup).exists()]
        found += [f"process {pid} (the package proxy's nginx)" for pid in self.package_proxy.processes()]
        return found
