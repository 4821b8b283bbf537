"""ACK_LECTURE: the recipient's read receipt (an MDN "displayed", RFC 8098) relayed to the DPI as ZAM^Z03, once,
through real sockets — the HL7 message over MLLP, the recipient's mail client on IMAP and SMTP, the DPI simulator
recording what the gateway sends."""

from __future__ import annotations

import email
import email.policy
import email.utils
import imaplib
import re
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import hl7
import pytest
from support.hl7_peer import DOCTOR, LAB, PATIENT, DpiSimulator, Hl7Gateway, Mllp, code_of, oru, wait_for
from support.pki import PKIFiles
from support.store import Store

from gateway.hl7 import readreceipt
from gateway.hl7.relay import ZAM_READ, zam

INTRUDER = "intrus@pro.gateway.test"

ANS_EXAMPLE = (b"From: serviceY_auto@chb.mssante.fr\r\nTo: serviceY@chb.mssante.fr\r\nMIME-Version: 1.0\r\n"
               b"Subject: [KO Int\xc3\xa9gration syst\xc3\xa8me !][902] XDM/1.0/DDM+ECHOGRAPHIE\r\n"
               b'Content-Type: multipart/report; report-type=disposition-notification; boundary="RAA14128"\r\n\r\n'
               b"--RAA14128\r\nContent-Type: text/plain\r\n\r\nLe document n'a pas pu etre integre.\r\n"
               b"--RAA14128\r\nContent-Type: message/disposition-notification\r\n\r\n"
               b"Original-Recipient: rfc822;serviceY_auto@chb.mssante.fr\r\n"
               b"Final-Recipient: rfc822; serviceY_auto@chb.mssante.fr\r\n"
               b"Original-Message-ID: <hl7.ps.6470692e4c41422d31@mail.gateway.test>\r\n"
               b"Disposition:automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant de patient "
               b"inconnu^messageErrorCondition| E^Error^errorSeverity\r\n\r\n--RAA14128--\r\n")


def test_the_ans_example_mdn_reads_as_processed_with_its_error_and_our_stamp():
    found = readreceipt.read(ANS_EXAMPLE)
    assert found is not None
    assert (found.kind, found.error, found.final_recipient) == \
        ("processed", ("902", "Identifiant de patient inconnu"), "servicey_auto@chb.mssante.fr")
    assert found.stamp == readreceipt.stamp_of("dpi", "LAB-1")


def test_a_message_that_is_not_a_disposition_report_is_not_read_as_one():
    plain = b"From: a@b.test\r\nContent-Type: text/plain\r\n\r\nDisposition: manual-action; displayed\r\n"
    assert readreceipt.read(plain) is None
    delivery = ANS_EXAMPLE.replace(b"report-type=disposition-notification", b"report-type=delivery-status")
    assert readreceipt.read(delivery) is None


def test_a_zam_z03_carries_the_read_status_and_the_reader_mailbox():
    message = hl7.parse(zam(ZAM_READ, "Z03-1", "LAB-9", "", "", True, None, DOCTOR))
    assert str(message.segment("MSH")(9)) == "ZAM^Z03^ZAM_Z01"
    first, second = [s for s in message if str(s[0]) == "OBX"]
    assert str(first(3)(1)(1)) == "ACK_LECTURE_MSS" and str(first(4)) == "LAB-9" and str(first(5)(1)(1)) == "Y"
    assert str(second(2)) == "XTN" and str(second(3)(1)(1)) == "LECTEUR_MSS" and str(second(5)(1)(4)) == DOCTOR
    refused = hl7.parse(zam(ZAM_READ, "Z03-2", "LAB-9", "", "", False, ("902", "Patient inconnu"), DOCTOR))
    assert str(refused.segment("ERR")(5)) == "902^Patient inconnu^applicationErrorCondition"


def mdn(reader: str, to: str, original_id: str, disposition: str = "manual-action/MDN-sent-manually; displayed"
        ) -> bytes:
    """The read receipt a mail client sends (RFC 8098 3), built with the standard library."""
    report = MIMEMultipart("report", policy=email.policy.SMTP, report_type="disposition-notification")
    report["From"], report["To"] = reader, to
    report["Subject"] = "Accusé de lecture"
    report["Date"] = email.utils.formatdate()
    report["Message-ID"] = email.utils.make_msgid(domain="pro.gateway.test")
    report.attach(MIMEText("Le message a été affiché.", "plain", "utf-8"))
    fields = MIMEBase("message", "disposition-notification")
    fields.set_payload(f"Reporting-UA: client.test; Thunderbird\nFinal-Recipient: rfc822;{reader}\n"
                       f"Original-Message-ID: {original_id}\nDisposition: {disposition}\n")
    report.attach(fields)
    return re.sub(rb"\r?\n", b"\r\n", report.as_bytes())  # the parts' own policy writes bare LF


def inbox(gateway: Hl7Gateway, user: str) -> list[email.message.EmailMessage]:
    client = imaplib.IMAP4_SSL("127.0.0.1", gateway.imaps_port, ssl_context=gateway.client_tls())
    try:
        client.login(user, "secret-password")
        client.select("INBOX", readonly=True)
        _, data = client.search(None, "ALL")
        found = []
        for number in data[0].split():
            _, parts = client.fetch(number, "(BODY.PEEK[HEADER])")
            found.append(email.message_from_bytes(parts[0][1], policy=email.policy.default))
        return found
    finally:
        client.logout()


def z03(dpi: DpiSimulator) -> list[dict[str, Any]]:
    return [r for r in dpi.received() if r["type"] == "ZAM^Z03"]


@pytest.mark.slow
def test_ack_lecture_relays_the_displayed_mdn_of_a_recipient_once_and_without_waiting_for_the_poll(
        tmp_path: Path, pki: PKIFiles, store_url: str):
    store = Store(store_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_mailbox(INTRUDER, "PER")
    store.add_identity()
    dpi = DpiSimulator(tmp_path).start()
    gateway = Hl7Gateway(tmp_path / "gw", pki, store_url, peer_extra=dpi.return_address,
                         hl7_extra="relay_poll = 600")  # only a wake-up at commit makes the deadlines below
    try:
        gateway.start()
        client = Mllp(gateway.hl7_port)
        answer = client.exchange(oru("READ-1", destinations=("DESTMSSANTEPS",), flags=("ACK_LECTURE",)))
        client.close()
        assert code_of(answer) == ("AA", None), answer
        wait_for(lambda: len(inbox(gateway, DOCTOR)) == 1, "the message at the professional", 30)
        received = inbox(gateway, DOCTOR)[0]
        assert received["Disposition-Notification-To"] == LAB  # the read receipt is asked for (RFC 8098 2.1)
        original_id = str(received["Message-ID"])
        with gateway.smtp(INTRUDER) as smtp:  # not a recipient: its "receipt" is not relayed
            smtp.sendmail(INTRUDER, [LAB], mdn(INTRUDER, LAB, original_id))
        with gateway.smtp(DOCTOR) as smtp:  # "deleted" says nothing about reading (RFC 8098 3.2.6.2)
            smtp.sendmail(DOCTOR, [LAB], mdn(DOCTOR, LAB, original_id, "manual-action/MDN-sent-manually; deleted"))
        with gateway.smtp(DOCTOR) as smtp:
            smtp.sendmail(DOCTOR, [LAB], mdn(DOCTOR, LAB, original_id))
            smtp.sendmail(DOCTOR, [LAB], mdn(DOCTOR, LAB, original_id))  # the client sends it again
        wait_for(lambda: len(z03(dpi)) >= 1, "the ZAM^Z03 at the DPI", 60, lambda: gateway.log_lines[-10:])
        assert len(store.messages_in(LAB)) == 4  # every MDN was delivered to the structure mailbox
        gateway.stop()  # a restart does not relay it again
        gateway.start()
        client = Mllp(gateway.hl7_port)  # a later message's Z02 shows the relay has passed over the MDNs again
        client.exchange(oru("READ-2", destinations=("DESTMSSANTEPS",), flags=("ACK_RECEPTION",)))
        client.close()
        wait_for(lambda: any(r["type"] == "ZAM^Z02" for r in dpi.received()), "the later ZAM^Z02", 60)
    finally:
        gateway.stop()
        dpi.stop()
    relayed = z03(dpi)
    assert len(relayed) == 1
    message = hl7.parse(relayed[0]["message"].replace("\n", "\r"))
    first, second = [s for s in message if str(s[0]) == "OBX"]
    assert str(first(3)(1)(1)) == "ACK_LECTURE_MSS" and str(first(4)) == "READ-1" and str(first(5)(1)(1)) == "Y"
    assert str(second(5)(1)(4)) == DOCTOR
