"""The OBX ED document is set aside before python-hl7 splits the message (it is most of the bytes): the CDA read
that way is the one sent, whether the base64 is on one line or folded, and a value the parser must see (an
escape sequence) is left to it."""

from __future__ import annotations

import base64

import pytest
from support.hl7_peer import BIO, oru

from gateway.hl7.message import Refusal, _lift_documents, parse

LIMITS = {"max_segments": 2000, "max_document_bytes": 8 * 1024 * 1024, "allow_test_identities": True}


def test_the_lifted_cda_is_byte_for_byte_the_one_sent():
    doc = parse(oru("L1"), **LIMITS)  # type: ignore[arg-type]
    assert doc.cda == BIO.read_bytes() and doc.cda_obx == 1


def test_folded_base64_is_read_without_its_spaces():
    data = base64.b64encode(BIO.read_bytes())
    folded = b" ".join(data[i:i + 76] for i in range(0, len(data), 76))
    doc = parse(oru("L2").replace(data, folded, 1), **LIMITS)  # type: ignore[arg-type]
    assert doc.cda == BIO.read_bytes()


def test_a_value_with_an_escape_sequence_is_left_to_the_parser():
    text = "OBX|1|ED|x||^TEXT^XML^Base64^" + "QUFB" * 2000 + "\\E\\" + "|||||F"
    kept, lifted = _lift_documents(text, "|", "^~\\&")
    assert lifted == {} and kept == text
    plain = "OBX|1|ED|x||^TEXT^XML^Base64^" + "QUFB" * 2000 + "|||||F"
    kept, lifted = _lift_documents(plain, "|", "^~\\&")
    assert lifted == {1: "QUFB" * 2000} and kept == "OBX|1|ED|x||^TEXT^XML^Base64^|||||F"


def test_invalid_base64_is_still_refused_naming_obx_5():
    message = oru("L3").replace(base64.b64encode(BIO.read_bytes())[:8], b"!!!!!!!!", 1)
    with pytest.raises(Refusal) as caught:
        parse(message, **LIMITS)  # type: ignore[arg-type]
    assert caught.value.location == "OBX^1^5"
