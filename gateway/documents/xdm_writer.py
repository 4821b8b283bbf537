"""IHE XDM writer: CDA documents in, an ``IHE_XDM.ZIP`` out (ITI-32), with the MSSanté headers that go with it.

The ebRIM metadata is taken from each CDA header (domain.md section 5: the bridge fills XDS metadata from the
CDA header where there is one), so the zip says exactly what the documents say. Layout::

    INDEX.HTM  README.TXT  IHE_XDM/SUBSET01/METADATA.XML  IHE_XDM/SUBSET01/DOC0001.XML ...
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway.documents import xds
from gateway.documents.cda import OID_PS_NATIONAL_ID, OID_STRUCTURE_NATIONAL_ID, CdaHeader, Code, Person, read_header

SUBSET = "SUBSET01"


@dataclass(frozen=True)
class WrittenDocument:
    """What the writer put in the zip for one CDA (its header, name and hash), for the caller's records."""

    header: CdaHeader
    path: str
    sha1: str
    size: int


def new_oid() -> str:
    """A unique OID under 2.25 (ITU-T X.667: a UUID as an integer), for submission set ids."""
    return f"2.25.{uuid.uuid4().int}"


def hl7_to_utc(value: str | None) -> str | None:
    """An HL7 TS (``YYYYMMDDHHMMSS[+ZZZZ]``) as the UTC ``YYYYMMDDHHMMSS`` form XDS wants."""
    if not value:
        return None
    digits = "".join(ch for ch in value.split("+")[0].split("-")[0].split(".")[0] if ch.isdigit())
    zone = value[len(value) - 5:] if len(value) >= 5 and value[-5] in "+-" else None
    if len(digits) < 8:
        return None
    if zone is None or len(digits) < 12:
        return digits[:14]
    padded = (digits + "000000")[:14]
    try:  # the fields read directly: strptime costs ~10 µs a call, three a document
        local = datetime(int(padded[:4]), int(padded[4:6]), int(padded[6:8]), int(padded[8:10]),
                         int(padded[10:12]), int(padded[12:14]))
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * (1 if zone[0] == "+" else -1)
    except ValueError:
        return digits[:14]
    return (local - offset).strftime("%Y%m%d%H%M%S")


#: Characters XML 1.0 does not allow (section 2.2): a value holding one is refused, as lxml would.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: What a value may hold that needs a second look: markup, attribute white space, or a character not allowed.
_SPECIAL = re.compile('[&<>"\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTRIBUTE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\t": "&#9;", "\n": "&#10;",
                            "\r": "&#13;"})


def _escaped(value: str, table: dict[int, str]) -> str:
    if _SPECIAL.search(value) is None:  # nearly every value: codes, OIDs, names
        return value
    if _NOT_XML.search(value):
        raise ValueError("A metadata value holds a character XML does not allow.")
    return value.translate(table)


def _element(tag: str, attrs: dict[str, str | None] | None = None, *children: str, text: str | None = None) -> str:
    """``<rim:tag ...>`` with its attributes (None ones left out) and children (or text), as text: the metadata
    of one message is ~100 elements, and building them as lxml nodes then serialising them took most of the
    package's time on the path that writes one per message (HL7 acceptance)."""
    marks = "".join(f' {name}="{_escaped(value, _ATTRIBUTE)}"' for name, value in (attrs or {}).items()
                    if value is not None)
    inner = "".join(children) if text is None else _escaped(text, _TEXT)
    return f"<rim:{tag}{marks}>{inner}</rim:{tag}>" if inner else f"<rim:{tag}{marks}/>"


def _slot(name: str, *values: str | None) -> str:
    present = [v for v in values if v]
    if not present:
        return ""
    return _element("Slot", {"name": name}, _element("ValueList", None,
                                                     *(_element("Value", text=value) for value in present)))


def _name(text: str | None, tag: str = "Name") -> str:
    return _element(tag, None, _element("LocalizedString", {"value": text, "charset": "UTF-8"})) if text else ""


class _Ids:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count:02d}"


def _classify(ids: _Ids, scheme: str, obj: str, code: Code | None, name: str | None = None) -> str:
    if code is None:
        return ""
    return _element("Classification", {"id": ids("cl"), "classificationScheme": scheme, "classifiedObject": obj,
                                       "nodeRepresentation": code.code},
                    _slot("codingScheme", code.code_system), _name(name or code.display_name))


def _xcn(person: Person) -> str | None:
    """An author or legal authenticator as HL7 XCN (ANS form for the national PS identifier)."""
    if person.id is None:
        return None
    if person.id.root == OID_PS_NATIONAL_ID and person.id.extension:
        return (f"{person.id.extension}^{person.family or ''}^{person.given or ''}^^^^^^"
                f"&{OID_PS_NATIONAL_ID}&ISO^D^^^IDNPS")
    return f"{person.id.extension or ''}^{person.family or ''}^{person.given or ''}^^^^^^&{person.id.root}&ISO"


def _xon(person: Person) -> str | None:
    organisation = person.organisation
    if organisation is None or organisation.name is None:
        return None
    if organisation.id is None or not organisation.id.extension:
        return organisation.name
    kind = "^IDNST" if organisation.id.root == OID_STRUCTURE_NATIONAL_ID else "^"
    return f"{organisation.name}^^^^^&{organisation.id.root}&ISO{kind}^^^{organisation.id.extension}"


def _author(ids: _Ids, scheme: str, obj: str, person: Person) -> str:
    specialty = (f"{person.role.code}^{person.role.display_name or ''}^{person.role.code_system or ''}"
                 if person.role is not None else None)
    return _element("Classification", {"id": ids("cl"), "classificationScheme": scheme, "classifiedObject": obj,
                                       "nodeRepresentation": ""},
                    _slot("authorPerson", _xcn(person)), _slot("authorInstitution", _xon(person)),
                    _slot("authorSpecialty", specialty))


def _identifier(ids: _Ids, scheme: str, obj: str, value: str, label: str) -> str:
    return _element("ExternalIdentifier", {"id": ids("ei"), "identificationScheme": scheme, "registryObject": obj,
                                           "value": value}, _name(label))


def _entry(ids: _Ids, index: int, document: WrittenDocument) -> str:
    """The ExtrinsicObject of one document (its slots, classifications and identifiers) and its association."""
    header = document.header
    entry = f"Document{index:02d}"
    patient = header.patient
    cx = xds.cx(patient.matricule, patient.oid) if patient.matricule and patient.oid else None
    legal = _xcn(header.legal_authenticator) if header.legal_authenticator is not None else None
    parts = [
        _slot("creationTime", hl7_to_utc(header.effective_time)),
        _slot("hash", document.sha1),
        _slot("size", str(document.size)),
        _slot("languageCode", header.language),
        _slot("URI", document.path.rsplit("/", 1)[-1]),
        _slot("legalAuthenticator", legal),
        _slot("serviceStartTime", hl7_to_utc(header.service_start)),
        _slot("serviceStopTime", hl7_to_utc(header.service_stop)),
        _slot("sourcePatientId", cx),
        _slot("sourcePatientInfo",
              f"PID-5|{patient.birth_name or ''}^{patient.first_name or ''}^^^^^L" if patient.birth_name else None,
              f"PID-7|{patient.birth_date.replace('-', '')}" if patient.birth_date else None,
              f"PID-8|{patient.sex}" if patient.sex else None),
        _name(header.title),
        *(_author(ids, xds.DE_AUTHOR, entry, author) for author in header.authors),
        _classify(ids, xds.DE_CONFIDENTIALITY, entry, header.confidentiality),
        _classify(ids, xds.DE_FORMAT_CODE, entry, Code(header.format_code, "1.2.250.1.213.1.1.4.2.282")),
        _classify(ids, xds.DE_FACILITY_TYPE, entry, header.healthcare_facility),
        _classify(ids, xds.DE_PRACTICE_SETTING, entry, header.practice_setting),
        _classify(ids, xds.DE_TYPE_CODE, entry, header.code),
        _identifier(ids, xds.DE_PATIENT_ID, entry, cx, "XDSDocumentEntry.patientId") if cx else "",
        _identifier(ids, xds.DE_UNIQUE_ID, entry, header.unique_id, "XDSDocumentEntry.uniqueId"),
    ]
    extrinsic = _element("ExtrinsicObject", {"id": entry, "mimeType": "text/xml", "objectType": xds.DOCUMENT_ENTRY},
                         *parts)
    association = _element("Association", {"id": ids("as"), "associationType": xds.HAS_MEMBER,
                                           "sourceObject": "SubmissionSet01", "targetObject": entry},
                           _slot("SubmissionSetStatus", "Original"))
    return extrinsic + association


def metadata_xml(written: Sequence[WrittenDocument], *, source_id: str, submission_id: str,
                 submission_time: datetime, content_type: Code | None = None) -> bytes:
    """The ebRIM ``SubmitObjectsRequest`` describing ``written`` (one submission set, one entry per CDA)."""
    ids = _Ids()
    first = written[0].header
    patient_cx = xds.cx(first.patient.matricule, first.patient.oid) \
        if first.patient.matricule and first.patient.oid else None
    package = _element("RegistryPackage", {"id": "SubmissionSet01"},
                       _slot("submissionTime", submission_time.astimezone(UTC).strftime("%Y%m%d%H%M%S")),
                       _name("Documents CDA"),
                       _author(ids, xds.SS_AUTHOR, "SubmissionSet01", first.authors[0]) if first.authors else "",
                       _classify(ids, xds.SS_CONTENT_TYPE, "SubmissionSet01", content_type),
                       _identifier(ids, xds.SS_PATIENT_ID, "SubmissionSet01", patient_cx,
                                   "XDSSubmissionSet.patientId") if patient_cx else "",
                       _identifier(ids, xds.SS_SOURCE_ID, "SubmissionSet01", source_id, "XDSSubmissionSet.sourceId"),
                       _identifier(ids, xds.SS_UNIQUE_ID, "SubmissionSet01", submission_id,
                                   "XDSSubmissionSet.uniqueId"))
    marker = _element("Classification", {"id": ids("cl"), "classifiedObject": "SubmissionSet01",
                                         "classificationNode": xds.SUBMISSION_SET})
    entries = [_entry(ids, index, document) for index, document in enumerate(written, start=1)]
    objects = _element("RegistryObjectList", None, package, marker, *entries)
    return (f"<?xml version='1.0' encoding='UTF-8'?>\n"
            f'<lcm:SubmitObjectsRequest xmlns:lcm="{xds.LCM}" xmlns:rim="{xds.RIM}">{objects}'
            f"</lcm:SubmitObjectsRequest>\n").encode()


def _readme(source: str) -> bytes:
    return (f"IHE XDM package (IHE ITI-32 Cross-Enterprise Document Media Interchange)\r\n"
            f"Written by: {source}\r\n"
            f"Contents: IHE_XDM/{SUBSET}/METADATA.XML (ebRIM metadata) and the CDA R2 documents it lists.\r\n"
            f"INDEX.HTM lists the documents for a person with a web browser.\r\n").encode()


def _index(written: Sequence[WrittenDocument]) -> bytes:
    rows = "".join(
        f'<li><a href="{html.escape(d.path)}">{html.escape(d.header.title or d.path)}</a> '
        f"({html.escape(d.header.code.display_name or d.header.code.code if d.header.code else 'CDA')})</li>"
        for d in written)
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>IHE XDM</title></head>'
            f"<body><h1>Documents</h1><ul>{rows}</ul>"
            f'<p><a href="README.TXT">README.TXT</a></p></body></html>').encode()


def build_xdm(documents: Sequence[bytes], *, source_id: str | None = None, source_name: str = "mss-gateway",
              content_type: Code | None = None, now: datetime | None = None,
              headers: Sequence[CdaHeader] | None = None,
              store_documents: bool = False) -> tuple[bytes, list[WrittenDocument]]:
    """An XDM zip for ``documents`` (CDA R2 bytes, all for one patient), and what was written for each.

    ``headers``: the documents' headers when the caller has already read them (each CDA is then read once).
    ``store_documents``: every entry is stored (ZIP method 0) rather than deflated, which ITI-32 allows (a zip
    of stored or deflated entries): a CDA wrapping a base64 PDF barely compresses, and deflating it is most of
    the package's cost on a path that builds one per message (HL7 acceptance); the three small entries are
    stored too, as a deflate stream's set-up (~0.1 ms each) costs more than their few KiB save in a mail.

    Raises :class:`~gateway.documents.errors.CdaRefused` when a document is not a readable CDA, and ValueError
    when the documents are for different patients (one submission set has one patientId).
    """
    if not documents:
        raise ValueError("An XDM package needs at least one document.")
    written = []
    if headers is not None and len(headers) != len(documents):
        raise ValueError("One header per document is expected.")
    for index, data in enumerate(documents, start=1):
        header = headers[index - 1] if headers is not None else read_header(data, validate=False)
        written.append(WrittenDocument(header, f"IHE_XDM/{SUBSET}/DOC{index:04d}.XML",
                                       hashlib.sha1(data, usedforsecurity=False).hexdigest(), len(data)))
    patients = {(w.header.patient.matricule, w.header.patient.oid) for w in written}
    if len(patients) > 1:
        raise ValueError("The documents are for different patients; write one XDM package per patient.")
    moment = now or datetime.now(UTC)
    metadata = metadata_xml(written, source_id=source_id or new_oid(), submission_id=new_oid(),
                            submission_time=moment, content_type=content_type)
    buffer = io.BytesIO()
    stamp = moment.astimezone(UTC).timetuple()[:6]
    method = zipfile.ZIP_STORED if store_documents else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        def put(name: str, data: bytes) -> None:
            archive.writestr(zipfile.ZipInfo(name, date_time=stamp), data, compress_type=method)
        put("README.TXT", _readme(source_name))
        put("INDEX.HTM", _index(written))
        put(f"IHE_XDM/{SUBSET}/METADATA.XML", metadata)
        for document, data in zip(written, documents, strict=True):
            put(document.path, data)
    return buffer.getvalue(), written


#: The subject of a message carrying a CDA in XDM (ANS client specification, "objet du message").
SUBJECT_PREFIX = "XDM/1.0/DDM+"


def xdm_subject(headers: Sequence[CdaHeader]) -> str:
    """``XDM/1.0/DDM+<label> <NAME> <first name> <birth date>`` for the documents of one patient: the first
    document's title (else its type's label), the patient's birth name in capitals, first name and birth date
    (YYYYMMDD), as the ANS client specification names a message carrying a CDA. Each trait is one line of text:
    nothing from a document can add a header."""
    if not headers:
        raise ValueError("A subject names at least one document.")
    first = headers[0]
    patient = first.patient
    label = first.title or (first.code.display_name if first.code else None) or "Document"
    parts = [label, (patient.birth_name or "").upper(), patient.first_name or "",
             (patient.birth_date or "").replace("-", "")]
    return SUBJECT_PREFIX + " ".join(" ".join(p.split()) for p in parts if p and p.strip())


def mss_headers(headers: Sequence[CdaHeader], ins_qualified: bool) -> dict[str, str]:
    """``X-MSS-CODECDA`` (each CDA's code, comma separated) and ``X-MSS-INS`` (``O``/``N``), ANS client spec.

    ``ins_qualified`` is the sender's knowledge that the patient's identity is ``qualifiée`` (R7): the INS
    is only announced when it is, and when every document actually carries it.
    """
    codes = [h.code.code for h in headers if h.code is not None]
    carries_ins = bool(headers) and all(h.patient.matricule for h in headers)
    return {"X-MSS-CODECDA": ",".join(codes), "X-MSS-INS": "O" if ins_qualified and carries_ins else "N"}
