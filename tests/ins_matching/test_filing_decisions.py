"""The message pipeline MIME → XDM → CDA → match, pure: what a delivered message's documents become (R10)."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage

from documents.helpers import TEST_MATRICULE, entry, identity, raw_zip, sample, variant

from gateway.documents.pipeline import extract
from gateway.documents.xdm_writer import build_xdm
from gateway.ins_matching.filing import process_message
from gateway.ins_matching.matching import INS_MISMATCH, OTHER, UNKNOWN_PATIENT, FileTo, Review

IMAGING = "IMG_CR_IMG_2024.01.xml"


def _mail(*attachments: tuple[bytes, str, str, str]) -> bytes:
    message = EmailMessage()
    message["From"] = "lab@pro.gateway.test"
    message["To"] = "doctor@pro.gateway.test"
    message["Subject"] = "XDM/1.0/DDM+CR"
    message.set_content("Résultats ci-joints.")
    for data, maintype, subtype, name in attachments:
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def test_r10_xdm_and_bare_copy_give_one_outcome_per_document(bio: bytes) -> None:
    archive, _ = build_xdm([bio, sample(IMAGING)])
    raw = _mail((archive, "application", "zip", "IHE_XDM.ZIP"), (bio, "text", "xml", "CR.XML"),
                (b"%PDF-1.4", "application", "pdf", "CR.PDF"))
    person = identity()
    outcomes = process_message(raw, {TEST_MATRICULE: person}, allow_test_oids=True)
    assert len(outcomes) == 2  # the bare CR.XML is the XDM's first document: not twice
    assert all(isinstance(o.decision, FileTo) and o.decision.identity is person for o in outcomes)
    assert outcomes[0].document.source.endswith("IHE_XDM/SUBSET01/DOC0001.XML")
    assert outcomes[0].document.header is not None and outcomes[0].document.header.schema_valid


def test_r10_bare_cda_without_xdm_is_matched(bio: bytes) -> None:
    (outcome,) = process_message(_mail((bio, "application", "xml", "cr.xml")), {}, allow_test_oids=True)
    assert isinstance(outcome.decision, Review) and outcome.decision.code == UNKNOWN_PATIENT
    assert outcome.document.content == bio


def test_other_xml_and_pdf_attachments_are_not_documents_to_file() -> None:
    raw = _mail((b"<invoice/>", "text", "xml", "invoice.xml"), (b"%PDF-1.4", "application", "pdf", "a.pdf"))
    assert extract(raw) == []


def test_unsafe_xdm_becomes_a_review_item_with_the_reason(bio: bytes) -> None:
    evil = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", b"<x/>"), entry("../../evil", b"x")])
    (outcome,) = process_message(_mail((evil, "application", "zip", "IHE_XDM.ZIP")), {})
    assert isinstance(outcome.decision, Review) and outcome.decision.code == OTHER
    assert "'..'" in outcome.decision.reason and outcome.document.content == evil


def test_hostile_mime_becomes_one_review_item_for_the_message() -> None:
    levels = 200
    raw = b"".join(f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode() for i in range(levels))
    (outcome,) = process_message(raw, {})
    assert outcome.document.source == "message" and isinstance(outcome.decision, Review)
    assert "nested deeper" in outcome.decision.reason


def test_r10_xdm_metadata_patient_differs_from_the_cda_is_904(bio: bytes) -> None:
    archive, _ = build_xdm([bio])
    files = _unzip(archive)
    files["IHE_XDM/SUBSET01/METADATA.XML"] = files["IHE_XDM/SUBSET01/METADATA.XML"].replace(
        b"279035121518989^^^", b"180077511200168^^^")
    forged = raw_zip([entry(name, data) for name, data in files.items()])
    (outcome,) = process_message(_mail((forged, "application", "zip", "IHE_XDM.ZIP")), {TEST_MATRICULE: identity()},
                                 allow_test_oids=True)
    assert isinstance(outcome.decision, Review) and outcome.decision.code == INS_MISMATCH


def test_altered_document_in_xdm_goes_to_review(bio: bytes) -> None:
    archive, _ = build_xdm([bio])
    files = _unzip(archive)
    files["IHE_XDM/SUBSET01/DOC0001.XML"] = variant(bio, ("TSH", "TSX"))
    forged = raw_zip([entry(name, data) for name, data in files.items()])
    (outcome,) = process_message(_mail((forged, "application", "zip", "IHE_XDM.ZIP")), {TEST_MATRICULE: identity()},
                                 allow_test_oids=True)
    assert isinstance(outcome.decision, Review) and "SHA-1" in outcome.decision.reason


def test_bare_cda_with_a_dtd_goes_to_review(bio: bytes) -> None:
    attack = variant(bio, ("<ClinicalDocument ", '<!DOCTYPE ClinicalDocument [<!ENTITY x "y">]><ClinicalDocument '))
    (outcome,) = process_message(_mail((attack, "text", "xml", "cr.xml")), {})
    assert isinstance(outcome.decision, Review) and "DTD" in outcome.decision.reason


def _unzip(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {name: opened.read(name) for name in opened.namelist()}
