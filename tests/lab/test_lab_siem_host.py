"""The lab's SIEM host runs a real TLS syslog receiver and the lab SIEM API, verified by the lab CA."""

from __future__ import annotations

import secrets
import socket
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

def _creds(lab: Lab) -> tuple[str, str]:
    env = dict(line.split("=", 1) for line in endpoints(lab).credentials_file.read_text().splitlines())
    return env["MSIB_SIEM_USER"], env["MSIB_SIEM_PASSWORD"]


def _send_tls(lab: Lab, peer_name: str, text: str) -> str:
    """Send one RFC 5425 message to the SIEM's plain-TLS intake (6514), checking its name as `peer_name`.

    Sent from the control node to the SIEM's management address: the circuit firewalls forward only
    the transport the site plan chose (RELP, 2514, by default), so a collector cannot reach 6514, by
    design; and the control node has no route of its own to the SIEM's circuit-side address (it
    would leave the lab). Returns "" when sent, else the TLS/socket error."""
    ctx = ssl.create_default_context(cafile=str(endpoints(lab).ca_file))
    m = f"<13>1 2026-11-25T10:00:00Z msib-siem-test msibtest - - - {text}".encode()
    try:
        with (socket.create_connection((str(lab.spec.siem.management_address), 6514), timeout=10) as raw,
              ctx.wrap_socket(raw, server_hostname=peer_name) as s):
            s.sendall(str(len(m)).encode() + b" " + m)
    except (OSError, ssl.SSLError) as err:
        return f"{type(err).__name__}: {err}"
    return ""


def test_event_over_tls_lands_in_the_siem_per_source_file(lab: Lab) -> None:
    tag = f"canary-{secrets.token_hex(6)}"
    failed = _send_tls(lab, lab.plan.siem.syslog.peer_name or "", tag)
    assert failed == "", failed
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = subprocess.run(lab.ssh_argv("siem", ["sudo", "grep", "-c", tag, f"{EVENTS_DIR}/msib-siem-test.log"]),
                             capture_output=True, text=True)
        if got.stdout.strip() == "1":
            break
        time.sleep(0.5)
    assert got.stdout.strip() == "1", "the event did not reach the SIEM's per-source file"


def test_siem_tls_refuses_a_client_that_expects_another_name(lab: Lab) -> None:
    failed = _send_tls(lab, "not-the-siem.example", "x")
    assert "CERTIFICATE_VERIFY_FAILED" in failed or "match" in failed, failed


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
