"""The device simulator's SSH server and command line: state directory, SSH glue, `python -m msib.lab.devsim`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncssh

from msib.fsutil import atomic_write
from msib.lab.devsim.device import Device, Interface, type9_hash, type9_verify
from msib.lab.devsim.session import CliSession

log = logging.getLogger("msib.devsim")


# --- state directory ----------------------------------------------------------------------------


def load_config(device: Device, text: str, source: str) -> None:
    """Boot `device` from configuration text, line by line in configuration mode.

    Raises:
        ValueError: a line the device refuses (naming `source` and the line number).
    """
    session = CliSession(device, "boot", privilege=15)
    session.mode = "config"
    hook, device.on_running_change = device.on_running_change, None
    try:
        for number, raw in enumerate(text.splitlines(), 1):
            if raw.strip() == "end":
                break
            reply = session.handle(raw)
            if session.mode in ("user", "exec"):  # an `exit` in the text: stay in configuration
                session.mode = "config"
            if "%" in reply.text:
                raise ValueError(f"{source}:{number}: the device refuses {raw.strip()!r}: {reply.text.strip()}")
    finally:
        device.on_running_change = hook


class StateDir:
    """The simulator's state directory: host key, running-config, startup-config."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = path / "ssh_host_ed25519_key"
        self.pub = path / "ssh_host_ed25519_key.pub"
        self.running = path / "running-config"
        self.startup = path / "startup-config"

    def host_key(self) -> asyncssh.SSHKey:
        """The persisted host key, generated on first use (mode 0600)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.key.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment="msib-devsim")
            atomic_write(self.key, key.export_private_key().decode(), mode=0o600)
            atomic_write(self.pub, key.export_public_key().decode(), mode=0o644)
        return asyncssh.read_private_key(str(self.key))

    def boot(self, device: Device, *, reload: bool) -> None:
        """Load startup and running config; `reload` boots from startup as after a power cycle."""
        if self.startup.exists():
            device.startup = self.startup.read_text(encoding="utf-8")
        source = self.startup if reload or not self.running.exists() else self.running
        if source.exists():
            load_config(device, source.read_text(encoding="utf-8"), str(source))
            device.last_change = (source.stat().st_mtime, "boot")
        device.on_running_change = lambda d: atomic_write(self.running, d.running_text(), mode=0o600)
        device.on_startup_change = lambda d: atomic_write(self.startup, d.startup or "", mode=0o600)


# --- SSH glue -----------------------------------------------------------------------------------


class _SshServer(asyncssh.SSHServer):
    def __init__(self, device: Device) -> None:
        self.device = device
        self.peer = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return False

    def validate_password(self, username: str, password: str) -> bool:
        ok = self.device.login_ok(username, password)
        if ok:
            log.info("login %s from %s", username, self.peer)
        else:
            log.warning("login refused for %r from %s", username, self.peer)
        return ok


async def _serve_session(device: Device, process: asyncssh.SSHServerProcess[str]) -> None:
    user = process.get_extra_info("username") or "?"
    peer = process.get_extra_info("peername")
    session = CliSession(device, user, privilege=device.privilege(user),
                         peer=str(peer[0]) if peer else "?")
    process.stdout.write("\r\n" + session.prompt())
    line = ""
    after_cr = False
    try:
        while True:
            try:
                data = await process.stdin.read(4096)
            except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            if not data:
                break
            out: list[str] = []
            for ch in data:
                if after_cr and ch == "\n":
                    after_cr = False
                    continue
                after_cr = ch == "\r"
                if ch in "\r\n" or (ch == "\x1a" and session.mode not in ("user", "exec")):
                    entered, line = ("end" if ch == "\x1a" else line), ""
                    if ch == "\x1a":
                        out.append("^Z")
                    reply = session.handle(entered)
                    out.append("\r\n")
                    if reply.text:
                        text = reply.text.replace("\n", "\r\n")
                        out.append(text if text.endswith("\r\n") else text + "\r\n")
                        if reply.text.startswith("%") or "\n%" in reply.text:
                            out.append("\r\n")
                    if reply.close:
                        process.stdout.write("".join(out))
                        process.exit(0)
                        return
                    out.append(session.prompt())
                elif ch in "\x08\x7f":
                    if line:
                        line = line[:-1]
                        if session.echo:
                            out.append("\x08 \x08")
                elif ch == "\x03":
                    line = ""
                    out.append("\r\n" + session.prompt())
                elif ch == "\t" or ch >= " ":
                    line += ch
                    if session.echo:
                        out.append(ch)
            if out:
                process.stdout.write("".join(out))
    except (BrokenPipeError, ConnectionError, asyncssh.Error):
        pass
    process.exit(0)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m msib.lab.devsim",
                                description="A Cisco IOS device simulator over SSH (a test stand-in, not a device).")
    p.add_argument("--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (printed on stdout)")
    p.add_argument("--state", type=Path, required=True, help="state directory (host key, configs)")
    p.add_argument("--username", default="msib", help="login user (privilege 1)")
    p.add_argument("--password-env", required=True, metavar="VAR", help="environment variable holding the password")
    p.add_argument("--enable-env", required=True, metavar="VAR",
                   help="environment variable holding the enable secret")
    p.add_argument("--hostname", default="Router", help="hostname of a fresh device (a stored config wins)")
    p.add_argument("--interfaces", default="GigabitEthernet0/0,GigabitEthernet0/1,GigabitEthernet0/2",
                   help="comma-separated physical interfaces of a fresh device")
    p.add_argument("--reload", action="store_true", help="boot from startup-config (as after a power cycle)")
    p.add_argument("-v", "--verbose", action="store_true", help="log sessions and configuration commands")
    return p.parse_args(argv)


def build_device(args: argparse.Namespace, password: str, enable: str) -> Device:
    """A device as the state directory left it, with the login and enable secret from the environment."""
    device = Device(hostname=args.hostname)
    for name in filter(None, (n.strip() for n in args.interfaces.split(","))):
        device.interfaces[name] = Interface(name)
    state = StateDir(args.state)
    state.boot(device, reload=args.reload)
    changed = False
    user = device.users.get(args.username)
    if user is None or not type9_verify(password, user[1]):
        device.users[args.username] = (user[0] if user else 1, type9_hash(password))
        changed = True
    if not device.enable_secret or not type9_verify(enable, device.enable_secret):
        device.enable_secret = type9_hash(enable)
        changed = True
    if changed or not state.running.exists():
        device.changed("provisioning")
    return device


async def serve(args: argparse.Namespace, password: str, enable: str) -> None:
    """Run the simulator until SIGTERM/SIGINT."""
    state = StateDir(args.state)
    key = state.host_key()
    device = build_device(args, password, enable)
    server = await asyncssh.listen(
        args.listen, args.port, server_host_keys=[key], server_factory=lambda: _SshServer(device),
        process_factory=lambda proc: _serve_session(device, proc), line_editor=False, encoding="utf-8",
        allow_scp=False, sftp_factory=None, agent_forwarding=False, x11_forwarding=False,
        allow_pty=True, login_timeout=30,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"devsim ready {args.listen} {port} {key.get_fingerprint('sha256')}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m msib.lab.devsim``; exit 2 on unusable arguments or state."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="devsim %(levelname)s %(message)s")
    secrets_: dict[str, str] = {}
    for var in (args.password_env, args.enable_env):
        value = os.environ.get(var)
        if not value:
            print(f"devsim: environment variable {var} is not set (it holds a secret)", file=sys.stderr)
            return 2
        secrets_[var] = value
    try:
        asyncio.run(serve(args, secrets_[args.password_env], secrets_[args.enable_env]))
    except (ValueError, OSError) as exc:
        print(f"devsim: {exc}", file=sys.stderr)
        return 2
    return 0
