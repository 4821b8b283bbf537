"""CDA R2 header reader: what filing (R10), the patient record and the XDS metadata need, read safely.

The XML parser resolves no entity, loads no DTD, never touches the network and refuses huge trees; a
document with a DOCTYPE at all is refused (CDA has none, and a DTD is how XXE and "billion laughs" arrive).
Schema validation against the ANS extended CDA schema is recorded, not enforced: a schema error alone does
not stop filing when the header is readable (the receiving structure still wants the report).

The XML is parsed by :mod:`gateway.documents.safe_xml`, validated by :mod:`gateway.documents.cda_schema`;
the body and the auto-presentable wrapper are read by :mod:`gateway.documents.cda_body`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.codes.oids import (
    FORMAT_LAB,
    FORMAT_PDF_WRAPPED,
    FORMAT_VSM,
    INS_OIDS,
    OID_RPPS,
    OID_STRUCTURE,
    TEMPLATE_CR_BIO,
    TEMPLATE_VSM,
)
from gateway.documents.cda_body import NS, clinical_document, wrapped_content

# The DMP bridge and the HL7 listener read bodies through these names too.
from gateway.documents.cda_body import non_xml_body as non_xml_body
from gateway.documents.cda_body import unwrapped as unwrapped
from gateway.documents.cda_schema import validate_tree
from gateway.documents.errors import CdaRefused
from gateway.documents.limits import CDA, CdaLimits
from gateway.documents.safe_xml import _parser, parse_xml

#: National identifiers of health professionals (``8`` + RPPS) and of structures (FINESS/SIRET...).
OID_PS_NATIONAL_ID = OID_RPPS
OID_STRUCTURE_NATIONAL_ID = OID_STRUCTURE
#: Template ids that decide an XDS formatCode (domain.md section 5).
FORMAT_PDF = FORMAT_PDF_WRAPPED
FORMAT_GENERIC = "urn:ihe:iti:xds:2017:mimeTypeSufficient"


def hl7_time(value: str | None) -> datetime | None:
    """An HL7 TS (``YYYYMMDD[HHMM[SS]][.fff][+ZZZZ]``) as an aware datetime (UTC when no offset is given); None
    when absent or unreadable, so that a rule can say which mandatory date is missing rather than fail."""
    if not value or len(value) > 40:
        return None
    zone, text = UTC, value
    for sign in ("+", "-"):
        cut = text.find(sign, 8)
        if cut >= 0:
            offset = text[cut + 1:]
            if len(offset) == 4 and offset.isdigit():
                delta = timedelta(hours=int(offset[:2]), minutes=int(offset[2:]))
                zone = timezone(delta if sign == "+" else -delta)
            text = text[:cut]
            break
    text = text.split(".", 1)[0]
    if len(text) < 8 or not text.isdigit():
        return None
    try:
        return datetime.strptime((text + "000000")[:14], "%Y%m%d%H%M%S").replace(tzinfo=zone)
    except ValueError:
        return None


@dataclass(frozen=True)
class InstanceId:
    """An HL7 II: ``root`` OID (or UUID) with an optional ``extension``."""

    root: str
    extension: str | None = None

    def __str__(self) -> str:
        """The XDS form of a CDA id: ``root^extension``, or ``root`` alone."""
        return f"{self.root}^{self.extension}" if self.extension else self.root


@dataclass(frozen=True)
class Code:
    """A coded value (CE/CD): a CDA header's, or one of the XDS value sets the DMP bridge fills in."""

    code: str
    code_system: str | None = None
    display_name: str | None = None

    @property
    def system(self) -> str:
        """The code system, empty when the document gave none (XDS slots want a string)."""
        return self.code_system or ""

    @property
    def display(self) -> str:
        """The display name, empty when the document gave none."""
        return self.display_name or ""


@dataclass(frozen=True)
class Organisation:
    id: InstanceId | None
    name: str | None


@dataclass(frozen=True)
class Person:
    """A professional named in the header (author, legal authenticator)."""

    id: InstanceId | None
    family: str | None
    given: str | None
    role: Code | None = None
    organisation: Organisation | None = None
    time: str | None = None

    @property
    def national_id(self) -> str | None:
        """The national PS identifier (``8`` + RPPS) when the id is under the national OID."""
        if self.id is not None and self.id.root == OID_PS_NATIONAL_ID:
            return self.id.extension
        return None

    @property
    def rpps(self) -> str | None:
        nid = self.national_id
        return nid[1:] if nid and nid.startswith("8") and len(nid) == 12 else None

    @property
    def has_structure(self) -> bool:
        """Whether the header names the structure the professional practises in (R15: practice situation)."""
        return self.organisation is not None and bool(self.organisation.id or self.organisation.name)


@dataclass(frozen=True)
class Patient:
    """The ``recordTarget``: INS (matricule + OID), the five traits (R7) and local ids (IPP)."""

    ins: tuple[InstanceId, ...]
    local_ids: tuple[InstanceId, ...]
    birth_name: str | None
    first_names: str | None
    first_name: str | None
    birth_date: str | None  # YYYY-MM-DD
    sex: str | None
    birth_place: str | None

    @property
    def matricule(self) -> str | None:
        return self.ins[0].extension if self.ins else None

    @property
    def oid(self) -> str | None:
        return self.ins[0].root if self.ins else None


@dataclass(frozen=True)
class RelatedDocument:
    type_code: str  # RPLC, APND, XFRM
    parent_id: InstanceId | None
    parent_set_id: InstanceId | None = None
    parent_version: int | None = None


@dataclass(frozen=True)
class CdaHeader:
    """Everything read from a CDA header; ``schema_valid`` is None when no schema was available."""

    id: InstanceId
    set_id: InstanceId | None
    version: int | None
    code: Code | None
    title: str | None
    effective_time: str | None
    confidentiality: Code | None
    language: str | None
    template_ids: tuple[str, ...]
    patient: Patient
    patients: int
    authors: tuple[Person, ...]
    custodian: Organisation | None
    legal_authenticator: Person | None
    related: tuple[RelatedDocument, ...]
    service_start: str | None
    service_stop: str | None
    healthcare_facility: Code | None
    practice_setting: Code | None
    body: str  # "structured" | "nonXML" | "none"
    body_media_type: str | None
    schema_valid: bool | None = None
    schema_errors: tuple[str, ...] = field(default_factory=tuple)
    #: The ClinicalDocument came wrapped in an XSL stylesheet (auto-presentable CDA).
    auto_presentable: bool = False

    @property
    def unique_id(self) -> str:
        return str(self.id)

    @property
    def type_code(self) -> str:
        """The document's type code (LOINC or CI-SIS), empty when the header has none (R15 refuses it)."""
        return self.code.code if self.code is not None else ""

    @property
    def created_at(self) -> datetime | None:
        """The document date (``effectiveTime``), for XDS creationTime and R15's "not in the future"."""
        return hl7_time(self.effective_time)

    @property
    def service_start_at(self) -> datetime | None:
        """Start of the act (``serviceEvent/effectiveTime/low``), mandatory for a deposit (R15)."""
        return hl7_time(self.service_start)

    @property
    def service_stop_at(self) -> datetime | None:
        return hl7_time(self.service_stop)

    @property
    def replaces(self) -> InstanceId | None:
        """The id of the document this one replaces (RPLC, R15), if any."""
        for related in self.related:
            if related.type_code == "RPLC" and related.parent_id is not None:
                return related.parent_id
        return None

    @property
    def format_code(self) -> str:
        """The XDS formatCode this document calls for (domain.md section 5)."""
        if self.body == "nonXML":
            return FORMAT_PDF
        if TEMPLATE_CR_BIO in self.template_ids:
            return FORMAT_LAB
        if TEMPLATE_VSM in self.template_ids:
            return FORMAT_VSM
        return FORMAT_GENERIC

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for the record's metadata column."""
        return asdict(self)


def read_header(data: bytes, *, validate: bool = True, limits: CdaLimits = CDA,
                schema: Path | None = None) -> CdaHeader:
    """Read a CDA document's header; raises :class:`CdaRefused` (and nothing else) when it cannot be read."""
    header, outer, root = _parsed_header(data, limits)
    if not validate:
        return header
    if root is not outer:  # the schema describes a ClinicalDocument root: validate the wrapped one on its own
        root = etree.fromstring(etree.tostring(root), _parser())
    valid, errors = validate_tree(root, schema)
    return _replace(header, schema_valid=valid, schema_errors=errors)


def read_header_and_content(data: bytes, *, limits: CdaLimits = CDA) -> tuple[CdaHeader, bytes | None]:
    """:func:`read_header` (not validated) and :func:`non_xml_body` from one parse of the document: a reader
    that needs both (an HL7 message's CDA and the PDF it wraps) does not parse 100 KB of XML twice."""
    header, _, root = _parsed_header(data, limits)
    return header, wrapped_content(root)


def _parsed_header(data: bytes, limits: CdaLimits) -> tuple[CdaHeader, etree._Element, etree._Element]:
    """The header, the parsed document and its ClinicalDocument; :class:`CdaRefused` when it cannot be read."""
    outer = parse_xml(data, limits.max_bytes, "CDA document")
    root = clinical_document(outer)
    if root is None:
        raise CdaRefused("not-cda", "The XML document is not an HL7 CDA R2 ClinicalDocument.")
    try:
        header = _header(root)
        if root is not outer:
            header = _replace(header, auto_presentable=True)
    except CdaRefused:
        raise
    except Exception as error:  # a strange but well-formed document: refuse with a sentence, not a traceback
        raise CdaRefused("bad-header", f"The CDA header could not be read ({type(error).__name__}).") from None
    return header, outer, root


def _replace(header: CdaHeader, **changes: Any) -> CdaHeader:
    from dataclasses import replace

    return replace(header, **changes)


def _text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    text = " ".join("".join(element.itertext()).split())
    return text or None


def _attr(element: etree._Element | None, name: str) -> str | None:
    if element is None:
        return None
    value = element.get(name)
    return value.strip() if value and value.strip() else None


def _ii(element: etree._Element | None) -> InstanceId | None:
    root = _attr(element, "root")
    return InstanceId(root, _attr(element, "extension")) if root else None


def _code(element: etree._Element | None) -> Code | None:
    code = _attr(element, "code")
    if not code:
        return None
    return Code(code, _attr(element, "codeSystem"), _attr(element, "displayName"))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _organisation(element: etree._Element | None) -> Organisation | None:
    if element is None:
        return None
    return Organisation(_ii(element.find("h:id", NS)), _text(element.find("h:name", NS)))


def _person(entity: etree._Element | None, person_tag: str, time: str | None) -> Person | None:
    if entity is None:
        return None
    name = entity.find(f"{person_tag}/h:name", NS)
    return Person(
        id=_ii(entity.find("h:id", NS)),
        family=_text(name.find("h:family", NS)) if name is not None else None,
        given=_text(name.find("h:given", NS)) if name is not None else None,
        role=_code(entity.find("h:code", NS)),
        organisation=_organisation(entity.find("h:representedOrganization", NS)),
        time=time,
    )


def _birth_date(value: str | None) -> str | None:
    """HL7 TS ``YYYYMMDD[...]`` to ``YYYY-MM-DD``; None when not a full date."""
    if not value or len(value) < 8 or not value[:8].isdigit():
        return None
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}"


def _patient(role: etree._Element | None) -> Patient:
    if role is None:
        return Patient((), (), None, None, None, None, None, None)
    ins: list[InstanceId] = []
    local: list[InstanceId] = []
    for element in role.findall("h:id", NS):
        ii = _ii(element)
        if ii is None:
            continue
        (ins if ii.root in INS_OIDS else local).append(ii)
    patient = role.find("h:patient", NS)
    birth_name = first_names = first_name = None
    if patient is not None:
        names = patient.findall("h:name", NS)
        birth = next((n for n in names if n.find("h:family[@qualifier='BR']", NS) is not None),
                     names[0] if names else None)
        if birth is not None:
            birth_name = _text(birth.find("h:family[@qualifier='BR']", NS))
            plain = [_text(g) for g in birth.findall("h:given", NS) if not g.get("qualifier")]
            first_names = " ".join(g for g in plain if g) or None
            first_name = _text(birth.find("h:given[@qualifier='BR']", NS))
            if first_name is None and first_names:
                first_name = first_names.split()[0]
            if first_names is None and first_name:
                first_names = first_name
    return Patient(
        ins=tuple(ins), local_ids=tuple(local), birth_name=birth_name, first_names=first_names,
        first_name=first_name,
        birth_date=_birth_date(_attr(role.find("h:patient/h:birthTime", NS), "value")),
        sex=_attr(role.find("h:patient/h:administrativeGenderCode", NS), "code"),
        birth_place=_text(role.find("h:patient/h:birthplace/h:place/h:addr/h:county", NS)),
    )


def _header(root: etree._Element) -> CdaHeader:
    doc_id = _ii(root.find("h:id", NS))
    if doc_id is None:
        raise CdaRefused("no-id", "The CDA document has no id (ClinicalDocument/id/@root).")
    targets = root.findall("h:recordTarget", NS)
    authors = tuple(p for p in (
        _person(a.find("h:assignedAuthor", NS), "h:assignedPerson", _attr(a.find("h:time", NS), "value"))
        for a in root.findall("h:author", NS)) if p is not None)
    legal = root.find("h:legalAuthenticator", NS)
    related = tuple(
        RelatedDocument(type_code=r.get("typeCode", ""), parent_id=_ii(r.find("h:parentDocument/h:id", NS)),
                        parent_set_id=_ii(r.find("h:parentDocument/h:setId", NS)),
                        parent_version=_int(_attr(r.find("h:parentDocument/h:versionNumber", NS), "value")))
        for r in root.findall("h:relatedDocument", NS))
    event_time = root.find("h:documentationOf/h:serviceEvent/h:effectiveTime", NS)
    non_xml = root.find("h:component/h:nonXMLBody", NS)
    structured = root.find("h:component/h:structuredBody", NS)
    return CdaHeader(
        id=doc_id,
        set_id=_ii(root.find("h:setId", NS)),
        version=_int(_attr(root.find("h:versionNumber", NS), "value")),
        code=_code(root.find("h:code", NS)),
        title=_text(root.find("h:title", NS)),
        effective_time=_attr(root.find("h:effectiveTime", NS), "value"),
        confidentiality=_code(root.find("h:confidentialityCode", NS)),
        language=_attr(root.find("h:languageCode", NS), "code"),
        template_ids=tuple(t.get("root", "") for t in root.findall("h:templateId", NS)),
        patient=_patient(targets[0].find("h:patientRole", NS) if targets else None),
        patients=len(targets),
        authors=authors,
        custodian=_organisation(root.find("h:custodian/h:assignedCustodian/h:representedCustodianOrganization", NS)),
        legal_authenticator=_person(legal.find("h:assignedEntity", NS), "h:assignedPerson",
                                    _attr(legal.find("h:time", NS), "value")) if legal is not None else None,
        related=related,
        service_start=_attr(event_time.find("h:low", NS), "value") if event_time is not None else None,
        service_stop=_attr(event_time.find("h:high", NS), "value") if event_time is not None else None,
        healthcare_facility=_code(root.find(
            "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code", NS)),
        practice_setting=_code(root.find(
            "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization/"
            "h:standardIndustryClassCode", NS)),
        body="nonXML" if non_xml is not None else "structured" if structured is not None else "none",
        body_media_type=_attr(non_xml.find("h:text", NS), "mediaType") if non_xml is not None else None,
    )
