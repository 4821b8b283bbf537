"""Integration reports of a filing mailbox (R6, R10, ANS platform volet): the MDN of an integration error read
back with the standard library, the readable error message when no MDN was asked for, and a message whose parts
are no documents still answered and recorded, end to end through a running gateway."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message

import pytest
from filing.test_filing_by_smtp import LAB, RESULTS, SAMPLES, filed, filing_gateway, mail_with
from support.wait import wait_until

from gateway.documents.cda import read_header
from gateway.filing import mdn

__all__ = ["filing_gateway"]

BIO = (SAMPLES / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes()
UNKNOWN = BIO.replace(b"279035121518989", b"180077511200168")  # a matricule unknown to the repository


def auto_presentable(cda: bytes) -> bytes:
    """An auto-presentable CDA: an XSL stylesheet carrying the ClinicalDocument and the template rendering it."""
    body = cda.split(b"?>", 1)[1] if cda.lstrip().startswith(b"<?xml") else cda
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" '
            b'xmlns:hl7="urn:hl7-org:v3">\n'
            b'<xsl:template match="/"><html><body><xsl:value-of select="document(\'\')/*/hl7:ClinicalDocument/'
            b'hl7:title"/></body></html></xsl:template>\n' + body.strip() + b"\n</xsl:stylesheet>\n")


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _fields(report: EmailMessage) -> dict[str, str]:
    """The fields of the message/disposition-notification part."""
    (part,) = [p for p in report.iter_parts() if p.get_content_type() == "message/disposition-notification"]
    payload = part.get_payload()
    text = payload if isinstance(payload, str) else "".join(
        str(m) for m in payload) if isinstance(payload, list) else str(payload)
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def test_an_integration_error_mdn_has_the_ko_subject_three_parts_and_the_error_field() -> None:
    original = mail_with([("cr.xml", "text/xml", UNKNOWN)], {"Disposition-Notification-To": LAB})
    request = mdn.requested(_parse(original), RESULTS)
    assert request is not None
    report = _parse(mdn.build(request, RESULTS, "mx.test", 902, original, _parse(original)["Subject"]))
    assert report["Subject"] == "[KO Intégration système !][902] XDM/1.0/DDM+Compte rendu PAT-TROIS DOMINIQUE 19790328"
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "disposition-notification"
    parts = list(report.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/disposition-notification",
                                                     "message/rfc822"]
    fields = _fields(report)
    assert fields["Error"] == "902^Patient inconnu"
    assert fields["Disposition"].endswith("processed/error")
    assert fields["Original-Message-ID"] == _parse(original)["Message-ID"]
    assert fields["Original-Recipient"] == f"rfc822;{RESULTS}"
    (inner,) = parts[2].get_payload()  # type: ignore[misc]
    assert isinstance(inner, Message)
    assert inner["Message-ID"] == _parse(original)["Message-ID"]


def test_a_processed_mdn_has_no_error_field_and_keeps_the_original() -> None:
    original = mail_with([("cr.xml", "text/xml", BIO)], {"Disposition-Notification-To": LAB})
    request = mdn.requested(_parse(original), RESULTS)
    assert request is not None
    report = _parse(mdn.build(request, RESULTS, "mx.test", None, original, "Compte rendu"))
    fields = _fields(report)
    assert "Error" not in fields and fields["Disposition"].endswith("; processed")
    assert not report["Subject"].startswith(mdn.KO_PREFIX)
    assert [p.get_content_type() for p in report.iter_parts()][-1] == "message/rfc822"


def test_the_error_notice_names_the_code_label_and_reasons_in_plain_text() -> None:
    notice = _parse(mdn.error_notice(LAB, RESULTS, "mx.test", 904, ["Le nom de naissance diffère."],
                                     "<a@lab.test>", "Compte rendu"))
    assert notice["Subject"] == "[KO Intégration système !][904] Compte rendu"
    assert notice.get_content_type() == "text/plain" and notice["In-Reply-To"] == "<a@lab.test>"
    text = notice.get_content()
    assert "904 INS ou traits non concordants" in text and "Le nom de naissance diffère." in text
    assert notice["Auto-Submitted"] == "auto-replied"


@pytest.mark.slow  # starts a process
def test_r10_filing_mailbox_answers_every_message_with_an_outcome(filing_gateway) -> None:  # type: ignore[no-untyped-def]
    gateway, store = filing_gateway
    with gateway.smtp(LAB) as client:
        # 1. an integration error with an MDN asked for; 2. the same without; 3. only parts that are no
        # documents, with an MDN asked for; 4. an auto-presentable CDA, filed.
        client.sendmail(LAB, [RESULTS], mail_with([("cr.xml", "text/xml", UNKNOWN)],
                                                  {"Disposition-Notification-To": LAB}))
        client.sendmail(LAB, [RESULTS], mail_with([("cr.xml", "text/xml", UNKNOWN)]))
        client.sendmail(LAB, [RESULTS], mail_with([("cr.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n"),
                                                   ("note.xml", "text/xml", b"<note>rien</note>")],
                                                  {"Disposition-Notification-To": LAB}))
        client.sendmail(LAB, [RESULTS], mail_with([("cr-auto.xml", "text/xml", auto_presentable(BIO))]))
    wait_until(lambda: len(store.events("filing.done")) >= 4, what="four filing.done events")
    answers = wait_until(lambda: (lambda m: m if len(m) >= 3 else None)(store.messages_in(LAB)), what="three MDNs")
    reports = [_parse(raw) for raw in answers]
    assert all(str(r["X-MSS-NIL"]).startswith("mss-gateway") for r in reports)  # the gateway built them
    by_kind = {r.get_content_type(): r for r in reports}
    subjects = sorted(str(r["Subject"]) for r in reports)
    assert sum(s.startswith("[KO Intégration système !][902] ") for s in subjects) == 2, subjects
    assert sum(s.startswith("[KO Intégration système !][906] ") for s in subjects) == 1, subjects
    assert "text/plain" in by_kind  # the error notice of the message that asked for no MDN
    mdns = [r for r in reports if r.get_content_type() == "multipart/report"]
    assert len(mdns) == 2 and all(len(list(r.iter_parts())) == 3 for r in mdns)
    assert sorted(_fields(r)["Error"] for r in mdns) == ["902^Patient inconnu", "906^Autre erreur"]
    reasons = sorted(str((e.detail or {}).get("reason", "")) for e in store.events("filing.not_a_document"))
    assert len(reasons) == 2 and reasons[0].startswith("A PDF") and "not an HL7 CDA" in reasons[1]
    assert [d.title for d in filed(store)] == [read_header(BIO).title]  # the auto-presentable CDA
