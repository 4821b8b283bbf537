"""What a received message carries: MIME → XDM → CDA, read once for every consumer. Pure and synchronous.

:func:`read_message` walks the message with the bounded readers (:mod:`gateway.documents.mime`,
:mod:`gateway.documents.xdm`, :mod:`gateway.documents.cda`) and returns the CDA documents it carries (inside
IHE XDM zips and as bare attachments), the parts and the XDM archives it read. It never raises for what the
message contains: a part that cannot be read becomes an :class:`ExtractedDocument` with a ``problem``
sentence. The filing path (:mod:`gateway.ins_matching.filing`, R10) and the deposit path
(:mod:`gateway.dmp_bridge.bridge`, R12–R16) both consume this one result: there is no second reader.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from gateway.documents.cda import CdaHeader, read_header
from gateway.documents.errors import CdaRefused, DocumentRefused, XdmRefused
from gateway.documents.limits import MIME, XDM, MimeLimits, XdmLimits
from gateway.documents.mime import Part, walk
from gateway.documents.xdm import XdmArchive, looks_like_zip, read_xdm

_ZIP_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip", "application/octet-stream"}
_XML_TYPES = {"text/xml", "application/xml", "application/hl7-v3+xml", "application/hl7-cda+xml"}


@dataclass(frozen=True)
class ExtractedDocument:
    """A CDA found in a message (``header`` set), or something that should have been one (``problem`` set)."""

    source: str
    content: bytes
    header: CdaHeader | None = None
    problem: str | None = None
    #: ``(matricule, OID)`` the XDM metadata declares for this document, to compare with the CDA's INS.
    declared_patient: tuple[str, str] | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class NotDocument:
    """An XML, PDF or zip part that holds no CDA to file, and why: recorded so that no message to a filing
    mailbox ends without an outcome for what it carries (R10)."""

    source: str
    reason: str


@dataclass(frozen=True)
class Extracted:
    """Everything read from one message: its documents, its MIME parts and the XDM archives among them."""

    documents: list[ExtractedDocument]
    #: Empty when the MIME structure itself was refused (one document then carries the reason).
    parts: list[Part] = field(default_factory=list)
    #: The XDM zips read without refusal, by the MIME path of their part.
    archives: dict[str, XdmArchive] = field(default_factory=dict)
    #: The XML, PDF and zip parts that yielded no document, with the reason.
    not_documents: list[NotDocument] = field(default_factory=list)


def _is_zip(part: Part) -> bool:
    name = (part.filename or "").lower()
    return looks_like_zip(part.data) and (part.content_type in _ZIP_TYPES or name.endswith(".zip"))


def _is_xml(part: Part) -> bool:
    name = (part.filename or "").lower()
    return part.content_type in _XML_TYPES or name.endswith(".xml")


def _declared_zip(part: Part) -> bool:
    name = (part.filename or "").lower()
    return part.content_type in _ZIP_TYPES - {"application/octet-stream"} or name.endswith(".zip")


def _is_pdf(part: Part) -> bool:
    name = (part.filename or "").lower()
    return part.content_type == "application/pdf" or name.endswith(".pdf")


def _label(part: Part) -> str:
    return f"part {part.path}" + (f" ({part.filename})" if part.filename else "")


def read_message(raw: bytes, *, validate: bool = True, mime_limits: MimeLimits = MIME,
                 xdm_limits: XdmLimits = XDM) -> Extracted:
    """Every CDA document in ``raw`` (XDM first, bare attachments after), duplicates dropped, with the parts."""
    try:
        parts = walk(raw, mime_limits)
    except DocumentRefused as refusal:
        return Extracted([ExtractedDocument("message", b"", problem=str(refusal))])
    found: list[ExtractedDocument] = []
    archives: dict[str, XdmArchive] = {}
    others: list[NotDocument] = []
    for part in parts:
        if _is_zip(part):
            before = len(others)
            from_zip = _from_xdm(part, validate, xdm_limits, archives, others)
            found.extend(from_zip)
            if not from_zip and len(others) == before:
                others.append(NotDocument(_label(part), "The IHE XDM archive holds no CDA document."))
        elif _declared_zip(part):
            others.append(NotDocument(_label(part), "The part is named or typed as a zip archive but is not one."))
    for part in parts:
        if _is_xml(part) and not _is_zip(part):
            document = _from_bare(part, validate)
            if document is not None:
                found.append(document)
            else:
                others.append(NotDocument(_label(part), "The XML attachment is not an HL7 CDA R2 ClinicalDocument "
                                                        "(nor an auto-presentable CDA)."))
        elif _is_pdf(part):
            others.append(NotDocument(_label(part), "A PDF is a rendering for people, not a structured document "
                                                    "to file; it stays with the message."))
    unique: list[ExtractedDocument] = []
    seen: dict[tuple[str, int], list[bytes]] = {}
    for document in found:
        if document.header is not None:
            key = (document.header.unique_id, len(document.content))
            if any(document.content == other for other in seen.get(key, ())):
                continue  # the same CDA attached both inside the XDM and beside it
            seen.setdefault(key, []).append(document.content)
        unique.append(document)
    return Extracted(unique, parts, archives, others)


def extract(raw: bytes, *, validate: bool = True, mime_limits: MimeLimits = MIME,
            xdm_limits: XdmLimits = XDM) -> list[ExtractedDocument]:
    """The documents of :func:`read_message`."""
    return read_message(raw, validate=validate, mime_limits=mime_limits, xdm_limits=xdm_limits).documents


def _from_xdm(part: Part, validate: bool, limits: XdmLimits, archives: dict[str, XdmArchive],
              others: list[NotDocument]) -> list[ExtractedDocument]:
    try:
        archive = read_xdm(part.data, limits)
    except XdmRefused as refusal:
        return [ExtractedDocument(_label(part), part.data, problem=str(refusal))]
    archives[part.path] = archive
    documents = []
    for entry in archive.documents:
        source = f"{_label(part)} {entry.path}"
        if not (entry.mime_type in _XML_TYPES or entry.path.lower().endswith(".xml")):
            continue  # a PDF or image beside the CDA: it travels with its CDA, not filed on its own
        if entry.problems:
            documents.append(ExtractedDocument(source, entry.content, problem=" ".join(entry.problems)))
            continue
        try:
            header = read_header(entry.content, validate=validate)
        except CdaRefused as refusal:
            if refusal.reason == "not-cda":  # e.g. the XAdES signature of the set (ANS XDM): not a document
                others.append(NotDocument(source, "The XML file of the XDM is not an HL7 CDA R2 ClinicalDocument "
                                                  "(a signature or another XML file)."))
                continue
            documents.append(ExtractedDocument(source, entry.content, problem=str(refusal)))
            continue
        documents.append(ExtractedDocument(source, entry.content, header, declared_patient=entry.patient))
    return documents


def _from_bare(part: Part, validate: bool) -> ExtractedDocument | None:
    try:
        header = read_header(part.data, validate=validate)
    except CdaRefused as refusal:
        if refusal.reason == "not-cda":
            return None  # some other XML attachment: not ours to file
        return ExtractedDocument(_label(part), part.data, problem=str(refusal))
    return ExtractedDocument(_label(part), part.data, header)
