"""TLS contexts for every listener and client: TLS 1.2 at least, the ANS cipher list for 1.2 (domain.md 6)."""

from __future__ import annotations

import ssl
import weakref
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
    _SERVER_CONTEXTS[context] = settings
    return context


#: Every live server context and the settings it was made from, so that a reload (SIGHUP) can give new
#: connections the new certificate without closing listeners: OpenSSL copies the certificate into each
#: connection when it starts, so open sessions keep theirs.
_SERVER_CONTEXTS: weakref.WeakKeyDictionary[ssl.SSLContext, TLSSettings] = weakref.WeakKeyDictionary()


def check_server_settings(settings: TLSSettings) -> None:
    """Raise :class:`ssl.SSLError` or :class:`OSError` when ``settings`` cannot make a server context."""
    server_context(settings)


def reload_server_contexts(old: TLSSettings, new: TLSSettings) -> int:
    """Load ``new``'s certificate, key and protocol settings into every live context made from ``old``'s files.

    Contexts made from other files (say an endpoint with its own certificate) are left alone. Returns how
    many contexts now carry the new certificate.
    """
    count = 0
    for context, settings in list(_SERVER_CONTEXTS.items()):
        if (settings.certificate, settings.private_key) != (old.certificate, old.private_key):
            continue
        _harden(context, new)
        context.load_cert_chain(str(new.certificate), str(new.private_key))
        _SERVER_CONTEXTS[context] = new
        count += 1
    return count


def client_context(settings: TLSSettings, ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context that verifies the peer against ``ca_file`` (or the system store)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), settings)
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    else:
        context.load_default_certs()
    return context
