"""Where an HL7 message's CPU work runs: a usual document message on the event loop (no thread hop), one above
``accept.INLINE_BYTES`` on a thread; both are accepted alike and read the same over IMAP."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import io
import threading
import zipfile
from pathlib import Path

import pybase64
from support.hl7_peer import BIO, DOCTOR, LAB, PATIENT, Hl7Gateway, Mllp, code_of, oru
from support.pki import PKIFiles
from support.store import Store

from gateway.hl7.accept import INLINE_BYTES, off_loop
from gateway.hl7.mails import _base64
from gateway.hl7.message import parse


def doctor_inbox(gateway: Hl7Gateway) -> list[email.message.EmailMessage]:
    client = imaplib.IMAP4_SSL("127.0.0.1", gateway.imaps_port, ssl_context=gateway.client_tls())
    try:
        client.login(DOCTOR, "secret-password")
        client.select("INBOX", readonly=True)
        _, data = client.search(None, "ALL")
        found = []
        for number in data[0].split():
            _, parts = client.fetch(number, "(BODY.PEEK[])")
            found.append(email.message_from_bytes(parts[0][1], policy=email.policy.default))
        return found
    finally:
        client.logout()


def test_a_message_within_the_inline_bound_is_worked_on_the_loop_and_a_larger_one_on_a_thread():
    async def where(size: int) -> tuple[int, int]:
        return threading.get_ident(), await off_loop(size, threading.get_ident)

    loop_thread, small = asyncio.run(where(INLINE_BYTES))
    assert small == loop_thread
    loop_thread, large = asyncio.run(where(INLINE_BYTES + 1))
    assert large != loop_thread


def test_rfc2045_base64_lines_are_76_characters_ended_by_crlf_and_decode_to_the_bytes():
    data = bytes(range(256)) * 100 + b"x"
    encoded = _base64(data)
    lines = encoded.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) == 76 for line in lines[:-2]) and 0 < len(lines[-2]) <= 76
    assert b"\n" not in encoded.replace(b"\r\n", b"")
    assert pybase64.b64decode(b"".join(lines), validate=True) == data
    assert _base64(b"") == b""


def test_a_cda_whose_base64_is_not_strict_is_refused_with_ae_on_obx5():
    message = oru("B64-1").replace(b"^Base64^", b"^Base64^*", 1)
    try:
        parse(message, max_segments=2000, max_document_bytes=12_000_000, allow_test_identities=True)
    except Exception as refusal:  # the Refusal names the field (ERR-2)
        assert getattr(refusal, "ack", None) == "AE" and getattr(refusal, "location", "").endswith("^5")
    else:
        raise AssertionError("a base64 with a character outside the alphabet was read")


def test_a_document_above_the_inline_bound_is_accepted_and_read_over_imap(tmp_path: Path, pki: PKIFiles,
                                                                          store_url: str):
    store = Store(store_url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()
    padding = b"<!--" + b" " * (INLINE_BYTES + 1024) + b"-->\n"
    cda = BIO.read_bytes().replace(b"<ClinicalDocument", padding + b"<ClinicalDocument", 1)
    message = oru("BIG-1", cda, destinations=("DESTMSSANTEPS",))
    assert len(message) > INLINE_BYTES
    gateway = Hl7Gateway(tmp_path / "gw", pki, store_url).start()
    try:
        client = Mllp(gateway.hl7_port)
        answer = client.exchange(message)
        client.close()
        assert code_of(answer) == ("AA", None), answer
        doctor = doctor_inbox(gateway)
    finally:
        gateway.stop()
    assert len(doctor) == 1 and str(doctor[0]["Subject"]).startswith("XDM/1.0/DDM+")
    zipped = next(p for p in doctor[0].iter_attachments() if p.get_filename() == "IHE_XDM.ZIP").get_content()
    stored = zipfile.ZipFile(io.BytesIO(zipped))
    assert stored.read("IHE_XDM/SUBSET01/DOC0001.XML") == cda
    assert {i.compress_type for i in stored.infolist()} == {zipfile.ZIP_STORED}
    assert store.events("hl7.message")[0].outcome == "accepted"
