"""TLS contexts for every listener and client: TLS 1.2 at least, the ANS cipher list for 1.2 (domain.md 6).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import datetime as dt
import ssl
import weakref
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.config import ConfigError, TLSSettings


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
    """Raise :class:`ConfigError` (one sentence naming ``tls.certificate`` or ``tls.private_key``) when
    ``settings`` cannot make a server context: a file that is not PEM, an expired or not yet valid
    certificate, a key that is not the certificate's. OpenSSL's own codes name neither key nor file."""
    certificate, private_key = _read_pair(settings.certificate, settings.private_key)
    if not certificate or private_key is None:
        return  # server_context below says why
    first = certificate[0]
    now = dt.datetime.now(dt.UTC)
    if first.not_valid_after_utc < now:
        raise ConfigError(f"Configuration key 'tls.certificate' names a certificate that expired on "
                          f"{first.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({settings.certificate}).")
    if first.not_valid_before_utc > now:
        raise ConfigError(f"Configuration key 'tls.certificate' names a certificate that is not valid before "
                          f"{first.not_valid_before_utc:%Y-%m-%d %H:%M} UTC ({settings.certificate}).")
    if first.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != \
            private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo):
        raise ConfigError(f"Configuration key 'tls.private_key' names a key ({settings.private_key}) that does "
                          f"not match the certificate of 'tls.certificate' ({settings.certificate}).")
    try:
        server_context(settings)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"Configuration key 'tls.certificate' names a certificate that cannot be used with "
                          f"'tls.private_key' ({reason}).") from None


def _read_pair(cert_path: Path, key_path: Path) -> tuple[list[Any], Any]:
    """The certificate chain and private key in the two files; :class:`ConfigError` naming the bad one."""
    try:
        cert_data = cert_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Configuration key 'tls.certificate' names {str(cert_path)!r}, which cannot be read "
                          f"({exc.strerror or exc}).") from None
    try:
        key_data = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Configuration key 'tls.private_key' names {str(key_path)!r}, which cannot be read "
                          f"({exc.strerror or exc}).") from None
    try:
        chain = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise ConfigError(f"Configuration key 'tls.certificate' names {str(cert_path)!r}, which holds no PEM "
                          "certificate.") from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise ConfigError(f"Configuration key 'tls.private_key' names {str(key_path)!r}, a key protected by a "
                          "passphrase: the gateway needs it unencrypted (readable by its user only).") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"Configuration key 'tls.private_key' names {str(key_path)!r}, which holds no PEM "
                          "private key.") from None
    return chain, key


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
