"""The lab's PKI: one CA, server certificates (names and addresses in SAN), client certificates.

Everything TLS in the lab (the lab SIEM's HTTPS API, its syslog/RELP receiver, the collectors)
is verified against this CA, as the real SIEM's channels are against the site's CA. Keys are
written with mode 0600 (never into git: `.gitignore` ignores `*.key` and `*.pem`), files are
written atomically (temp file, then rename), and every call is idempotent: a certificate that
is still valid, signed by this CA, with the same names and a matching key is kept as it is.

Example:
    >>> ca = LabCA.ensure("/var/lib/msib-lab/pki")                          # doctest: +SKIP
    >>> siem = ca.server_cert("siem", dns_names=["siem.lab.msib"],
    ...                       ip_addresses=["198.18.0.10"])                  # doctest: +SKIP
    >>> siem.cert, siem.key, siem.created                                    # doctest: +SKIP
    (PosixPath('/var/lib/msib-lab/pki/siem.pem'), PosixPath('/var/lib/msib-lab/pki/siem.key'), True)

Standalone: ``python -m msib.lab.pki --dir DIR server siem --dns siem.lab.msib --ip 198.18.0.10``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from msib.errors import InputError
from msib.fsutil import atomic_write

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Lifetimes (days) and how long before expiry a certificate is renewed.
CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_BEFORE_DAYS = 30

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DNS_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class IssuedCert:
    """A certificate and its key on disk.

    Args:
        cert: PEM certificate (mode 0644).
        key: PEM private key, unencrypted (mode 0600).
        created: True when this call (re)issued it, False when an existing valid one was kept.
    """

    cert: Path
    key: Path
    created: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _fresh(cert: x509.Certificate) -> bool:
    now = _now()
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - now > dt.timedelta(
        days=RENEW_BEFORE_DAYS
    )


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise InputError(name, "not a usable certificate name", fix="use [a-z0-9._-], at most 63 characters")


class LabCA:
    """The lab's certificate authority, kept in one directory (`ca.pem`, `ca.key`).

    Build it with :meth:`ensure`; the constructor only stores what it is given.
    """

    def __init__(self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.directory = directory
        self._cert = cert
        self._key = key

    @property
    def cert_path(self) -> Path:
        """The CA certificate (what clients are told to trust)."""
        return self.directory / "ca.pem"

    @property
    def key_path(self) -> Path:
        """The CA key (mode 0600)."""
        return self.directory / "ca.key"

    @property
    def certificate(self) -> x509.Certificate:
        """The CA certificate as an object."""
        return self._cert

    @classmethod
    def ensure(cls, directory: str | Path, common_name: str = "msib lab CA") -> LabCA:
        """Load the CA in `directory`, or create it if it is missing, broken or about to expire.

        Args:
            directory: where `ca.pem` and `ca.key` live (created with mode 0700 if missing).
            common_name: the CA's subject CN when a new CA is made.

        Returns:
            The CA, ready to issue certificates.
        """
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        cert_path, key_path = directory / "ca.pem", directory / "ca.key"
        cert, key = _load_cert(cert_path), _load_key(key_path)
        if cert is not None and key is not None and _same_key(cert, key) and _fresh(cert) and _is_ca(cert):
            os.chmod(key_path, 0o600)
            return cls(directory, cert, key)
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        atomic_write(key_path, _key_pem(key), mode=0o600, make_parents=False)
        atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644, make_parents=False)
        return cls(directory, cert, key)

    def _signed_by_me(self, cert: x509.Certificate) -> bool:
        if cert.issuer != self._cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self._cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def _issue(
        self,
        name: str,
        *,
        dns_names: Sequence[str],
        ip_addresses: Sequence[IPAddress],
        usages: Sequence[x509.ObjectIdentifier],
        directory: Path,
    ) -> IssuedCert:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        wanted_san: set[x509.GeneralName] = {x509.DNSName(d) for d in dns_names}
        wanted_san |= {x509.IPAddress(ip) for ip in ip_addresses}
        cert, key = _load_cert(cert_path), _load_key(key_path)
        if (
            cert is not None and key is not None and _same_key(cert, key) and _fresh(cert)
            and self._signed_by_me(cert) and _san(cert) == wanted_san and _usages(cert) == set(usages)
        ):
            os.chmod(key_path, 0o600)
            return IssuedCert(cert_path, key_path, created=False)
        key = _new_key()
        now = _now()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, key_encipherment=False, content_commitment=False,
                    data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if wanted_san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_ordered(dns_names, ip_addresses)), critical=False
            )
        new = builder.sign(self._key, hashes.SHA256())
        atomic_write(key_path, _key_pem(key), mode=0o600, make_parents=False)
        atomic_write(cert_path, new.public_bytes(serialization.Encoding.PEM), mode=0o644, make_parents=False)
        return IssuedCert(cert_path, key_path, created=True)

    def server_cert(
        self,
        name: str,
        *,
        dns_names: Iterable[str],
        ip_addresses: Iterable[str | IPAddress] = (),
        client_auth: bool = False,
        directory: str | Path | None = None,
    ) -> IssuedCert:
        """Issue (or keep) a TLS server certificate `<name>.pem` / `<name>.key`.

        Args:
            name: file name stem, `[a-z0-9._-]`.
            dns_names: DNS names in the SAN (at least one; the first is also the subject CN).
            ip_addresses: IP addresses in the SAN (clients that connect by address check these).
            client_auth: also allow the certificate as a TLS client (a collector that relays to the
                SIEM with mutual TLS uses one certificate for both sides).
            directory: where to write; the CA's directory by default.

        Returns:
            The files, and whether they were (re)issued.

        Raises:
            InputError: a bad name, DNS name or IP address (before anything is written).
        """
        _check_name(name)
        dns = _dns_list(dns_names)
        if not dns:
            raise InputError(name, "a server certificate needs at least one DNS name", fix="pass --dns NAME")
        ips = _ip_list(ip_addresses)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        if client_auth:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        return self._issue(
            name, dns_names=dns, ip_addresses=ips, usages=usages,
            directory=Path(directory) if directory else self.directory,
        )

    def client_cert(
        self,
        name: str,
        *,
        dns_names: Iterable[str] = (),
        directory: str | Path | None = None,
    ) -> IssuedCert:
        """Issue (or keep) a TLS client certificate, for mutual TLS (e.g. a collector towards the SIEM).

        Args:
            name: file name stem and subject CN, `[a-z0-9._-]`.
            dns_names: optional DNS names in the SAN (rsyslog's x509/name checks these).
            directory: where to write; the CA's directory by default.
        """
        _check_name(name)
        return self._issue(
            name, dns_names=_dns_list(dns_names), ip_addresses=[],
            usages=[ExtendedKeyUsageOID.CLIENT_AUTH],
            directory=Path(directory) if directory else self.directory,
        )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return bc.ca


def _san(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(ext)


def _usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def _ordered(dns: Sequence[str], ips: Sequence[IPAddress]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    out += [x509.IPAddress(ip) for ip in ips]
    return out


def _dns_list(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower().rstrip(".")
        if not _DNS_RE.match(name):
            raise InputError(raw, "not a valid DNS name for a certificate", fix="use a-z, 0-9, '-' and '.'")
        if name not in out:
            out.append(name)
    return out


def _ip_list(addresses: Iterable[str | IPAddress]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for raw in addresses:
        try:
            ip = ipaddress.ip_address(str(raw).strip())
        except ValueError:
            raise InputError(str(raw), "not an IP address", fix="give an IPv4 or IPv6 address") from None
        if ip not in out:
            out.append(ip)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m msib.lab.pki`: make the lab CA and certificates from a shell (idempotent)."""
    parser = argparse.ArgumentParser(prog="python -m msib.lab.pki", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, type=Path, help="CA directory (ca.pem, ca.key)")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("ca", help="make (or keep) the CA only")
    srv = sub.add_parser("server", help="a server certificate")
    srv.add_argument("name")
    srv.add_argument("--dns", action="append", default=[], required=True)
    srv.add_argument("--ip", action="append", default=[])
    srv.add_argument("--client-auth", action="store_true", help="usable as a TLS client too")
    srv.add_argument("--out", type=Path, help="directory for the files (default: --dir)")
    cli = sub.add_parser("client", help="a client certificate (mutual TLS)")
    cli.add_argument("name")
    cli.add_argument("--dns", action="append", default=[])
    cli.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        ca = LabCA.ensure(args.dir)
        if args.what == "ca":
            print(ca.cert_path)
            return 0
        if args.what == "server":
            issued = ca.server_cert(
                args.name, dns_names=args.dns, ip_addresses=args.ip, client_auth=args.client_auth,
                directory=args.out,
            )
        else:
            issued = ca.client_cert(args.name, dns_names=args.dns, directory=args.out)
    except (InputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = "issued" if issued.created else "kept"
    print(f"{state} {issued.cert} {issued.key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
