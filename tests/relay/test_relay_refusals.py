"""The relay listener refuses, each time with a clear reply and an event: no certificate, unknown CA, expired,
revoked, not whitelisted, spoofed or foreign senders, and relaying to third domains."""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mail import message
from support.pki import PKIFiles
from support.relay import OperatorProcess, free_port, wait_for, write_whitelist
from support.store import Store

from gateway.pki import DevelopmentPKI

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

DR_A = "dr.alpha@pro.a.test"
DR_B = "dr.beta@pro.b.test"


@pytest.fixture(scope="module")
def revoked(pki: PKIFiles) -> object:
    return pki.pki.operator("mx.a.test", ("pro.a.test", "patient.a.test"))


@pytest.fixture
def b(tmp_path: Path, pki: PKIFiles, revoked: object) -> Iterator[OperatorProcess]:
    """Operator B alone, with a revocation list naming one of A's certificates."""
    crl = tmp_path / "intermediate.crl"
    crl.write_bytes(pki.pki.crl((revoked.certificate,)))  # type: ignore[attr-defined]
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}"
    process = OperatorProcess(tmp_path / "b", pki, url, "b", relay_port=free_port(),
                              whitelist=write_whitelist(tmp_path), routes={"a": free_port()}, crl=crl)
    store = Store(url)
    store.add_mailbox(DR_B)
    process.start()
    yield process
    process.stop()
    print("\n".join(process.log_lines[-30:]))


def events(process: OperatorProcess, prefix: str) -> list[str]:
    return [e.kind for e in Store(process.store_url).events(prefix)]


def test_starttls_is_required_before_mail(b: OperatorProcess):
    with smtplib.SMTP("127.0.0.1", b.relay_port, timeout=10) as client:
        client.ehlo("peer.test")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        code, text = client.docmd("MAIL", f"FROM:<{DR_A}>")
        assert code == 530 and text.startswith(b"5.7.0")


def test_no_client_certificate_is_refused(b: OperatorProcess, tmp_path: Path):
    with b.relay_client(None, tmp_path) as client:
        code, text = client.mail(DR_A)
    assert code == 530 and text.startswith(b"5.7.0") and b"client certificate" in text
    assert events(b, "relay.refused") == ["relay.refused.no_certificate"]


def test_certificate_from_an_unknown_ca_fails_the_handshake_and_is_recorded(b: OperatorProcess, tmp_path: Path):
    rogue = DevelopmentPKI.create("Rogue").operator("mx.a.test", ("pro.a.test",))
    with pytest.raises((ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError)):
        with b.relay_client(rogue, tmp_path) as client:
            client.mail(DR_A)  # TLS 1.3: the client learns of the alert on its first read
    kinds = wait_for(lambda: events(b, "relay.refused"))
    assert kinds == ["relay.refused.tls"]
    detail = Store(b.store_url).events("relay.refused")[0].detail
    assert "certificate" in str(detail.get("reason", "")).lower() or "unknown ca" in str(detail).lower()


def test_expired_certificate_is_refused(b: OperatorProcess, pki: PKIFiles, tmp_path: Path):
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = pki.pki.issue("mx.a.test", dns_names=("mx.a.test", "pro.a.test"), client=True, server=True,
                            not_before=start, valid_days=10)
    with b.relay_client(expired, tmp_path) as client:
        code, text = client.mail(DR_A)
    assert code == 550 and text.startswith(b"5.7.1") and b"expired" in text
    assert events(b, "relay.refused") == ["relay.refused.expired"]


def test_revoked_certificate_is_refused(b: OperatorProcess, revoked: object, tmp_path: Path):
    with b.relay_client(revoked, tmp_path) as client:  # type: ignore[arg-type]
        code, text = client.mail(DR_A)
    assert code == 550 and text.startswith(b"5.7.1") and b"revoked" in text
    assert events(b, "relay.refused") == ["relay.refused.revoked"]


def test_valid_certificate_of_a_domain_not_on_the_whitelist_is_refused(b: OperatorProcess, pki: PKIFiles,
                                                                        tmp_path: Path):
    stranger = pki.pki.operator("mx.c.test", ("pro.c.test",))
    with b.relay_client(stranger, tmp_path) as client:
        code, text = client.mail("dr.gamma@pro.c.test")
    assert code == 550 and text.startswith(b"5.7.1") and b"whitelist" in text
    assert events(b, "relay.refused") == ["relay.refused.not_whitelisted"]


@pytest.mark.parametrize(("sender", "kind"), [
    ("dr.beta@pro.b.test", "relay.refused.sender_is_ours"),
    ("someone@pro.c.test", "relay.refused.sender_not_whitelisted"),
    ("patient@patient.b.test", "relay.refused.sender_is_ours"),
])
def test_senders_the_certificate_cannot_speak_for_are_refused(b: OperatorProcess, pki: PKIFiles, tmp_path: Path,
                                                              sender: str, kind: str):
    a_cert = pki.pki.operator("mx.a.test", ("pro.a.test", "patient.a.test"))
    with b.relay_client(a_cert, tmp_path) as client:
        code, text = client.mail(sender)
    assert code == 550 and text.startswith(b"5.7.1")
    assert events(b, "relay.refused") == [kind]


def test_sender_of_another_whitelisted_operator_is_refused(b: OperatorProcess, pki: PKIFiles, tmp_path: Path):
    """A's certificate cannot carry mail from B's patient domain nor from a domain it does not name."""
    only_pro = pki.pki.operator("mx.a.test", ("pro.a.test",))
    with b.relay_client(only_pro, tmp_path) as client:
        code, text = client.mail("279035121518989@patient.a.test")
    assert code == 550 and b"not named by your client certificate" in text
    assert events(b, "relay.refused") == ["relay.refused.sender_not_certified"]


@pytest.mark.parametrize("recipient", ["dr.gamma@pro.c.test", "dr.alpha@pro.a.test", "x%y@pro.b.test"])
def test_relaying_to_third_domains_is_refused(b: OperatorProcess, pki: PKIFiles, tmp_path: Path, recipient: str):
    a_cert = pki.pki.operator("mx.a.test", ("pro.a.test", "patient.a.test"))
    with b.relay_client(a_cert, tmp_path) as client:
        assert client.mail(DR_A)[0] == 250
        code, text = client.rcpt(recipient)
        assert code == 550 and text.startswith(b"5.7.1")
        assert client.rcpt(DR_B)[0] == 250  # the same session still delivers to our own domain
        assert client.data(message(DR_A, DR_B))[0] == 250
    assert Store(b.store_url).messages_in(DR_B)
    refusals = Store(b.store_url).events("rcpt.refused")
    assert [e.kind for e in refusals] == ["rcpt.refused.relay" if "%" not in recipient else "rcpt.refused.address"]
    assert refusals[0].detail["peer"] == "mx.a.test"


def test_submission_to_a_domain_not_on_the_whitelist_is_refused_at_rcpt(b: OperatorProcess):
    with b.smtp(DR_B) as client:
        client.mail(DR_B)
        code, text = client.rcpt("dr.gamma@pro.c.test")
        assert code == 550 and text.startswith(b"5.7.1") and b"Relaying denied" in text
        assert client.rcpt("dr.alpha@pro.a.test")[0] == 250  # whitelisted: accepted into the queue


def test_a_bounce_with_the_null_sender_from_a_whitelisted_operator_is_delivered(
        b: OperatorProcess, pki: PKIFiles, tmp_path: Path):
    """RFC 5321 4.5.5: DSNs and MDNs come with ``MAIL FROM:<>``; the relay accepts them for our mailboxes."""
    a_cert = pki.pki.operator("mx.a.test", ("pro.a.test", "patient.a.test"))
    bounce = message("MAILER-DAEMON@pro.a.test", DR_B, "Undelivered Mail Returned to Sender")
    with b.relay_client(a_cert, tmp_path) as client:
        assert client.mail("")[0] == 250
        assert client.rcpt(DR_B)[0] == 250
        code, _ = client.data(bounce)
    assert code == 250
    stored = Store(b.store_url).messages_in(DR_B)
    assert len(stored) == 1 and b"Undelivered Mail Returned to Sender" in stored[0]
