"""TLS contexts for every listener and client: TLS 1.2 at least, the ANS cipher list for 1.2 (domain.md 6)."""

from __future__ import annotations

import ssl
from pathlib import Path

from gateway.config import TLSSettings


def _harden(context: ssl.SSLContext, settings: TLSSettings) -> ssl.SSLContext:
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if settings.minimum_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.set_ciphers(settings.ciphers)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def server_context(settings: TLSSettings, *, request_client_cert: bool = False) -> ssl.SSLContext:
    """A server context; with ``request_client_cert`` a client certificate is asked for (and verified if sent)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), settings)
    context.load_cert_chain(str(settings.certificate), str(settings.private_key))
    if request_client_cert and settings.client_ca is not None:
        context.load_verify_locations(cafile=str(settings.client_ca))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(settings: TLSSettings, ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context that verifies the peer against ``ca_file`` (or the system store)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), settings)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    else:
        context.load_default_certs()
    return context
