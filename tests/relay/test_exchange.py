"""Two operators exchange mail both ways over mutual TLS; the receiving operator's patient rules decide (R1–R4)."""

from __future__ import annotations

import email
import email.policy
import smtplib

import pytest
from support.mail import as_written_all, message
from support.relay import Pair, queue_rows, wait_for

from gateway.ins_matching.insi import HOMONYM_A, TEST_PATIENT

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def send(process, sender: str, to: str, raw: bytes, options: list[str] | None = None) -> None:
    with process.smtp(sender) as client:
        client.sendmail(sender, [to], raw, rcpt_options=options or [])


def test_mail_travels_both_ways_over_mutual_tls(pair: Pair):
    dr_a, dr_b = pair.a.address("dr.alpha"), pair.b.address("dr.beta")
    pair.store_a.add_mailbox(dr_a)
    pair.store_b.add_mailbox(dr_b)

    first = message(dr_a, dr_b, "Compte rendu")
    send(pair.a, dr_a, dr_b, first)
    received = wait_for(lambda: pair.store_b.messages_in(dr_b))
    assert len(received) == 1 and received[0].endswith(first)  # byte for byte, after our trace header
    trace = email.message_from_bytes(received[0], policy=email.policy.default)["Received"]
    assert "mx.a.test" in trace and "ESMTPS (TLSv1.3" in trace
    # A marks its row sent once B's 250 is back, which B gives after its commit: the copy can be read at B first.
    sent = wait_for(lambda: [r for r in queue_rows(pair.store_a) if r.state == "sent"])
    assert len(sent) == 1 and [r.state for r in queue_rows(pair.store_a)] == ["sent"]
    assert as_written_all(pair.store_a.messages_in(dr_a, "Sent")) == [first]
    assert [e.outcome for e in pair.store_b.events("relay.message")] == ["accepted"]

    answer = message(dr_b, dr_a, "Re: Compte rendu")
    send(pair.b, dr_b, dr_a, answer)
    back = wait_for(lambda: pair.store_a.messages_in(dr_a))
    assert back[0].endswith(answer)
    assert [e.kind for e in pair.store_a.events("outbound.")] == ["outbound.queued", "outbound.delivered"]


def test_r4_remote_professional_writes_to_patient_only_if_receiver_rules_allow(pair: Pair):
    dr_a = pair.a.address("dr.alpha")
    qualified, unqualified = pair.b.patient(TEST_PATIENT.matricule), pair.b.patient(HOMONYM_A.matricule)
    pair.store_a.add_mailbox(dr_a)
    pair.store_a.add_identity()  # A's own repository: R4 is checked by the sending structure too
    pair.store_a.add_identity(HOMONYM_A.matricule, traits=HOMONYM_A.traits)
    pair.store_b.add_mailbox(qualified, "PAT")
    pair.store_b.add_mailbox(unqualified, "PAT")
    pair.store_b.add_identity()  # qualifiée at B
    pair.store_b.add_identity(HOMONYM_A.matricule, traits=HOMONYM_A.traits, insi=False)  # validée only

    send(pair.a, dr_a, qualified, message(dr_a, qualified, "Vos résultats"))
    wait_for(lambda: pair.store_b.messages_in(qualified))
    opened = pair.store_b.events("conversation.opened")
    assert [(e.rule, e.actor) for e in opened] == [("R1", dr_a)]

    send(pair.a, dr_a, unqualified, message(dr_a, unqualified, "Vos résultats"))
    rows = wait_for(lambda: [r for r in queue_rows(pair.store_a) if r.state == "failed"])
    assert rows[0].recipient == unqualified and "(R4)" in (rows[0].last_reply or "")
    assert pair.store_b.messages_in(unqualified) == []
    assert [e.rule for e in pair.store_b.events("rcpt.refused")] == ["R4"]
    dsn = email.message_from_bytes(wait_for(lambda: pair.store_a.messages_in(dr_a))[0], policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report" and dsn.get_param("report-type") == "delivery-status"
    status = dsn.get_payload()[1].as_string()
    assert f"Final-Recipient: rfc822; {unqualified}" in status and "Action: failed" in status
    assert "Status: 5.7.1" in status and "(R4)" in status


def test_r1_r2_patient_answers_a_remote_professional_only_inside_the_conversation(pair: Pair):
    dr_a = pair.a.address("dr.alpha")
    patient = pair.b.patient(TEST_PATIENT.matricule)
    pair.store_a.add_mailbox(dr_a)
    pair.store_a.add_identity()
    pair.store_b.add_mailbox(patient, "PAT")
    pair.store_b.add_identity()

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(pair.b, patient, dr_a, message(patient, dr_a, "Bonjour"))
    assert b"(R1)" in refused.value.recipients[dr_a][1]

    send(pair.a, dr_a, patient, message(dr_a, patient, "Rendez-vous"))
    wait_for(lambda: pair.store_b.messages_in(patient))
    reply = message(patient, dr_a, "Re: Rendez-vous")
    send(pair.b, patient, dr_a, reply)
    assert wait_for(lambda: pair.store_a.messages_in(dr_a))[0].endswith(reply)

    send(pair.a, dr_a, patient, message(dr_a, patient, "[FIN] Fin du suivi"))
    wait_for(lambda: len(pair.store_b.messages_in(patient)) == 2)
    fin = pair.store_b.messages_in(patient)[1]
    assert b"X-MSS-MES: FIN\r\n" in fin  # R2: both conventions agree on relayed mail too
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(pair.b, patient, dr_a, message(patient, dr_a, "Encore une question"))
    assert b"(R2)" in refused.value.recipients[dr_a][1]


def test_notify_success_returns_a_dsn_to_the_sender(pair: Pair):
    dr_a, dr_b = pair.a.address("dr.alpha"), pair.b.address("dr.beta")
    pair.store_a.add_mailbox(dr_a)
    pair.store_b.add_mailbox(dr_b)
    send(pair.a, dr_a, dr_b, message(dr_a, dr_b), options=["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{dr_b}"])
    wait_for(lambda: pair.store_b.messages_in(dr_b))
    report = email.message_from_bytes(wait_for(lambda: pair.store_a.messages_in(dr_a))[0],
                                      policy=email.policy.default)
    status = report.get_payload()[1].as_string()
    assert "Action: relayed" in status and f"Original-Recipient: rfc822;{dr_b}" in status
    assert [e.outcome for e in pair.store_a.events("outbound.dsn")] == ["relayed"]


def test_r4_the_sending_structure_needs_the_identity_qualified_too(pair: Pair):
    dr_a, patient = pair.a.address("dr.alpha"), pair.b.patient(TEST_PATIENT.matricule)
    pair.store_a.add_mailbox(dr_a)
    pair.store_a.add_identity(insi=False)  # only validée in A's repository
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(pair.a, dr_a, patient, message(dr_a, patient))
    assert b"(R4)" in refused.value.recipients[patient][1]
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(pair.a, dr_a, "27903512151898@patient.b.test", message(dr_a, patient))
    assert b"(R8)" in refused.value.recipients["27903512151898@patient.b.test"][1]
    assert queue_rows(pair.store_a) == []


def test_r1_relayed_mail_from_a_remote_patient_needs_the_conversation_here(pair: Pair, tmp_path):
    """Defence in depth: A checks R1 for B's patients even if B let their message out."""
    dr_a, patient = pair.a.address("dr.alpha"), pair.b.patient(TEST_PATIENT.matricule)
    pair.store_a.add_mailbox(dr_a)
    pair.store_a.add_identity()
    with pair.a.relay_client(pair.b.certificate, tmp_path) as client:
        assert client.mail(patient)[0] == 250
        code, text = client.rcpt(dr_a)
        assert code == 550 and b"(R1)" in text
    assert [(e.kind, e.rule) for e in pair.store_a.events("rcpt.refused")] == [("rcpt.refused.no_conversation", "R1")]

    pair.store_b.add_mailbox(patient, "PAT")
    pair.store_b.add_identity()
    send(pair.a, dr_a, patient, message(dr_a, patient, "Suivi"))  # opens the conversation at A (and at B)
    assert [e.rule for e in pair.store_a.events("conversation.opened")] == ["R1"]
    wait_for(lambda: pair.store_b.messages_in(patient))
    with pair.a.relay_client(pair.b.certificate, tmp_path) as client:
        client.sendmail(patient, [dr_a], message(patient, dr_a, "Re: Suivi"))
    assert [e.rule for e in pair.store_a.events("message.patient_reply")] == ["R1"]
