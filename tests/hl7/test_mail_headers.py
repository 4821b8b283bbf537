"""The header fields of the MSSanté messages built from HL7 are written by gateway.hl7.headers: what a standard
reader (the email package's default policy) decodes is the value given, on lines of at most 998 characters,
encoded words of at most 75 (RFC 2047 2), and nothing in a value can add a field (RFC 5322 2.2)."""

from __future__ import annotations

import email
import email.policy
import re

from gateway.hl7 import headers


def read(fields: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(fields + b"\r\n", policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_an_ascii_subject_stays_one_plain_line():
    field = headers.text("Subject", "XDM/1.0/DDM+Compte rendu d'examens biologiques DUPONT JEAN 19790328")
    assert field == b"Subject: XDM/1.0/DDM+Compte rendu d'examens biologiques DUPONT JEAN 19790328\r\n"


def test_a_non_ascii_subject_reads_back_the_same_with_its_ascii_words_plain():
    subject = "XDM/1.0/DDM+Compte rendu d'échographie cardiaque HÉLÈNE Zoé-Françoise 19790328 " + "é" * 200
    field = headers.text("Subject", subject)
    assert field.isascii() and b"XDM/1.0/DDM+Compte rendu " in field
    assert all(len(word) <= 75 for word in re.findall(rb"=\?utf-8\?b\?[^?]*\?=", field))
    assert all(len(line) <= 998 for line in field.split(b"\r\n"))
    assert str(read(field)["Subject"]) == subject


def test_a_value_cannot_start_a_new_field():
    field = headers.text("X-MSS-NIL", "gateway\r\nBcc: someone@example.org")
    assert read(field).keys() == ["X-MSS-NIL"] and str(read(field)["X-MSS-NIL"]) == "gateway Bcc: someone@example.org"
    assert headers.addresses("To", ["a@b.test\r\nBcc: c@d.test"]).count(b"\r\n") == 1


def test_a_long_recipient_list_is_folded_between_addresses_and_reads_back_whole():
    recipients = [f"professional.{n:03d}@hospital.example.test" for n in range(100)]
    field = headers.addresses("To", recipients)
    assert field.count(b"\r\n") > 1 and all(len(line) <= 998 for line in field.split(b"\r\n"))
    assert [a.addr_spec for a in read(field)["To"].addresses] == recipients


def test_a_word_looking_encoded_is_encoded_so_it_reads_as_sent():
    field = headers.text("Subject", "about =?utf-8?b?SGk=?= text")
    assert str(read(field)["Subject"]) == "about =?utf-8?b?SGk=?= text"


def test_an_address_that_is_not_ascii_is_not_written():
    try:
        headers.addresses("To", ["zoé@example.test"])
    except ValueError:
        return
    raise AssertionError("a non-ASCII address was written")


def test_a_recipient_address_that_is_not_ascii_is_refused_on_prt_15():
    from support.hl7_peer import oru

    from gateway.hl7.message import Refusal, parse
    try:
        parse(oru("NA-1", recipients=("zoé@pro.gateway.test",)), max_segments=2000, max_document_bytes=8 << 20,
              allow_test_identities=True)
    except Refusal as refusal:
        assert (refusal.ack, refusal.location) == ("AE", "PRT^1^15")
        return
    raise AssertionError("a non-ASCII recipient was accepted")
