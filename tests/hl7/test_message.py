"""The HL7 reader alone (no sockets): what is accepted, and the ERR-2 location and ERR-3 code of each refusal."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest
from support.hl7_peer import ALL, BIO, DOCTOR, oru

from gateway.hl7 import ack, codes
from gateway.hl7.message import Refusal, parse
from gateway.hl7.simulator import ack_code

LIMITS = {"max_segments": 2000, "max_document_bytes": 8 * 1024 * 1024, "allow_test_identities": True}


def refusal(message: bytes, **limits: object) -> Refusal:
    with pytest.raises(Refusal) as caught:
        parse(message, **{**LIMITS, **limits})  # type: ignore[arg-type]
    return caught.value


def test_an_oru_with_the_three_destinations_is_read():
    doc = parse(oru("C1"), **LIMITS)  # type: ignore[arg-type]
    assert doc.header.control_id == "C1" and doc.header.message_type == "ORU^R01"
    assert doc.matricule == "279035121518989" and doc.oid == "1.2.250.1.213.1.4.10"
    assert doc.destinations == frozenset(ALL)
    assert [r.address for r in doc.recipients] == [DOCTOR]
    assert doc.cda == BIO.read_bytes()
    assert doc.local_ids == (("IPP0001", "1.2.250.1.999.1"),)
    assert doc.author == "801234534765"


def test_lf_separated_segments_are_read_as_cr():
    assert parse(oru("C1").replace(b"\r", b"\n"), **LIMITS).header.control_id == "C1"  # type: ignore[arg-type]


@pytest.mark.parametrize(("mangle", "location"), [
    (lambda m: m.replace(b"MSH|^~\\&|", b"MSH|^^\\&|", 1), "MSH^1^2"),   # repeated encoding character
    (lambda m: m.replace(b"MSH|^~\\&|", b"MSH|^~|", 1), "MSH^1^2"),      # too few
    (lambda m: m.replace(b"MSH|^~\\&|", b"MSHA^~\\&A", 1), "MSH^1^2"),   # a letter as separator
])
def test_wrong_encoding_characters_are_rejected_ar(mangle, location):
    found = refusal(mangle(oru("C1")))
    assert (found.ack, found.location, found.condition[0]) == ("AR", location, "102")


def test_truncated_segments_are_refused_with_the_field():
    message = oru("C1")
    cut = message[:message.index(b"\rPID") + 8]  # PID without its identifiers, nothing after
    found = refusal(cut)
    assert found.ack == "AE" and found.location == "PID^1^3"


def test_not_msh_first_is_rejected():
    assert refusal(b"PID|1||x").location == "MSH^1"


def test_unknown_message_type_is_rejected_201():
    found = refusal(oru("C1").replace(b"ORU^R01^ORU_R01", b"ORU^R30^ORU_R30"))
    assert (found.ack, found.location, found.condition[0]) == ("AR", "MSH^1^9", "201")


def test_r8_a_matricule_with_a_wrong_key_is_refused_on_pid3():
    found = refusal(oru("C1").replace(b"279035121518989^", b"279035121518988^"))
    assert (found.ack, found.location, found.condition[0]) == ("AE", "PID^1^3", "102")


def test_r8_test_oids_are_refused_unless_allowed():
    assert refusal(oru("C1"), allow_test_identities=False).location == "PID^1^3"


def test_an_unknown_metadmpmss_code_is_refused_103():
    found = refusal(oru("C1", destinations=("DESTDMP", "DESTFAX")))
    assert (found.location, found.condition[0]) == ("OBX^3^3", "103")


def test_no_destination_is_refused():
    assert refusal(oru("C1", destinations=())).condition[0] == "101"


def test_ten_thousand_segments_are_rejected_before_parsing():
    message = oru("C1") + b"\rNTE|1||x" * 10_000
    found = refusal(message)
    assert found.ack == "AR" and found.header is not None and found.header.control_id == "C1"


def test_a_document_above_the_cap_is_refused_before_decoding():
    found = refusal(oru("C1", cda=b"<x/>" * 2_600_000))  # 10 MB
    assert found.ack == "AE" and found.location == "OBX^1^5"


def test_a_zip_bomb_labelled_xml_is_refused_by_the_documents_readers():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("CDA.xml", b"<" + b"A" * 50_000_000 + b"/>")
    found = refusal(oru("C1", cda=buffer.getvalue()))
    assert (found.ack, found.location, found.condition[0]) == ("AE", "OBX^1^5", "207")


def test_an_entity_in_the_cda_is_refused():
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ClinicalDocument>&e;' \
           b'</ClinicalDocument>'
    assert refusal(oru("C1", cda=evil)).location == "OBX^1^5"


def test_invalid_base64_is_refused():
    message = oru("C1").replace(base64.b64encode(BIO.read_bytes())[:8], b"!!!!!!!!", 1)
    assert refusal(message).location == "OBX^1^5"


def test_the_ack_escapes_what_it_copies_and_names_the_field():
    found = refusal(oru("C~1\\").replace(b"279035121518989^", b"279035121518988^"))
    answer = ack.build(found.header, found.ack, found)
    assert answer.count("\r") == 2  # MSH, MSA, ERR: nothing a sender wrote adds a segment
    assert "MSA|AE|C\\R\\1\\E\\\r" in answer
    assert ack_code(answer) == ("AE", "PID^1^3")


def test_mdm_t10_needs_the_replaced_document():
    message = oru("C1").replace(b"ORU^R01^ORU_R01", b"MDM^T10^MDM_T02")
    found = refusal(message)
    assert found.location == "TXA"
    assert codes.MDM_T10 in codes.MESSAGE_TYPES
