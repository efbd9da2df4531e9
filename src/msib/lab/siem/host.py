"""Provision the lab's SIEM host: the stand-in for the national SIEM.

It runs two real services, both over TLS with certificates of the lab CA:

- **rsyslog** receiving RFC 5425 syslog over TLS (6514) and RELP over TLS (2514), storing what it
  receives one file per source (`/var/lib/msib-siem/events/<HOSTNAME>.log`);
- the **lab SIEM API** (`msib.lab.siem.api`, standing in for the Wazuh server API v4) on the
  management address, port 55000.

The API's code is copied onto the host and run with the host's own Python (stdlib only). The API
user's password is generated once, kept on the controller in `<lab state>/siem/credentials.env`
(mode 0600), and never printed.
"""

from __future__ import annotations

import io
import json
import secrets
import shlex
import socket
import ssl
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from msib.errors import LabError
from msib.fsutil import atomic_write
from msib.lab.pki import LabCA

if TYPE_CHECKING:
    from msib.lab.plan import LabHost, LabView

API_PORT = 55000
RELP_PORT = 2514
EVENTS_DIR = "/var/lib/msib-siem/events"
SIEM_USER = "msib"
PACKAGES = ("rsyslog", "rsyslog-gnutls", "rsyslog-relp")
_PKG = Path(__file__).resolve().parents[2]  # src/msib
API_DIR = "opt/msib-siemlab"
# What the API needs besides msib/lab/siem/ on the SIEM host (its python3, standard library only).
API_SOURCES = ("__init__.py", "errors.py", "secrets.py", "fsutil.py", "siem/__init__.py", "siem/jwt.py",
               "lab/__init__.py")

RECEIVER_CONF = """\
# The lab SIEM's receiver (stands in for the national SIEM's syslog intake).
# RFC 5425 syslog over TLS on 6514 and RELP over TLS on 2514, one file per source host.
global(
  DefaultNetstreamDriverCAFile="/etc/msib-siem/ca.pem"
  DefaultNetstreamDriverCertFile="/etc/msib-siem/siem.pem"
  DefaultNetstreamDriverKeyFile="/etc/msib-siem/siem.key"
)
module(load="imtcp" MaxSessions="2000")
input(type="imtcp" port="6514" ruleset="siem_in"
      StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
module(load="imrelp")
input(type="imrelp" port="{relp_port}" ruleset="siem_in" tls="on"
      tls.caCert="/etc/msib-siem/ca.pem" tls.myCert="/etc/msib-siem/siem.pem"
      tls.myPrivKey="/etc/msib-siem/siem.key" tls.authMode="certvalid")

template(name="msib_per_source" type="string"
         string="{events}/%HOSTNAME:::secpath-replace%.log")
template(name="msib_line" type="string"
         string="%TIMESTAMP:::date-rfc3339% %HOSTNAME% %syslogtag%%msg:::sp-if-no-1st-sp%%msg:::drop-last-lf%\\n")
ruleset(name="siem_in" queue.type="LinkedList" queue.size="500000" queue.dequeueBatchSize="4096") {{
  action(type="omfile" dynaFile="msib_per_source" template="msib_line" dynaFileCacheSize="512"
         asyncWriting="on" ioBufferSize="256k" flushInterval="1" flushOnTXEnd="off"
         dirCreateMode="0750" fileCreateMode="0640")
}}
"""

API_UNIT = """\
[Unit]
Description=msib lab SIEM API (stands in for the Wazuh server API v4)
After=network.target

[Service]
Environment=PYTHONPATH=/opt/msib-siemlab
ExecStart=/usr/bin/python3 -m msib.lab.siem.api --listen {listen} --port {port} \\
  --state /var/lib/msib-siemlab --cert /etc/msib-siem/siem.pem --key /etc/msib-siem/siem.key \\
  --users-file /etc/msib-siem/users.json --quiet
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class SiemEndpoints:
    """What clients of the lab SIEM need: where it is, its CA and the API credentials file."""

    api_url: str
    syslog_host: str
    ca_file: Path
    credentials_file: Path


def endpoints(lab: LabView) -> SiemEndpoints:
    """Where the lab SIEM listens and where its CA and credentials live on the controller."""
    s = lab.spec.siem
    return SiemEndpoints(
        api_url=f"https://{s.management_address}:{API_PORT}",
        syslog_host=str(s.address),
        ca_file=lab.state_dir / "pki" / "ca.pem",
        credentials_file=lab.state_dir / "siem" / "credentials.env",
    )


def _credentials(path: Path) -> str:
    """The API password, generated once (0600 file in `KEY=value` form, sourceable by a shell)."""
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("MSIB_SIEM_PASSWORD="):
                return line.split("=", 1)[1]
    password = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, f"MSIB_SIEM_USER={SIEM_USER}\nMSIB_SIEM_PASSWORD={password}\n", mode=0o600)
    return password


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _bundle(lab: LabView, password: str) -> bytes:
    """A tar of every file the SIEM host needs (certificates, configs, the API's code)."""
    from msib.lab.siem.users import hash_password

    s = lab.spec.siem
    ca = issue_lab_certificates(lab)
    cert = ca.server_cert("siem", dns_names=_siem_names(lab),
                          ip_addresses=[str(s.address), str(s.management_address)])
    users = json.dumps({"users": {SIEM_USER: {"password": hash_password(password), "role": "administrator"}}})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "etc/msib-siem/ca.pem", ca.cert_path.read_bytes())
        _add(tar, "etc/msib-siem/siem.pem", cert.cert.read_bytes())
        _add(tar, "etc/msib-siem/siem.key", cert.key.read_bytes(), 0o600)
        _add(tar, "etc/msib-siem/users.json", users.encode() + b"\n", 0o600)
        _add(tar, "etc/rsyslog.d/50-msib-siem-receiver.conf",
             RECEIVER_CONF.format(relp_port=RELP_PORT, events=EVENTS_DIR).encode())
        _add(tar, "etc/systemd/system/msib-siemlab.service",
             API_UNIT.format(listen=s.management_address, port=API_PORT).encode())
        for rel in API_SOURCES:
            _add(tar, f"{API_DIR}/msib/{rel}", (_PKG / rel).read_bytes())
        for src in sorted((_PKG / "lab" / "siem").glob("*.py")):
            _add(tar, f"{API_DIR}/msib/lab/siem/{src.name}", src.read_bytes())
    return buf.getvalue()


def _siem_names(lab: LabView) -> list[str]:
    peer = lab.plan.siem.syslog.peer_name or lab.plan.siem.syslog.host
    return [peer, lab.spec.siem.name]


def issue_lab_certificates(lab: LabView) -> LabCA:
    """The lab CA, the SIEM's server certificate and one certificate per collector (idempotent).

    Collectors' certificates serve their TLS input and, as clients, mutual TLS to the SIEM; they
    are what `playbooks/vars/lab.yml` (collector_cert_dir) points the collector role at.
    """
    s = lab.spec.siem
    ca = LabCA.ensure(lab.state_dir / "pki")
    ca.server_cert("siem", dns_names=_siem_names(lab), ip_addresses=[str(s.address), str(s.management_address)])
    for _circuit, app in lab.plan.appliances():
        if app.role == "collector":
            ca.server_cert(app.name, dns_names=[f"{app.name}.{lab.plan.code}.msib"], client_auth=True)
    return ca


def lab_role_vars(lab: LabView) -> dict[str, str]:
    """The role variables of the lab (what playbooks/vars/lab.yml says), certificates issued."""
    ca = issue_lab_certificates(lab)
    return {"collector_ca_file": str(ca.cert_path), "collector_cert_dir": str(ca.cert_path.parent)}


def _ssh(lab: LabView, host: LabHost, script: str, data: bytes | None = None) -> str:
    proc = subprocess.run(lab.ssh_argv(host.name, ["sudo", "sh", "-c", shlex.quote(script)]), input=data,
                          capture_output=True, timeout=300)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise LabError(f"provisioning the lab SIEM on {host.name} failed: {err[-1] if err else proc.returncode}")
    return proc.stdout.decode(errors="replace")


def provision(lab: LabView) -> SiemEndpoints:
    """Install and start the lab SIEM's receiver and API on the lab's SIEM host (idempotent)."""
    ep = endpoints(lab)
    host = lab.host(lab.spec.siem.name)
    password = _credentials(ep.credentials_file)
    bundle = _bundle(lab, password)
    _ssh(lab, host, "command -v rsyslogd >/dev/null && dpkg -s rsyslog-gnutls rsyslog-relp >/dev/null 2>&1 || "
         "{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
         + " ".join(PACKAGES) + " >/dev/null; }")
    _ssh(lab, host, f"tar -x --no-same-owner -C / && mkdir -p {EVENTS_DIR} && "
         "rsyslogd -N1 -f /etc/rsyslog.conf >/dev/null && systemctl daemon-reload && "
         "systemctl enable --quiet msib-siemlab.service && systemctl restart msib-siemlab.service rsyslog.service",
         bundle)
    _wait_tls(str(lab.spec.siem.management_address), API_PORT, ep.ca_file)
    _wait_port_in_netns(host.netns(lab.spec.name), str(lab.spec.siem.address), 6514)
    return ep


def _wait_port_in_netns(netns: str, address: str, port: int, timeout: float = 30) -> None:
    """Wait until something listens at address:port, asked from inside a lab namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["ip", "netns", "exec", netns, "nc", "-z", "-w", "1", address, str(port)],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise LabError(f"the lab SIEM did not listen on {address}:{port} within {timeout:.0f}s")


def _wait_tls(address: str, port: int, ca_file: Path, timeout: float = 30) -> None:
    """Wait until a TLS server answers at address:port with a certificate for that address."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=2) as sock, \
                    ctx.wrap_socket(sock, server_hostname=address):
                return
        except (OSError, ssl.SSLError) as exc:
            last = str(exc)
            time.sleep(0.2)
    raise LabError(f"the lab SIEM API did not answer over TLS at {address}:{port}: {last}")
