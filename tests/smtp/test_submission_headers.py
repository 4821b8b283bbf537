"""What the submission server adds and removes (RFC 6409 8, RFC 5321 4.4, RFC 5322 3.6.3), and SMTPUTF8
(RFC 6531) end to end, through real TLS sessions."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import smtplib

import pytest
from support.mail import PATIENT, PRO, PRO2, as_written, message
from support.process import GatewayProcess
from support.smtp_session import PRO3
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_received_names_client_tls_and_account_rfc5321_4_4(gateway: GatewayProcess, accounts: Store):
    raw = message(PRO, PRO2)
    with gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PRO2], raw)
    stored = accounts.messages_in(PRO2)[0]
    assert stored.startswith(b"Received: from client.test ([127.0.0.1])\r\n\tby mail.gateway.test with ESMTPSA (TLSv1.")
    received = str(parsed(stored)["Received"])
    assert f"(authenticated as {PRO})" in received and re.search(r"\sid [0-9A-F]{16};", received)
    assert as_written(stored) == raw


def test_r8_patient_is_traced_by_mailbox_id_never_by_matricule(gateway: GatewayProcess, accounts: Store):
    with gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PATIENT], message(PRO, PATIENT, "Rendez-vous"))
    with gateway.smtp(PATIENT) as client:
        client.sendmail(PATIENT, [PRO], message(PATIENT, PRO, "Re: Rendez-vous"))
    stored = accounts.messages_in(PRO)[0]
    head = stored[:stored.index(b"From: ")]
    assert b"(authenticated as mailbox " in head
    assert PATIENT.split("@")[0].encode() not in head


def test_date_and_message_id_added_when_missing_rfc6409_8(gateway: GatewayProcess, accounts: Store):
    bare = f"From: {PRO}\r\nTo: {PRO2}\r\nSubject: sans date\r\n\r\nTexte\r\n".encode()
    given = message(PRO, PRO2, headers={"Date": "Mon, 01 Dec 2025 10:00:00 +0100"})
    with gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PRO2], bare)
        client.sendmail(PRO, [PRO2], given)
    first, second = (parsed(m) for m in accounts.messages_in(PRO2))
    assert first["Date"] is not None and str(first["Message-ID"]).endswith("@mail.gateway.test>")
    assert len(first.get_all("Date")) == 1 and len(first.get_all("Message-ID")) == 1
    assert second["Message-ID"] == parsed(given)["Message-ID"]  # a given Message-ID is kept
    assert second.get_all("Date") == ["Mon, 01 Dec 2025 10:00:00 +0100"]


def test_bcc_removed_for_recipients_and_kept_in_the_senders_sent_copy(gateway: GatewayProcess, accounts: Store):
    raw = message(PRO, PRO2, "Copie cachée", headers={"Bcc": PRO3})
    with gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PRO2, PRO3], raw)
    for recipient in (PRO2, PRO3):
        (copy,) = accounts.messages_in(recipient)
        assert parsed(copy)["Bcc"] is None and b"Bcc" not in copy.split(b"\r\n\r\n")[0]
    (sent,) = accounts.messages_in(PRO, "Sent")
    assert parsed(sent)["Bcc"] == PRO3 and as_written(sent) == raw


def test_sender_header_must_be_the_account(gateway: GatewayProcess, accounts: Store):
    with gateway.smtp(PRO) as client:  # R1: the professional opens the conversation
        client.sendmail(PRO, [PATIENT], message(PRO, PATIENT, "Rendez-vous"))
    with pytest.raises(smtplib.SMTPDataError) as info, gateway.smtp(PATIENT) as client:
        client.sendmail(PATIENT, [PRO], message(PATIENT, PRO, headers={"Sender": PRO}))
    assert info.value.smtp_code == 550 and info.value.smtp_error.startswith(b"5.7.1")
    with gateway.smtp(PRO) as client:  # one's own address as Sender is fine
        client.sendmail(PRO, [PRO2], message(PRO, PRO2, headers={"Sender": PRO}))
    assert len(accounts.messages_in(PRO2)) == 1
    assert accounts.messages_in(PRO) == []


UTF8_PRO = "élodie.martin@pro.gateway.test"


def test_smtputf8_address_and_headers_end_to_end_rfc6531(gateway: GatewayProcess, accounts: Store):
    accounts.add_mailbox(UTF8_PRO, "PER")
    raw = (f"From: Élodie Martin <{UTF8_PRO}>\r\nTo: {PRO}\r\nSubject: Bilan rénal\r\n\r\nTexte é\r\n").encode()
    with gateway.smtp(PRO) as client:
        assert client.has_extn("smtputf8")
    with gateway.smtp() as client:
        token = base64.b64encode(f"\0{UTF8_PRO}\0secret-password".encode()).decode()
        assert client.docmd("AUTH", f"PLAIN {token}")[0] == 235  # smtplib's login() is ASCII only
        client.send(f"MAIL FROM:<{UTF8_PRO}>\r\n".encode())  # a UTF-8 address needs SMTPUTF8 on MAIL
        refused = client.getreply()
        assert refused[0] == 553 and refused[1].startswith(b"5.6.7")
        client.rset()
        client.sendmail(UTF8_PRO, [PRO], raw, mail_options=["SMTPUTF8"])
    (stored,) = accounts.messages_in(PRO)
    assert as_written(stored) == raw and b"with UTF8SMTPSA" in stored
    with gateway.smtp(PRO) as client:
        client.sendmail(PRO, [UTF8_PRO], message(PRO, UTF8_PRO), mail_options=["SMTPUTF8"])
    assert len(accounts.messages_in(UTF8_PRO)) == 1
