"""Client certificates: verifying an operator's relay certificate, and logging software in with theirs (SASL EXTERNAL).

The TLS layer (OpenSSL) verifies the chain to the configured trust anchors. The relay's TLS context lets a
certificate that is only out of its validity period through the handshake (``X509_V_FLAG_NO_CHECK_TIME``) so
that :class:`RelayCertificateVerifier` can refuse it at SMTP level with a reply a person can read, together with
key usage and revocation (CRL) checks. A certificate from an unknown CA never completes the handshake.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.auth.accounts import Account, Authenticator
from gateway.config import OutboundSettings, RelaySettings, TLSSettings
from gateway.routing import replies
from gateway.routing.replies import Reply
from gateway.tlsctx import client_context, server_context

log = structlog.get_logger("gateway.trust")

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: validity dates are checked by us, to answer with a clear SMTP reply.
_NO_CHECK_TIME = 0x200000


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex: how a software mailbox is bound to its certificate."""
    return hashlib.sha256(der).hexdigest()


def peer_certificate(ssl_object: Any) -> bytes | None:
    """The DER certificate the client presented on this TLS connection (verified by the handshake), or None."""
    if ssl_object is None:
        return None
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except (ValueError, AttributeError):
        return None
    return der if isinstance(der, bytes) and der else None


async def login_external(authenticator: Authenticator, ssl_object: Any, authzid: str, client: str,
                         protocol: str) -> Account | Reply:
    """SASL EXTERNAL (RFC 4422 appendix A) for any protocol: the mailbox bound to the client certificate.

    ``ssl_object`` is the connection's :class:`ssl.SSLObject` (``transport.get_extra_info("ssl_object")``);
    ``authzid`` is the optional authorisation identity sent by the client (empty = the bound mailbox).
    Failures count towards the same per-address throttle as passwords.
    """
    if authenticator.throttle.blocked(client):
        return replies.LOGIN_THROTTLED
    der = peer_certificate(ssl_object)
    if der is None:
        authenticator.throttle.failed(client)
        log.info("login", protocol=protocol, mechanism="EXTERNAL", outcome="no_certificate")
        return replies.EXTERNAL_NO_CERTIFICATE
    account = await authenticator.login_certificate(fingerprint(der), authzid, protocol)
    if account is None:
        authenticator.throttle.failed(client)
        return replies.EXTERNAL_NOT_BOUND
    authenticator.throttle.succeeded(client)
    return account


# --- TLS contexts for operator exchanges ------------------------------------------------------------------------
def relay_server_context(tls: TLSSettings, relay: RelaySettings) -> ssl.SSLContext:
    """Server side of the relay: asks every client for a certificate chaining to the trust anchors."""
    context = server_context(tls)
    context.load_verify_locations(cafile=str(relay.trust_anchors))
    context.verify_mode = ssl.CERT_OPTIONAL  # "none sent" becomes a clear 5.7.0 reply instead of a TLS alert
    context.verify_flags |= _NO_CHECK_TIME
    return context


def outbound_client_context(tls: TLSSettings, outbound: OutboundSettings) -> ssl.SSLContext:
    """Client side towards other operators: our certificate, peer verified against the trust anchors and name."""
    context = client_context(tls, outbound.trust_anchors)
    context.load_cert_chain(str(outbound.certificate), str(outbound.private_key))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


# --- relay peer verification -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeerVerdict:
    """What the relay knows about the operator at the other end of a TLS connection."""

    reply: Reply | None  # None = the certificate is acceptable
    reason: str
    names: tuple[str, ...] = ()
    subject: str = ""
    fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return self.reply is None


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names of a certificate (subjectAltName), or its common name when it has none."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(dict.fromkeys(names))


@dataclass
class _CRLCache:
    mtime: float = -1.0
    crl: x509.CertificateRevocationList | None = None
    error: str | None = None


@dataclass
class RelayCertificateVerifier:
    """Validity, key usage and revocation of a peer certificate whose chain the TLS layer already verified."""

    anchors_path: Path
    crl_path: Path | None = None
    _issuers: dict[bytes, list[x509.Certificate]] = field(default_factory=dict)
    _crl: _CRLCache = field(default_factory=_CRLCache)

    def __post_init__(self) -> None:
        for cert in x509.load_pem_x509_certificates(self.anchors_path.read_bytes()):
            self._issuers.setdefault(cert.subject.public_bytes(), []).append(cert)

    def _load_crl(self) -> _CRLCache:
        assert self.crl_path is not None
        try:
            mtime = self.crl_path.stat().st_mtime
            if mtime != self._crl.mtime:
                data = self.crl_path.read_bytes()
                crl = (x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----")
                       else x509.load_der_x509_crl(data))
                self._crl = _CRLCache(mtime, crl, None)
        except (OSError, ValueError) as exc:
            self._crl = _CRLCache(-1.0, None, f"revocation list unreadable: {exc}")
        return self._crl

    def check(self, der: bytes | None, now: dt.datetime | None = None) -> PeerVerdict:
        if der is None:
            return PeerVerdict(replies.RELAY_NO_CERTIFICATE, "no_certificate")
        now = now or dt.datetime.now(dt.UTC)
        cert = x509.load_der_x509_certificate(der)
        base: dict[str, Any] = {"names": certificate_names(cert), "subject": cert.subject.rfc4514_string()[:300],
                                "fingerprint": fingerprint(der)}
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return PeerVerdict(replies.RELAY_CERT_EXPIRED, "expired", **base)
        issuers = self._issuers.get(cert.issuer.public_bytes(), [])
        if issuers and not any(i.not_valid_before_utc <= now <= i.not_valid_after_utc for i in issuers):
            return PeerVerdict(replies.RELAY_CERT_EXPIRED, "issuer_expired", **base)
        if not _client_usage(cert):
            return PeerVerdict(replies.RELAY_CERT_USAGE, "key_usage", **base)
        if self.crl_path is not None:
            cached = self._load_crl()
            if cached.crl is None:
                return PeerVerdict(replies.RELAY_CRL_UNAVAILABLE, "crl_unreadable", **base)
            crl = cached.crl
            signer = [i for i in issuers
                      if crl.issuer == i.subject and crl.is_signature_valid(i.public_key())]  # type: ignore[arg-type]
            if crl.issuer == cert.issuer:
                if not signer:
                    return PeerVerdict(replies.RELAY_CRL_UNAVAILABLE, "crl_signature", **base)
                if crl.next_update_utc is not None and crl.next_update_utc < now:
                    return PeerVerdict(replies.RELAY_CRL_UNAVAILABLE, "crl_expired", **base)
                if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                    return PeerVerdict(replies.RELAY_CERT_REVOKED, "revoked", **base)
        return PeerVerdict(None, "ok", **base)


def _client_usage(cert: x509.Certificate) -> bool:
    """Key usage allows signing the handshake, and extended key usage (when present) allows client auth."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
