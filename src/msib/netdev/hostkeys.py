"""First contact with a vendor firewall: fetch the host key it presents, pin it once its fingerprint is checked."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from msib.fsutil import atomic_write
from msib.netdev.model import DeviceTimeout, DeviceUnreachable, HostKey, HostKeyMismatch

log = logging.getLogger("msib.netdev")


def scan_host_key(host: str, port: int = 22, timeout: float = 10.0) -> HostKey:
    """Fetch the host key a device presents (no login). Trust it only after checking its fingerprint.

    Raises:
        DeviceUnreachable, DeviceTimeout: nothing answers, or no SSH.
    """
    import paramiko

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise DeviceTimeout(f"{host}:{port}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise DeviceUnreachable(f"{host}:{port}: {exc.strerror or exc}") from None
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        return HostKey(host, port, key.get_name(), key.get_base64())
    except paramiko.SSHException as exc:
        raise DeviceTimeout(f"{host}:{port}: SSH failed: {exc}") from None
    finally:
        transport.close()
        sock.close()


def trust_host_key(known_hosts: Path, key: HostKey, fingerprint: str) -> bool:
    """Pin `key` in `known_hosts` if it matches the `fingerprint` checked out of band.

    Returns True when the line was added, False when the same key was already pinned.

    Raises:
        HostKeyMismatch: `fingerprint` differs from the key, or another key is already pinned.
    """
    if fingerprint.strip() != key.fingerprint:
        raise HostKeyMismatch(f"{key.host}:{key.port} presents {key.fingerprint}, not the expected "
                              f"{fingerprint.strip()}; nothing written")
    import paramiko

    existing = paramiko.HostKeys()
    if known_hosts.exists():
        existing.load(str(known_hosts))
    name = key.host if key.port == 22 else f"[{key.host}]:{key.port}"
    pinned = existing.lookup(name)
    if pinned is not None and key.key_type in pinned:
        if pinned[key.key_type].get_base64() == key.key_base64:
            return False
        raise HostKeyMismatch(f"{name}: {known_hosts} already pins another {key.key_type} key; "
                              f"remove it by hand if the device was really replaced")
    old = known_hosts.read_text(encoding="utf-8") if known_hosts.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write(known_hosts, old + key.known_hosts_line(), mode=0o644)
    log.info("pinned %s %s in %s", name, key.fingerprint, known_hosts)
    return True
