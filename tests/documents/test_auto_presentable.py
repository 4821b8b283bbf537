"""Auto-presentable CDA (an XSL stylesheet wrapping the ClinicalDocument) read bare and inside an IHE XDM, and
the parts of a message that hold no document named with their reason (R10: no message without an outcome)."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage

import pytest
from documents.helpers import BIO, TEST_MATRICULE, sample

from gateway.documents.cda import CdaRefused, read_header
from gateway.documents.pipeline import read_message
from gateway.documents.xdm_writer import build_xdm


def auto_presentable(cda: bytes, root: str = "stylesheet") -> bytes:
    body = cda.split(b"?>", 1)[1] if cda.lstrip().startswith(b"<?xml") else cda
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<xsl:{root} version="1.0" '
            'xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:hl7="urn:hl7-org:v3">\n'
            '<xsl:template match="/"><html><body><xsl:value-of select="document(\'\')/*/hl7:ClinicalDocument/'
            'hl7:title"/></body></html></xsl:template>\n').encode() + body.strip() + f"\n</xsl:{root}>\n".encode()


def mail(*attachments: tuple[str, str, bytes]) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = "lab@pro.test", "results@pro.test", "CR"
    message.set_content("Compte rendu.")
    for name, mime, data in attachments:
        maintype, subtype = mime.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


@pytest.mark.parametrize("root", ["stylesheet", "transform"])
def test_an_auto_presentable_cda_header_is_the_wrapped_documents(root: str) -> None:
    plain = read_header(BIO.read_bytes())
    wrapped = read_header(auto_presentable(BIO.read_bytes(), root))
    assert wrapped.auto_presentable and not plain.auto_presentable
    assert (wrapped.unique_id, wrapped.title, wrapped.patient.matricule) == (
        plain.unique_id, plain.title, TEST_MATRICULE)
    assert wrapped.schema_valid is plain.schema_valid


def test_a_stylesheet_without_a_clinical_document_is_not_a_cda() -> None:
    with pytest.raises(CdaRefused) as refused:
        read_header(b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>')
    assert refused.value.reason == "not-cda"


def test_an_auto_presentable_cda_is_found_bare_and_inside_an_xdm() -> None:
    auto = auto_presentable(sample("DOC_NON_STRUCTURE_CDA-R2-N1.xml"))
    zipped, _ = build_xdm([auto])
    for raw in (mail(("cr.xml", "text/xml", auto)), mail(("IHE_XDM.ZIP", "application/zip", zipped))):
        read = read_message(raw, validate=False)
        assert [d.header is not None and d.header.auto_presentable for d in read.documents] == [True]
        assert read.not_documents == []


def test_parts_that_are_no_documents_are_named_with_their_reason() -> None:
    raw = mail(("cr.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n"), ("note.xml", "text/xml", b"<note/>"),
               ("archive.zip", "application/zip", b"not a zip at all"),
               ("cr.xml", "text/xml", BIO.read_bytes()))
    read = read_message(raw, validate=False)
    assert len(read.documents) == 1 and read.documents[0].header is not None
    reasons = {o.source.split("(")[-1].rstrip(")"): o.reason for o in read.not_documents}
    assert set(reasons) == {"cr.pdf", "note.xml", "archive.zip"}
    assert reasons["cr.pdf"].startswith("A PDF")
    assert "not an HL7 CDA" in reasons["note.xml"] and "not one" in reasons["archive.zip"]


def test_an_auto_presentable_cda_is_considered_for_deposit_as_the_clinical_document_it_wraps() -> None:
    from gateway.dmp_bridge.bridge import cdas_of

    auto = auto_presentable(sample("DOC_NON_STRUCTURE_CDA-R2-N1.xml"))
    ((content, header),) = cdas_of(read_message(mail(("cr.xml", "text/xml", auto)), validate=False))
    assert header.auto_presentable and b"xsl:stylesheet" not in content
    assert read_header(content, validate=False).unique_id == header.unique_id
    assert not read_header(content, validate=False).auto_presentable
