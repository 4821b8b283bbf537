"""The OBX ED document is cut out of its field by a bounded split (gateway.hl7.er7) and decoded once: the CDA
read is the one sent, whether the base64 is on one line or folded; a value with an escape sequence is not
base64 and is refused naming OBX-5; the record of the message keeps everything but the document's base64."""

from __future__ import annotations

import base64

import pytest
from support.hl7_peer import BIO, oru

from gateway.hl7 import er7
from gateway.hl7.message import Refusal, parse

LIMITS = {"max_segments": 2000, "max_document_bytes": 8 * 1024 * 1024, "allow_test_identities": True}


def test_the_decoded_cda_is_byte_for_byte_the_one_sent():
    doc = parse(oru("L1"), **LIMITS)  # type: ignore[arg-type]
    assert doc.cda == BIO.read_bytes() and doc.cda_obx == 1


def test_folded_base64_is_read_without_its_spaces():
    data = base64.b64encode(BIO.read_bytes())
    folded = b" ".join(data[i:i + 76] for i in range(0, len(data), 76))
    doc = parse(oru("L2").replace(data, folded, 1), **LIMITS)  # type: ignore[arg-type]
    assert doc.cda == BIO.read_bytes()


def test_a_value_is_cut_at_each_level_only_as_far_as_asked():
    marks = er7.Delimiters()
    [segment] = er7.segments("OBX|1|ED|x||^TEXT^XML^Base64^" + "QUFB" * 2000 + "\\E\\" + "|||||F", marks)
    assert er7.value(segment, 5, comp=4) == "Base64"
    assert er7.value(segment, 5, comp=5) == "QUFB" * 2000 + "\\E\\"  # escapes are left as sent
    assert er7.value(segment, 5, comp=6) == "" and er7.value(segment, 99) == ""
    [pid] = er7.segments("PID|1||A^^^&1.2&ISO^INS~B^^^&3.4&ISO^PI", marks)
    assert er7.repetitions(pid, 3) == 2 and er7.value(pid, 3, 2, 4, 2) == "3.4" and er7.value(pid, 3, 3) == ""


def test_a_segment_of_endless_fields_is_split_a_bounded_number_of_times():
    [segment] = er7.segments("NTE" + "|" * 1_000_000, er7.Delimiters())
    assert len(segment.fields) == er7.MAX_FIELDS + 1 and er7.value(segment, er7.MAX_FIELDS) == ""


def test_an_escape_sequence_in_the_document_is_refused_naming_obx_5():
    data = base64.b64encode(BIO.read_bytes())
    with pytest.raises(Refusal) as caught:
        parse(oru("L4").replace(data[:8], data[:4] + b"\\E\\" + data[4:8], 1), **LIMITS)  # type: ignore[arg-type]
    assert caught.value.location == "OBX^1^5"


def test_invalid_base64_is_still_refused_naming_obx_5():
    message = oru("L3").replace(base64.b64encode(BIO.read_bytes())[:8], b"!!!!!!!!", 1)
    with pytest.raises(Refusal) as caught:
        parse(message, **LIMITS)  # type: ignore[arg-type]
    assert caught.value.location == "OBX^1^5"


def test_the_record_keeps_the_message_without_the_documents_base64():
    message = oru("L5")
    doc = parse(message, **LIMITS)  # type: ignore[arg-type]
    assert base64.b64encode(BIO.read_bytes())[:64] not in doc.envelope and len(doc.envelope) < 4096
    assert b"|^TEXT^XML^Base64^|" in doc.envelope
    kept = message.replace(base64.b64encode(BIO.read_bytes()), b"", 1).replace(b"\n", b"\r").strip(b"\r")
    assert doc.envelope == kept
