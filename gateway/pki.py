"""A development PKI standing in for IGC-Santé: root CA, intermediate CA, and the certificates the gateway uses.

Used by ``gateway init``, ``gateway pki`` and the tests. Production takes real certificate files from the
configuration; nothing generated here is ever committed (the data folder is git-ignored).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate with its key and the chain above it (intermediate first)."""

    certificate: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def fingerprint(self) -> str:
        """SHA-256 fingerprint, lower-case hex: how software accounts are bound to a certificate."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def write(self, cert_path: Path, key_path: Path) -> None:
        """Write the certificate (with its chain, as a TLS server presents it) and the key (mode 0600)."""
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.certificate, *self.chain))
        cert_path.write_bytes(pem)
        key_path.touch(mode=0o600, exist_ok=True)
        key_path.write_bytes(self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _ecdsa() -> ec.EllipticCurvePrivateKey:
    """A P-256 key: a TLS handshake signs with it in ~0.03 ms of a core, against ~1 ms for RSA-2048."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organisation: str = "Gateway development PKI") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DevelopmentPKI:
    """A root and an intermediate CA that issue server, client and signing certificates."""

    def __init__(self, root: Issued, intermediate: Issued) -> None:
        self.root = root
        self.intermediate = intermediate

    @classmethod
    def create(cls, name: str = "Gateway Test") -> DevelopmentPKI:
        root_key = _rsa(3072)
        now = _now()
        root_cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} Root CA"))
            .issuer_name(_name(f"{name} Root CA"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        root = Issued(root_cert, root_key)
        inter_key = _rsa()
        inter_cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} Intermediate CA"))
            .issuer_name(root_cert.subject)
            .public_key(inter_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        return cls(root, Issued(inter_cert, inter_key, (root_cert,)))

    @classmethod
    def load(cls, folder: Path) -> DevelopmentPKI:
        """Read a PKI written by :meth:`save`."""
        def read(stem: str) -> Issued:
            certs = x509.load_pem_x509_certificates((folder / f"{stem}.crt").read_bytes())
            key = serialization.load_pem_private_key((folder / f"{stem}.key").read_bytes(), None)
            assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
            return Issued(certs[0], key, tuple(certs[1:]))
        return cls(read("root-ca"), read("intermediate-ca"))

    def save(self, folder: Path) -> None:
        self.root.write(folder / "root-ca.crt", folder / "root-ca.key")
        self.intermediate.write(folder / "intermediate-ca.crt", folder / "intermediate-ca.key")
        (folder / "ca-bundle.crt").write_bytes(self.trust_bundle())

    def trust_bundle(self) -> bytes:
        """The trust anchors peers verify against: root and intermediate, PEM."""
        return b"".join(c.certificate.public_bytes(serialization.Encoding.PEM)
                        for c in (self.intermediate, self.root))

    def issue(
        self,
        common_name: str,
        *,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
        signing: bool = False,
        organisation: str = "Gateway development PKI",
        valid_days: int = 825,
        not_before: dt.datetime | None = None,
        key: PrivateKey | None = None,
    ) -> Issued:
        """Issue an end-entity certificate from the intermediate CA (for ``key``, by default a new RSA-2048 key)."""
        key = key or _rsa()
        start = not_before or (_now() - dt.timedelta(hours=1))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organisation))
            .issuer_name(self.intermediate.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.intermediate.key.public_key()), critical=False)
        )
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=signing,
            key_encipherment=(server or client) and isinstance(key, rsa.RSAPrivateKey),
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        if alt:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.intermediate.key, hashes.SHA256())
        return Issued(cert, key, (self.intermediate.certificate,))

    def server(self, hostname: str) -> Issued:
        """A TLS server certificate for ``hostname``, also valid for localhost and 127.0.0.1 (development).

        Its key is ECDSA P-256 (:func:`_ecdsa`), as most public servers' now are: every connection's handshake signs
        once with it. The listeners take either kind.
        """
        names = tuple(dict.fromkeys((hostname, "localhost")))
        return self.issue(hostname, dns_names=names, ip_addresses=("127.0.0.1", "::1"), server=True, client=True,
                          key=_ecdsa())

    def operator(self, hostname: str, domains: tuple[str, ...] = ()) -> Issued:
        """An operator's MTA certificate: server and client authentication (mutual TLS between operators).

        It names the MTA's host name and the mail domains it serves, which is how a relay peer's certificate is
        matched against the whitelist; also valid for localhost and 127.0.0.1 (development).
        """
        names = tuple(dict.fromkeys((hostname, *domains, "localhost")))
        return self.issue(hostname, dns_names=names, ip_addresses=("127.0.0.1", "::1"), server=True, client=True)

    def software(self, name: str, valid_days: int = 825) -> Issued:
        """A client certificate for an applicative or organisational mailbox (SASL EXTERNAL login)."""
        return self.issue(name, client=True, valid_days=valid_days)

    def signing(self, name: str) -> Issued:
        """A signing certificate (non-repudiation), e.g. for the DMP bridge's VIHF assertions."""
        return self.issue(name, signing=True)

    def crl(self, revoked: tuple[x509.Certificate, ...] = (), next_update_days: int = 7) -> bytes:
        """A PEM certificate revocation list signed by the intermediate CA, listing ``revoked``."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.intermediate.certificate.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=next_update_days))
        )
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build())
        crl = builder.sign(self.intermediate.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)
