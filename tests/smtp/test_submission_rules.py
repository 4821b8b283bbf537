"""Submission through real TLS sockets: the patient-messaging rules R1–R5 and identity rules R4/R8."""

from __future__ import annotations

import smtplib
import subprocess
import sys

import pytest
from support.mail import PATIENT, PHARMACY, PRO, PRO2, UNQUALIFIED, as_written, as_written_all, message
from support.process import GatewayProcess
from support.store import Store

from gateway.ins_matching.insi import HOMONYM_A

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


@pytest.fixture
def people(gateway: GatewayProcess) -> Store:
    store = Store(gateway.store_url)
    for address in (PRO, PRO2):
        store.add_mailbox(address, "PER")
    store.add_mailbox(PHARMACY, "ORG")
    store.add_mailbox(PATIENT, "PAT")
    store.add_mailbox(UNQUALIFIED, "PAT")
    store.add_identity()  # the test patient, qualifiée (INSi + passport)
    store.add_identity(HOMONYM_A.matricule, traits=HOMONYM_A.traits, insi=False, document=True)  # validée only
    return store


def send(gateway: GatewayProcess, sender: str, to: str, raw: bytes, implicit: bool = False) -> None:
    with gateway.smtp(sender, implicit=implicit) as client:
        client.sendmail(sender, [to], raw)


def refused(gateway: GatewayProcess, sender: str, to: str, raw: bytes) -> smtplib.SMTPRecipientsRefused:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info, gateway.smtp(sender) as client:
        client.sendmail(sender, [to], raw)
    return info.value


def test_r4_professional_to_qualified_patient_is_delivered_byte_for_byte(gateway: GatewayProcess, people: Store):
    raw = message(PRO, PATIENT, "Résultats", body="Ligne 1\r\n..point\r\nfin")
    send(gateway, PRO, PATIENT, raw)
    assert as_written_all(people.messages_in(PATIENT)) == [raw]
    assert as_written_all(people.messages_in(PRO, "Sent")) == [raw]
    assert [e.rule for e in people.events("message.to_patient")] == ["R4"]
    assert [e.kind for e in people.events("conversation.")] == ["conversation.opened"]


def test_r4_implicit_tls_port_accepts_auth_and_delivers(gateway: GatewayProcess, people: Store):
    raw = message(PRO, PATIENT)
    send(gateway, PRO, PATIENT, raw, implicit=True)
    assert as_written_all(people.messages_in(PATIENT)) == [raw]


def test_r4_patient_not_qualified_is_refused_and_nothing_stored(gateway: GatewayProcess, people: Store):
    error = refused(gateway, PRO, UNQUALIFIED, message(PRO, UNQUALIFIED))
    code, text = error.recipients[UNQUALIFIED]
    assert code == 550 and text.startswith(b"5.7.1") and b"(R4)" in text
    assert people.count_messages() == 0
    assert [e.rule for e in people.events("rcpt.refused")] == ["R4"]


def test_r1_patient_reply_is_accepted_inside_an_open_conversation(gateway: GatewayProcess, people: Store):
    send(gateway, PRO, PATIENT, message(PRO, PATIENT, "Rendez-vous"))
    reply = message(PATIENT, PRO, "Re: Rendez-vous")
    send(gateway, PATIENT, PRO, reply)
    assert as_written_all(people.messages_in(PRO)) == [reply]
    assert [e.rule for e in people.events("message.patient_reply")] == ["R1"]


def test_r1_patient_cannot_start_a_conversation_and_nothing_is_stored(gateway: GatewayProcess, people: Store):
    error = refused(gateway, PATIENT, PRO, message(PATIENT, PRO))
    code, text = error.recipients[PRO]
    assert code == 550 and text.startswith(b"5.7.1") and b"(R1)" in text
    assert people.count_messages() == 0
    assert people.messages_in(PRO) == [] and people.messages_in(PATIENT, "Sent") == []
    assert [(e.kind, e.rule) for e in people.events("rcpt.refused")] == [("rcpt.refused.no_conversation", "R1")]


def test_r1_conversation_is_per_professional(gateway: GatewayProcess, people: Store):
    send(gateway, PRO, PATIENT, message(PRO, PATIENT))
    refused(gateway, PATIENT, PRO2, message(PATIENT, PRO2))
    assert people.messages_in(PRO2) == []


def test_r1_pharmacy_exception_accepts_a_patient_writing_first(gateway: GatewayProcess, people: Store):
    raw = message(PATIENT, PHARMACY, "Ordonnance")
    send(gateway, PATIENT, PHARMACY, raw)
    assert as_written_all(people.messages_in(PHARMACY)) == [raw]


def test_r1_patient_cannot_write_to_another_patient(gateway: GatewayProcess, people: Store):
    error = refused(gateway, PATIENT, UNQUALIFIED, message(PATIENT, UNQUALIFIED))
    assert error.recipients[UNQUALIFIED][0] == 550


def test_r2_fin_is_delivered_with_x_mss_mes_then_the_patient_is_refused(gateway: GatewayProcess, people: Store):
    send(gateway, PRO, PATIENT, message(PRO, PATIENT, "Suivi"))
    fin = message(PRO, PATIENT, "Suivi terminé [FIN]")
    send(gateway, PRO, PATIENT, fin)
    delivered = people.messages_in(PATIENT)
    assert delivered[-1].startswith(b"X-MSS-MES: FIN\r\n")
    assert as_written(delivered[-1][len(b"X-MSS-MES: FIN\r\n"):]) == fin
    error = refused(gateway, PATIENT, PRO, message(PATIENT, PRO, "Re: Suivi"))
    code, text = error.recipients[PRO]
    assert code == 550 and b"(R2)" in text
    assert people.messages_in(PRO) == []
    assert [e.kind for e in people.events("conversation.closed")] == ["conversation.closed.subject"]
    # The professional writes again: the conversation reopens (R2 "until the professional writes again").
    send(gateway, PRO, PATIENT, message(PRO, PATIENT, "Nouvelle question"))
    send(gateway, PATIENT, PRO, message(PATIENT, PRO, "Re: Nouvelle question"))
    assert len(people.messages_in(PRO)) == 1


def test_r2_fin_needs_the_exact_upper_case_marker(gateway: GatewayProcess, people: Store):
    send(gateway, PRO, PATIENT, message(PRO, PATIENT, "Suivi [fin]"))
    send(gateway, PATIENT, PRO, message(PATIENT, PRO, "Re: Suivi"))
    assert len(people.messages_in(PRO)) == 1


def test_r2_x_mss_mes_fin_header_closes_the_conversation(gateway: GatewayProcess, people: Store):
    raw = message(PRO, PATIENT, "Dernier message", headers={"X-MSS-MES": "FIN"})
    send(gateway, PRO, PATIENT, raw)
    assert as_written_all(people.messages_in(PATIENT)) == [raw]  # already marked: the client's bytes unchanged
    error = refused(gateway, PATIENT, PRO, message(PATIENT, PRO))
    assert b"(R2)" in error.recipients[PRO][1]
    assert [e.kind for e in people.events("conversation.closed")] == ["conversation.closed.header"]


def test_r3_replies_blocked_and_unblocked_by_header(gateway: GatewayProcess, people: Store):
    send(gateway, PRO, PATIENT, message(PRO, PATIENT, "Info", headers={"X-Gateway-Patient-Replies": "blocked"}))
    error = refused(gateway, PATIENT, PRO, message(PATIENT, PRO))
    assert b"(R3)" in error.recipients[PRO][1]
    send(gateway, PRO, PATIENT, message(PRO, PATIENT, "Info 2", headers={"X-Gateway-Patient-Replies": "allowed"}))
    send(gateway, PATIENT, PRO, message(PATIENT, PRO))
    assert len(people.messages_in(PRO)) == 1
    assert [e.kind for e in people.events("conversation.replies")] == [
        "conversation.replies_blocked", "conversation.replies_unblocked"]


def test_r3_replies_blocked_and_unblocked_by_admin_command(gateway: GatewayProcess, people: Store):
    send(gateway, PRO, PATIENT, message(PRO, PATIENT))
    cli = [sys.executable, "-m", "gateway.cli"]
    conf = ["--config", str(gateway.config_path)]
    listing = subprocess.run([*cli, "conversation", "list", "--json", *conf], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert '"state": "open"' in listing.stdout
    done = subprocess.run([*cli, "conversation", "block", "1", *conf], capture_output=True, text=True)
    assert done.returncode == 0 and "(R3)" in done.stdout
    assert b"(R3)" in refused(gateway, PATIENT, PRO, message(PATIENT, PRO)).recipients[PRO][1]
    subprocess.run([*cli, "conversation", "unblock", "1", *conf], check=True, capture_output=True)
    send(gateway, PATIENT, PRO, message(PATIENT, PRO))
    history = subprocess.run([*cli, "conversation", "show", "1", *conf], capture_output=True, text=True)
    assert "conversation.replies_blocked" in history.stdout and "conversation.replies_unblocked" in history.stdout


def test_r8_invalid_matricule_key_is_refused(gateway: GatewayProcess, people: Store):
    wrong = "279035121518988@patient.gateway.test"
    error = refused(gateway, PRO, wrong, message(PRO, wrong))
    code, text = error.recipients[wrong]
    assert code == 550 and text.startswith(b"5.1.3") and b"(R8)" in text
    short = "27903512151898@patient.gateway.test"
    assert refused(gateway, PRO, short, message(PRO, short)).recipients[short][0] == 550
