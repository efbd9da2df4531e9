"""The lab PKI: CA, server certificates with names and addresses in SAN, client certificates."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from msib.errors import InputError
from msib.lab.pki import LabCA, main
from siem_helpers import start_lab_siem


def _san(path: Path) -> tuple[set[str], set[str]]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), {str(i) for i in san.get_values_for_type(x509.IPAddress)}


def test_keys_are_0600_and_certificates_carry_names_and_addresses(tmp_path: Path) -> None:
    ca = LabCA.ensure(tmp_path / "pki")
    issued = ca.server_cert("siem", dns_names=["siem.lab.msib"], ip_addresses=["198.18.0.10", "2001:db8::10"])
    for key in (ca.key_path, issued.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    assert _san(issued.cert) == ({"siem.lab.msib"}, {"198.18.0.10", "2001:db8::10"})
    leaf = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    leaf.verify_directly_issued_by(ca.certificate)


def test_rerunning_keeps_valid_certificates_and_reissues_changed_ones(tmp_path: Path) -> None:
    ca = LabCA.ensure(tmp_path / "pki")
    first = ca.server_cert("col-int-1", dns_names=["col-int-1.lab.msib"], ip_addresses=["198.18.31.10"])
    pem = first.cert.read_bytes()
    again = LabCA.ensure(tmp_path / "pki").server_cert(
        "col-int-1", dns_names=["col-int-1.lab.msib"], ip_addresses=["198.18.31.10"])
    assert first.created and not again.created and again.cert.read_bytes() == pem
    moved = ca.server_cert("col-int-1", dns_names=["col-int-1.lab.msib"], ip_addresses=["198.18.31.99"])
    assert moved.created and _san(moved.cert)[1] == {"198.18.31.99"}


def test_a_new_ca_reissues_every_certificate(tmp_path: Path) -> None:
    ca = LabCA.ensure(tmp_path / "pki")
    ca.server_cert("siem", dns_names=["siem.lab.msib"])
    ca.key_path.unlink()  # CA key lost: a new CA, so the old leaf no longer verifies
    new_ca = LabCA.ensure(tmp_path / "pki")
    assert new_ca.server_cert("siem", dns_names=["siem.lab.msib"]).created


def test_bad_names_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    ca = LabCA.ensure(tmp_path / "pki")
    with pytest.raises(InputError):
        ca.server_cert("siem", dns_names=["bad name"])
    with pytest.raises(InputError):
        ca.server_cert("siem", dns_names=["siem.lab"], ip_addresses=["198.18.0.300"])
    assert not (tmp_path / "pki" / "siem.pem").exists()


def test_command_line_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--dir", str(tmp_path / "pki"), "server", "siem", "--dns", "siem.lab.msib", "--ip", "198.18.0.10"]
    assert main(args) == 0 and capsys.readouterr().out.startswith("issued")
    assert main(args) == 0 and capsys.readouterr().out.startswith("kept")
    assert main(["--dir", str(tmp_path / "pki"), "server", "x", "--dns", "bad name"]) == 2


def test_mutual_tls_with_a_client_certificate(tmp_path: Path) -> None:
    ca = LabCA.ensure(tmp_path / "client-pki")
    client = ca.client_cert("col-int-1", dns_names=["col-int-1.lab.msib"])
    siem = start_lab_siem(tmp_path / "siem", client_ca=ca.cert_path)
    try:
        bare = ssl.create_default_context(cafile=str(siem.ca_file))
        with pytest.raises(httpx.TransportError), httpx.Client(verify=bare) as c:
            c.get(f"{siem.url}/msib-lab/stats")
        mutual = ssl.create_default_context(cafile=str(siem.ca_file))
        mutual.load_cert_chain(client.cert, client.key)
        with httpx.Client(verify=mutual) as c:
            assert c.get(f"{siem.url}/msib-lab/stats").status_code == 200
    finally:
        siem.stop()


def test_server_certificate_is_checked_by_address(tmp_path: Path) -> None:
    """The lab SIEM's certificate names 127.0.0.1 and siem.lab.msib; any other peer name is refused."""
    siem = start_lab_siem(tmp_path / "siem")
    try:
        ctx = ssl.create_default_context(cafile=str(siem.ca_file))
        with httpx.Client(verify=ctx) as c:
            assert c.get(f"{siem.url}/msib-lab/stats").status_code == 200
        with pytest.raises(httpx.ConnectError, match="match"), httpx.Client(verify=ctx) as c:
            c.get(f"{siem.url}/msib-lab/stats", extensions={"sni_hostname": "other.lab.msib"})
    finally:
        siem.stop()
