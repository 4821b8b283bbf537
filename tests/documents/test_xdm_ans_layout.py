"""IHE XDM packages laid out as the ANS publishes them: METADATA.XML URIs relative to IHE_XDM/
(``SS000001/KOS_1_1.DCM``) are read as well as subset-relative ones (``DOC0001.XML``), on the ANS sample's
METADATA.XML (ansforge/DRIM-M_DATA, tests/fixtures/samples/dmp)."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
from documents.helpers import BIO

from gateway.documents.errors import XdmRefused
from gateway.documents.pipeline import read_message
from gateway.documents.xdm import read_xdm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "dmp"
KOS = b"DICM" + bytes(128)  # stands for the KOS, which the sample does not carry
SIGNATURE = b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>'


def ans_metadata(**files: bytes) -> bytes:
    """The sample's METADATA.XML, wrapped in the namespaces it lacks (it is a fragment); with ``files`` (URI
    to content) its hash and size slots are those of the given content (a fixture variant)."""
    text = (FIXTURES / "XDM_METADATA_DRIM-M.XML").read_text("utf-8")
    for uri, content in files.items():
        start = text.index(f"<Value>{uri}</Value>")
        head = text.rindex("<ExtrinsicObject", 0, start)
        tail = text.index("</ExtrinsicObject>", start)
        block = text[head:tail]
        digest = hashlib.sha1(content, usedforsecurity=False).hexdigest()
        block = re.sub(r'(<Slot name="hash">\s*<ValueList>\s*<Value>)[0-9a-f]+', rf"\g<1>{digest}", block)
        block = re.sub(r'(<Slot name="size">\s*<ValueList>\s*<Value>)\d+', rf"\g<1>{len(content)}", block)
        text = text[:head] + block + text[tail:]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<XDM xmlns="urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0" '
            'xmlns:ns3="urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0">' + text + "</XDM>").encode("utf-8")


def package(metadata: bytes, entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("IHE_XDM/SS000001/METADATA.XML", metadata)
        for name, data in entries.items():
            archive.writestr(name, data)
        archive.writestr("INDEX.HTM", "<html></html>")
        archive.writestr("README.TXT", "XDM")
    return out.getvalue()


ANS_FILES = {"IHE_XDM/SS000001/KOS_1_1.DCM": KOS, "IHE_XDM/SS000001/SIGN_1.XML": SIGNATURE}


def test_the_ans_xdm_layout_resolves_uris_relative_to_ihe_xdm() -> None:
    archive = read_xdm(package(ans_metadata(), ANS_FILES))
    (subset,) = archive.subsets
    assert subset.name == "SS000001"
    assert [d.path for d in subset.documents] == list(ANS_FILES)
    assert [d.mime_type for d in subset.documents] == ["application/dicom", "text/xml"]
    assert subset.patient_id and subset.patient_id.endswith("&1.2.250.1.213.1.4.10&ISO^NH")
    assert all(d.unique_id for d in subset.documents)
    # the original hash and size slots describe the ANS files, not these stand-ins: the reader says so
    assert all(any("SHA-1" in p for p in d.problems) for d in subset.documents)


def test_the_ans_xdm_with_matching_hashes_has_no_problem() -> None:
    metadata = ans_metadata(**{"SS000001/KOS_1_1.DCM": KOS, "SS000001/SIGN_1.XML": SIGNATURE})
    (subset,) = read_xdm(package(metadata, ANS_FILES)).subsets
    assert [d.problems for d in subset.documents] == [(), ()]
    assert [d.content for d in subset.documents] == [KOS, SIGNATURE]


def test_subset_relative_uris_are_still_read() -> None:
    metadata = ans_metadata().replace(b"<Value>SS000001/KOS_1_1.DCM</Value>", b"<Value>KOS_1_1.DCM</Value>")
    (subset,) = read_xdm(package(metadata, ANS_FILES)).subsets
    assert [d.path for d in subset.documents] == list(ANS_FILES)


def test_a_uri_naming_no_file_is_refused_with_a_sentence() -> None:
    with pytest.raises(XdmRefused) as refused:
        read_xdm(package(ans_metadata(), {"IHE_XDM/SS000001/KOS_1_1.DCM": KOS}))
    assert refused.value.reason == "missing-document"


def test_a_cda_at_an_ihe_xdm_relative_uri_is_extracted_and_the_signature_is_not_a_document() -> None:
    cda = BIO.read_bytes()
    metadata = ans_metadata(**{"SS000001/KOS_1_1.DCM": cda, "SS000001/SIGN_1.XML": SIGNATURE}).replace(
        b'mimeType="application/dicom"', b'mimeType="text/xml"').replace(
        b"<Value>SS000001/KOS_1_1.DCM</Value>", b"<Value>SS000001/DOC0001.XML</Value>")
    zipped = package(metadata, {"IHE_XDM/SS000001/DOC0001.XML": cda, "IHE_XDM/SS000001/SIGN_1.XML": SIGNATURE})
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@pro.test", "b@pro.test", "XDM"
    message.set_content("XDM")
    message.add_attachment(zipped, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    read = read_message(message.as_bytes(), validate=False)
    assert [d.source.rsplit(" ", 1)[-1] for d in read.documents] == ["IHE_XDM/SS000001/DOC0001.XML"]
    assert read.documents[0].header is not None and read.documents[0].problem is None
    assert [o.source.rsplit(" ", 1)[-1] for o in read.not_documents] == ["IHE_XDM/SS000001/SIGN_1.XML"]
