"""The IMAP listeners: practice software logs in with its client certificate (SASL EXTERNAL)."""

from __future__ import annotations

import imaplib
import ssl
from pathlib import Path

import pytest
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

SOFTWARE = "lgc@pro.gateway.test"


def tls_with(pki: PKIFiles, folder: Path, name: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_bundle))
    if name is not None:
        issued = pki.pki.software(name)
        issued.write(folder / f"{name}.crt", folder / f"{name}.key")
        context.load_cert_chain(str(folder / f"{name}.crt"), str(folder / f"{name}.key"))
    return context


def test_software_logs_in_with_its_certificate_and_a_wrong_one_is_refused(gateway: GatewayProcess, pki: PKIFiles,
                                                                           tmp_path: Path):
    store = Store(gateway.store_url)
    bound = pki.pki.software("lgc-bound")
    store.add_mailbox(SOFTWARE, "APP", certificate_fingerprint=bound.fingerprint())
    bound.write(tmp_path / "bound.crt", tmp_path / "bound.key")
    context = ssl.create_default_context(cafile=str(pki.ca_bundle))
    context.load_cert_chain(str(tmp_path / "bound.crt"), str(tmp_path / "bound.key"))

    with imaplib.IMAP4_SSL("127.0.0.1", gateway.imaps_port, ssl_context=context) as client:
        assert "AUTH=EXTERNAL" in client.capabilities
        typ, _ = client.authenticate("EXTERNAL", lambda _challenge: b"")
        assert typ == "OK"
        assert client.select("INBOX")[0] == "OK"

    for other in (tls_with(pki, tmp_path, "lgc-unbound"), tls_with(pki, tmp_path, None)):
        with imaplib.IMAP4_SSL("127.0.0.1", gateway.imaps_port, ssl_context=other) as client:
            with pytest.raises(imaplib.IMAP4.error):
                client.authenticate("EXTERNAL", lambda _challenge: b"")
