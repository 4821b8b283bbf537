"""Certificate login for software (SASL EXTERNAL, RFC 4422 appendix A): a practice software presents its own
certificate on the submission listener, with no password, and sends as the mailbox bound to it."""

from __future__ import annotations

import base64
import smtplib
import ssl
from pathlib import Path

import pytest
from support.mail import PRO, as_written_all, message
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

from gateway.pki import DevelopmentPKI, Issued

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

LGC = "lgc.cabinet@pro.gateway.test"


def tls_with(pki: PKIFiles, certificate: Issued | None, folder: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_bundle))
    if certificate is not None:
        cert, key = folder / f"{certificate.fingerprint()[:12]}.crt", folder / f"{certificate.fingerprint()[:12]}.key"
        certificate.write(cert, key)
        context.load_cert_chain(str(cert), str(key))
    return context


def connect(gateway: GatewayProcess, context: ssl.SSLContext, implicit: bool = False) -> smtplib.SMTP:
    client: smtplib.SMTP
    if implicit:
        client = smtplib.SMTP_SSL("127.0.0.1", gateway.smtps_port, context=context, timeout=20)
    else:
        client = smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=20)
        client.starttls(context=context)
    client.ehlo("lgc.test")
    return client


@pytest.fixture(scope="module")
def software(pki: PKIFiles) -> Issued:
    return pki.pki.software("LGC Cabinet Test")


@pytest.fixture
def bound(gateway: GatewayProcess, software: Issued) -> Store:
    store = Store(gateway.store_url)
    store.add_mailbox(LGC, "APP", certificate_fingerprint=software.fingerprint())
    store.add_mailbox(PRO)
    return store


@pytest.mark.parametrize("implicit", [False, True])
def test_software_logs_in_with_its_certificate_and_sends(gateway: GatewayProcess, pki: PKIFiles, bound: Store,
                                                         software: Issued, tmp_path: Path, implicit: bool):
    raw = message(LGC, PRO, "Compte rendu automatique")
    with connect(gateway, tls_with(pki, software, tmp_path), implicit) as client:
        assert "EXTERNAL" in client.esmtp_features["auth"].split()
        code, text = client.docmd("AUTH", "EXTERNAL =")
        assert code == 235 and text.startswith(b"2.7.0")
        client.sendmail(LGC, [PRO], raw)
    assert as_written_all(bound.messages_in(PRO)) == [raw]


def test_external_with_matching_authzid_in_a_second_step(gateway: GatewayProcess, pki: PKIFiles, bound: Store,
                                                         software: Issued, tmp_path: Path):
    with connect(gateway, tls_with(pki, software, tmp_path)) as client:
        assert client.docmd("AUTH", "EXTERNAL")[0] == 334
        code, _ = client.docmd(base64.b64encode(LGC.encode()).decode())
        assert code == 235


@pytest.mark.parametrize("case", ["unbound certificate", "no certificate", "other authzid", "other CA"])
def test_wrong_certificate_is_refused(gateway: GatewayProcess, pki: PKIFiles, bound: Store, software: Issued,
                                     tmp_path: Path, case: str):
    certificate: Issued | None = {
        "unbound certificate": pki.pki.software("Another software"), "no certificate": None,
        "other authzid": software, "other CA": None}[case]
    if case == "other CA":  # a certificate the submission listener cannot verify never completes TLS
        rogue = DevelopmentPKI.create("Rogue").software("LGC Cabinet Test")
        with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
            with connect(gateway, tls_with(pki, rogue, tmp_path)) as client:
                client.docmd("AUTH", "EXTERNAL =")
        return
    argument = "EXTERNAL " + (base64.b64encode(PRO.encode()).decode() if case == "other authzid" else "=")
    with connect(gateway, tls_with(pki, certificate, tmp_path)) as client:
        code, text = client.docmd("AUTH", argument)
        assert code == 535 and text.startswith(b"5.7.8")
        assert client.docmd("MAIL", f"FROM:<{LGC}>")[0] == 530  # still not authenticated
    assert bound.count_messages() == 0
