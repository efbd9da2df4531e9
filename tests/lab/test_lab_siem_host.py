"""The lab's SIEM host runs a real TLS syslog receiver and the lab SIEM API, verified by the lab CA."""

from __future__ import annotations

import secrets
import ssl
import subprocess
import time

import httpx
import pytest

from msib.lab import Lab
from msib.lab.pki import LabCA
from msib.lab.siem.host import EVENTS_DIR, endpoints
from msib.secrets import Secret
from msib.siem.credentials import Credentials
from msib.siem.wazuh import WazuhDriver
from siem_helpers import PREFIX_PAIR, empty_sbs, prefix_pair_scenario

pytestmark = pytest.mark.lab

SEND_TLS = """
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection((sys.argv[2], 6514), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname=sys.argv[3]) as s:
        m = ("<13>1 2026-11-25T10:00:00Z msib-siem-test msibtest - - - " + sys.argv[4]).encode()
        s.sendall(str(len(m)).encode() + b" " + m)
"""


def _creds(lab: Lab) -> tuple[str, str]:
    env = dict(line.split("=", 1) for line in endpoints(lab).credentials_file.read_text().splitlines())
    return env["MSIB_SIEM_USER"], env["MSIB_SIEM_PASSWORD"]


def _send_from_collector(lab: Lab, peer_name: str, text: str) -> subprocess.CompletedProcess[str]:
    """Send one message from col-int-1 to the SIEM over TLS (RFC 5425), checking its name as `peer_name`."""
    ca = endpoints(lab).ca_file
    subprocess.run(["scp", "-q", "-F", str(lab.ssh_config), str(ca), "col-int-1:/tmp/msib-ca.pem"], check=True)
    argv = ["python3", "-c", f"'{SEND_TLS}'", "/tmp/msib-ca.pem", str(lab.spec.siem.address), peer_name, text]
    return subprocess.run(lab.ssh_argv("col-int-1", argv), capture_output=True, text=True, timeout=60)


def test_event_over_tls_lands_in_the_siem_per_source_file(lab: Lab) -> None:
    tag = f"canary-{secrets.token_hex(6)}"
    sent = _send_from_collector(lab, lab.plan.siem.syslog.peer_name or "", tag)
    assert sent.returncode == 0, sent.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = subprocess.run(lab.ssh_argv("siem", ["sudo", "grep", "-c", tag, f"{EVENTS_DIR}/msib-siem-test.log"]),
                             capture_output=True, text=True)
        if got.stdout.strip() == "1":
            break
        time.sleep(0.5)
    assert got.stdout.strip() == "1", "the event did not reach the SIEM's per-source file"


def test_siem_tls_refuses_a_client_that_expects_another_name(lab: Lab) -> None:
    peer_check = _send_from_collector(lab, "not-the-siem.example", "x")
    assert peer_check.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in peer_check.stderr or "match" in peer_check.stderr


def test_siem_api_login_over_verified_https(lab: Lab) -> None:
    ep = endpoints(lab)
    user, password = _creds(lab)
    tls = ssl.create_default_context(cafile=ep.ca_file)
    r = httpx.post(f"{ep.api_url}/security/user/authenticate", auth=(user, password), verify=tls)
    assert r.status_code == 200
    assert r.json()["error"] == 0 and r.json()["data"]["token"].count(".") == 2
    bad = httpx.post(f"{ep.api_url}/security/user/authenticate", auth=(user, "wrong"), verify=tls)
    assert bad.status_code == 401


def test_siem_api_is_refused_with_another_ca(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = LabCA.ensure(tmp_path / "other-ca")
    with pytest.raises(httpx.ConnectError) as err:
        httpx.get(f"{endpoints(lab).api_url}/", verify=ssl.create_default_context(cafile=other.cert_path))
    assert isinstance(err.value.__context__, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
        err.value)


def test_sync_of_mcri_and_mcri_kz_on_the_lab_siem_host(lab: Lab, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """#14: SB codes that are prefixes of each other, both directions, against the lab's SIEM host."""
    ep = endpoints(lab)
    user, password = _creds(lab)

    def driver() -> WazuhDriver:
        return WazuhDriver(ep.api_url, Credentials(user, Secret(password)), ca_file=ep.ca_file)

    for first in PREFIX_PAIR:
        empty_sbs(driver, tmp_path / f"clean-{first}", PREFIX_PAIR)
        prefix_pair_scenario(driver, tmp_path / first, first, emptied=first)
    empty_sbs(driver, tmp_path / "clean-end", PREFIX_PAIR)
