"""Submission security through real sockets: TLS before AUTH, no spoofing, no relay, no smuggling, limits."""

from __future__ import annotations

import smtplib
import socket

import pytest
from support.mail import PATIENT, PRO, PRO2, message
from support.process import GatewayProcess
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


@pytest.fixture
def people(gateway: GatewayProcess) -> Store:
    store = Store(gateway.store_url)
    store.add_mailbox(PRO, "PER")
    store.add_mailbox(PRO2, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()
    return store


def test_auth_before_tls_is_refused(gateway: GatewayProcess, people: Store):
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=10) as client:
        client.ehlo("client.test")
        assert not client.has_extn("auth") and client.has_extn("starttls")
        code, text = client.docmd("AUTH", "PLAIN AGRyLmhvdXNlQHByby5nYXRld2F5LnRlc3QAc2VjcmV0LXBhc3N3b3Jk")
        assert code == 530 and text.startswith(b"5.7.0")
        code, _ = client.docmd("MAIL", f"FROM:<{PRO}>")
        assert code == 530


def test_tls_below_1_2_is_refused(gateway: GatewayProcess, people: Store):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        smtplib.SMTP_SSL("127.0.0.1", gateway.smtps_port, context=context, timeout=10)


def test_spoofed_mail_from_is_refused(gateway: GatewayProcess, people: Store):
    with gateway.smtp(PRO) as client:
        code, text = client.mail(PRO2)
        assert code == 553 and text.startswith(b"5.7.1")
        code, _ = client.mail("<>")
        assert code == 553


def test_spoofed_header_from_is_refused(gateway: GatewayProcess, people: Store):
    with pytest.raises(smtplib.SMTPDataError) as info, gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PRO2], message(PRO2, PRO2))
    assert info.value.smtp_code == 550 and info.value.smtp_error.startswith(b"5.7.1")
    with pytest.raises(smtplib.SMTPDataError), gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PRO2], message(f"{PRO}, {PRO2}", PRO2))
    assert people.count_messages() == 0


@pytest.mark.parametrize("address", [
    "someone@example.org",
    "someone%example.org@pro.gateway.test",
    "@relay.example.org:someone@example.org",
    '"someone@example.org"@pro.gateway.test',
    "example.org!someone@pro.gateway.test",
])
def test_no_open_relay(gateway: GatewayProcess, people: Store, address: str):
    with gateway.smtp(PRO) as client:
        client.mail(PRO)
        code, text = client.docmd("RCPT", f"TO:<{address}>")
        assert code in (550, 553, 501) and text[:1] == b"5", (code, text)
        assert text.startswith((b"5.7.1", b"5.1.3", b"5.5.4")), text
    assert people.count_messages() == 0


SMUGGLED = (b"MAIL FROM:<" + PRO.encode() + b">\r\nRCPT TO:<" + PRO2.encode() + b">\r\nDATA\r\n"
            b"From: " + PRO.encode() + b"\r\nSubject: smuggled\r\n\r\ninjected\r\n")


@pytest.mark.parametrize("sequence", [b"\r\n.\n", b"\n.\n", b"\r.\r", b"\n.\r\n"])
def test_smtp_smuggling_sequences_are_refused_with_nothing_injected(
        gateway: GatewayProcess, people: Store, sequence: bytes):
    with gateway.smtp(PRO) as client:
        client.mail(PRO)
        client.rcpt(PRO2)
        code, _ = client.docmd("DATA")
        assert code == 354
        head = b"From: " + PRO.encode() + b"\r\nSubject: first\r\n\r\nbody"
        client.send(head + sequence + SMUGGLED + b"\r\n.\r\n")
        code, text = client.getreply()
        assert code == 550 and text.startswith(b"5.5.2")
        assert client.noop()[0] == 250  # the session is still in step: nothing was read as a command
    assert people.count_messages() == 0
    assert people.messages_in(PRO2) == []


def test_oversize_message_is_refused_with_552(gateway: GatewayProcess, people: Store):
    with gateway.smtp(PRO) as client:
        assert int(client.esmtp_features["size"]) == 1_048_576
        code, text = client.mail(PRO, ["SIZE=2000000"])
        assert code == 552
        client.rset()
        big = message(PRO, PRO2, body=("x" * 998 + "\r\n") * 1100)
        assert client.docmd("MAIL", f"FROM:<{PRO}>")[0] == 250  # no SIZE: the limit is enforced at DATA
        assert client.rcpt(PRO2)[0] == 250
        code, text = client.data(big)
        assert code == 552 and text.startswith(b"5.3.4")
    assert people.count_messages() == 0


def login_plain(client: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    client.user, client.password = user, password
    try:
        return client.auth("PLAIN", client.auth_plain)
    except smtplib.SMTPAuthenticationError as error:
        return error.smtp_code, error.smtp_error


def test_failed_logins_are_throttled_per_client_address(gateway: GatewayProcess, people: Store):
    for _ in range(3):
        with gateway.smtp() as client:
            assert login_plain(client, PRO, "wrong")[0] == 535
    with gateway.smtp() as client:
        code, text = login_plain(client, PRO, "secret-password")  # right password, but throttled now
        assert code == 454 and text.startswith(b"4.7.0")


def test_unknown_local_mailbox_is_refused(gateway: GatewayProcess, people: Store):
    with gateway.smtp(PRO) as client:
        client.mail(PRO)
        code, text = client.rcpt("nobody@pro.gateway.test")
        assert code == 550 and text.startswith(b"5.1.1")


def test_greeting_and_replies_carry_enhanced_status_codes(gateway: GatewayProcess, people: Store):
    with socket.create_connection(("127.0.0.1", gateway.smtp_port), timeout=10) as raw:
        stream = raw.makefile("rwb")
        assert stream.readline().startswith(b"220 ")
        stream.write(b"EHLO x\r\n")
        stream.flush()
        lines = []
        while True:
            line = stream.readline()
            lines.append(line)
            if line[3:4] == b" ":
                break
        assert b"250-ENHANCEDSTATUSCODES\r\n" in lines
        stream.write(b"DATA\r\n")
        stream.flush()
        assert stream.readline().startswith(b"530 5.7.0")
