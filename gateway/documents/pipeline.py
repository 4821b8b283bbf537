"""From a received message to filing decisions: MIME → XDM → CDA → match (R10, R11). Pure and synchronous.

:func:`extract` finds every CDA document a message carries (inside IHE XDM zips and as bare attachments) and
never raises for what the message contains: a part that cannot be read becomes an :class:`ExtractedDocument`
with a ``problem`` sentence, which :func:`decide` turns into a review item (code 906). :func:`process_message`
does both with an identity lookup; :mod:`gateway.documents.record` stores the outcomes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from gateway.documents.cda import CdaHeader, read_header
from gateway.documents.errors import CdaRefused, DocumentRefused, XdmRefused
from gateway.documents.limits import MIME, XDM, MimeLimits, XdmLimits
from gateway.documents.mime import Part, walk
from gateway.documents.xdm import looks_like_zip, read_xdm
from gateway.ins_matching.matching import INS_MISMATCH, OTHER, Decision, Lookup, Review, match

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
class Outcome:
    document: ExtractedDocument
    decision: Decision


def _is_zip(part: Part) -> bool:
    name = (part.filename or "").lower()
    return looks_like_zip(part.data) and (part.content_type in _ZIP_TYPES or name.endswith(".zip"))


def _is_xml(part: Part) -> bool:
    name = (part.filename or "").lower()
    return part.content_type in _XML_TYPES or name.endswith(".xml")


def _label(part: Part) -> str:
    return f"part {part.path}" + (f" ({part.filename})" if part.filename else "")


def extract(raw: bytes, *, validate: bool = True, mime_limits: MimeLimits = MIME,
            xdm_limits: XdmLimits = XDM) -> list[ExtractedDocument]:
    """Every CDA document in ``raw`` (XDM first, bare attachments after), duplicates dropped."""
    try:
        parts = walk(raw, mime_limits)
    except DocumentRefused as refusal:
        return [ExtractedDocument("message", b"", problem=str(refusal))]
    found: list[ExtractedDocument] = []
    for part in parts:
        if _is_zip(part):
            found.extend(_from_xdm(part, validate, xdm_limits))
    for part in parts:
        if _is_xml(part) and not _is_zip(part):
            document = _from_bare(part, validate)
            if document is not None:
                found.append(document)
    unique: list[ExtractedDocument] = []
    seen: dict[tuple[str, int], list[bytes]] = {}
    for document in found:
        if document.header is not None:
            key = (document.header.unique_id, len(document.content))
            if any(document.content == other for other in seen.get(key, ())):
                continue  # the same CDA attached both inside the XDM and beside it
            seen.setdefault(key, []).append(document.content)
        unique.append(document)
    return unique


def _from_xdm(part: Part, validate: bool, limits: XdmLimits) -> list[ExtractedDocument]:
    try:
        archive = read_xdm(part.data, limits)
    except XdmRefused as refusal:
        return [ExtractedDocument(_label(part), part.data, problem=str(refusal))]
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


def decide(document: ExtractedDocument, lookup: Lookup, *, allow_test_oids: bool = False,
           author_allowed: Callable[[CdaHeader], bool] | None = None,
           filed_version: Callable[[str], int | None] | None = None) -> Decision:
    """The filing decision for one extracted document (R10, R11)."""
    if document.header is None:
        return Review(OTHER, document.problem or "The document could not be read.")
    declared = document.declared_patient
    patient = document.header.patient
    if declared is not None and patient.ins and declared != (patient.matricule, patient.oid):
        return Review(INS_MISMATCH, "The XDM metadata's patient id differs from the INS in the CDA header.")
    return match(document.header, lookup, allow_test_oids=allow_test_oids, author_allowed=author_allowed,
                 filed_version=filed_version)


def process_message(raw: bytes, lookup: Lookup, *, allow_test_oids: bool = False,
                    author_allowed: Callable[[CdaHeader], bool] | None = None,
                    filed_version: Callable[[str], int | None] | None = None,
                    validate: bool = True) -> list[Outcome]:
    """MIME → XDM → CDA → match for one received message; one outcome per CDA found (or per unreadable part)."""
    return [Outcome(document, decide(document, lookup, allow_test_oids=allow_test_oids,
                                     author_allowed=author_allowed, filed_version=filed_version))
            for document in extract(raw, validate=validate)]
