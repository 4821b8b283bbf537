"""The few CDA header fields the DMP bridge needs, behind one function so that gateway.documents can replace it.

Bounded and safe: size limit before parsing, no entities, no DTD, no network, lxml's default depth limit.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from lxml import etree

from gateway.dmp_bridge.constants import INS_OIDS, MAX_CDA_SIZE, NS_HL7

_NS = {"h": NS_HL7}


class CdaError(ValueError):
    """The bytes are not a CDA document we can read; the message says which part is wrong."""


@dataclass(frozen=True)
class Code:
    code: str
    system: str = ""
    display: str = ""


@dataclass(frozen=True)
class Person:
    """A professional as a CDA header names it: national id (8 + RPPS), names, profession code."""

    id_root: str
    id_extension: str
    family: str = ""
    given: str = ""
    role: Code | None = None
    organisation_id: str = ""
    organisation_name: str = ""


@dataclass(frozen=True)
class Patient:
    matricule: str
    oid: str
    birth_name: str = ""
    given: str = ""
    birth_date: str = ""
    sex: str = ""
    birth_place: str = ""


@dataclass(frozen=True)
class CdaHeader:
    unique_id: str
    type_code: Code
    title: str
    effective_time: datetime | None
    confidentiality: str
    language: str
    patient: Patient | None
    authors: tuple[Person, ...]
    legal_authenticator: Person | None
    service_start: datetime | None
    service_stop: datetime | None
    practice_setting: Code | None
    facility_type: Code | None
    template_ids: frozenset[str] = frozenset()
    #: ``application/pdf`` etc. for a level-1 CDA (nonXMLBody), None for a structured body.
    body_media_type: str | None = None
    #: The uniqueId of the document this one replaces (relatedDocument typeCode="RPLC").
    replaces: str | None = None
    set_id: str = ""
    version: int = 1
    local_patient_ids: tuple[str, ...] = field(default_factory=tuple)


def parser() -> etree.XMLParser:
    """The only way this package parses XML: no entities, no DTD, no network, bounded tree."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=False)


def parse_xml(data: bytes, limit: int) -> etree._Element:
    if len(data) > limit:
        raise CdaError(f"The XML is {len(data)} bytes; the limit is {limit}.")
    try:
        return etree.fromstring(data, parser())
    except etree.XMLSyntaxError as exc:
        raise CdaError(f"The XML is not well formed: {exc}.") from exc


def ii(element: etree._Element | None) -> str:
    """An HL7 instance identifier as XDS writes it: ``root`` or ``root^extension``."""
    if element is None:
        return ""
    root = element.get("root", "")
    ext = element.get("extension")
    return f"{root}^{ext}" if ext else root


def parse_ts(value: str | None) -> datetime | None:
    """An HL7 TS (``YYYYMMDD[HHMM[SS]][+ZZZZ]``) as an aware datetime; None when absent or unreadable."""
    if not value:
        return None
    tz = UTC
    text = value
    for sign in ("+", "-"):
        if sign in text[8:]:
            idx = text.index(sign, 8)
            offset = text[idx + 1:]
            if len(offset) == 4 and offset.isdigit():
                delta = timedelta(hours=int(offset[:2]), minutes=int(offset[2:]))
                tz = timezone(delta if sign == "+" else -delta)
            text = text[:idx]
            break
    text = text.split(".", 1)[0]
    if not text.isdigit() or len(text) < 8:
        return None
    text = (text + "000000")[:14]
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=tz)
    except ValueError:
        return None


def _code(element: etree._Element | None) -> Code | None:
    if element is None or not element.get("code"):
        return None
    return Code(element.get("code", ""), element.get("codeSystem", ""), element.get("displayName", ""))


def _text(element: etree._Element, path: str) -> str:
    found = element.find(path, _NS)
    return (found.text or "").strip() if found is not None else ""


def _person(entity: etree._Element | None) -> Person | None:
    if entity is None:
        return None
    pid = entity.find("h:id", _NS)
    if pid is None:
        return None
    person = entity.find("h:assignedPerson", _NS)
    org = entity.find("h:representedOrganization", _NS)
    return Person(
        id_root=pid.get("root", ""), id_extension=pid.get("extension", ""),
        family=_text(person, "h:name/h:family") if person is not None else "",
        given=_text(person, "h:name/h:given") if person is not None else "",
        role=_code(entity.find("h:code", _NS)),
        organisation_id=(org.find("h:id", _NS).get("extension", "") if org is not None
                         and org.find("h:id", _NS) is not None else ""),
        organisation_name=_text(org, "h:name") if org is not None else "",
    )


def read_header(data: bytes) -> CdaHeader:
    """Read the header of a CDA R2 document (bounded, safe); raise :class:`CdaError` when it is not one."""
    root = parse_xml(data, MAX_CDA_SIZE)
    if root.tag != f"{{{NS_HL7}}}ClinicalDocument":
        raise CdaError("The document is not a CDA R2 ClinicalDocument.")
    type_code = _code(root.find("h:code", _NS))
    if type_code is None:
        raise CdaError("The CDA header has no document type code.")
    patient = None
    local_ids: list[str] = []
    role = root.find("h:recordTarget/h:patientRole", _NS)
    if role is not None:
        for pid in role.findall("h:id", _NS):
            if pid.get("root") in INS_OIDS and pid.get("extension") and patient is None:
                p = role.find("h:patient", _NS)
                given_br = p.find("h:name/h:given[@qualifier='BR']", _NS) if p is not None else None
                given = p.find("h:name/h:given", _NS) if p is not None else None
                chosen = given_br if given_br is not None else given
                patient = Patient(
                    matricule=pid.get("extension", ""), oid=pid.get("root", ""),
                    birth_name=_text(p, "h:name/h:family[@qualifier='BR']") if p is not None else "",
                    given=(chosen.text or "").strip() if chosen is not None else "",
                    birth_date=(p.find("h:birthTime", _NS).get("value", "")
                                if p is not None and p.find("h:birthTime", _NS) is not None else ""),
                    sex=(p.find("h:administrativeGenderCode", _NS).get("code", "")
                         if p is not None and p.find("h:administrativeGenderCode", _NS) is not None else ""),
                    birth_place=_text(p, "h:birthplace/h:place/h:addr/h:county") if p is not None else "",
                )
            else:
                local_ids.append(ii(pid))
    authors = tuple(a for a in (_person(e) for e in root.findall("h:author/h:assignedAuthor", _NS)) if a)
    service = root.find("h:documentationOf/h:serviceEvent/h:effectiveTime", _NS)
    practice = None
    for candidate in root.iterfind(".//h:standardIndustryClassCode", _NS):
        if candidate.getparent() is not None:
            practice = _code(candidate)
            break
    facility = _code(root.find("h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code", _NS))
    body = root.find("h:component/h:nonXMLBody/h:text", _NS)
    replaced = root.find("h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id", _NS)
    version_el = root.find("h:versionNumber", _NS)
    try:
        version = int(version_el.get("value", "1")) if version_el is not None else 1
    except ValueError:
        version = 1
    confidentiality = root.find("h:confidentialityCode", _NS)
    language = root.find("h:languageCode", _NS)
    return CdaHeader(
        unique_id=ii(root.find("h:id", _NS)),
        type_code=type_code,
        title=_text(root, "h:title"),
        effective_time=parse_ts(root.find("h:effectiveTime", _NS).get("value")
                                if root.find("h:effectiveTime", _NS) is not None else None),
        confidentiality=confidentiality.get("code", "N") if confidentiality is not None else "N",
        language=language.get("code", "fr-FR") if language is not None else "fr-FR",
        patient=patient,
        authors=authors,
        legal_authenticator=_person(root.find("h:legalAuthenticator/h:assignedEntity", _NS)),
        service_start=parse_ts(service.find("h:low", _NS).get("value") if service is not None
                               and service.find("h:low", _NS) is not None else None),
        service_stop=parse_ts(service.find("h:high", _NS).get("value") if service is not None
                              and service.find("h:high", _NS) is not None else None),
        practice_setting=practice,
        facility_type=facility,
        template_ids=frozenset(t.get("root", "") for t in root.findall("h:templateId", _NS)),
        body_media_type=body.get("mediaType") if body is not None else None,
        replaces=ii(replaced) or None,
        set_id=ii(root.find("h:setId", _NS)),
        version=version,
        local_patient_ids=tuple(local_ids),
    )
