"""The DMP's view of a CDA header: the fields XDS metadata and the deposit rules need, typed as they use them.

There is one CDA reader in the gateway, :mod:`gateway.documents.cda` (bounded; no entities, DTD or network);
this module only converts what it reads (dates parsed, ids as XDS writes them) and turns its refusals into
:class:`CdaError`. :func:`parse_xml` is the same safe parser for the SOAP and SAML documents of the protocol.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from lxml import etree

from gateway.dmp_bridge.constants import MAX_CDA_SIZE
from gateway.documents import cda as documents_cda
from gateway.documents.errors import DocumentRefused
from gateway.documents.limits import CdaLimits

_LIMITS = CdaLimits(max_bytes=MAX_CDA_SIZE)


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


def parse_xml(data: bytes, limit: int) -> etree._Element:
    """A SOAP, SAML or CDA document parsed by the gateway's one safe XML parser; :class:`CdaError` if refused."""
    try:
        return documents_cda.parse_xml(data, limit, "XML document")
    except DocumentRefused as refused:
        raise CdaError(str(refused)) from None


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


def _code(code: documents_cda.Code | None) -> Code | None:
    return Code(code.code, code.code_system or "", code.display_name or "") if code is not None else None


def _person(person: documents_cda.Person | None) -> Person | None:
    if person is None or person.id is None:
        return None
    organisation = person.organisation
    return Person(
        id_root=person.id.root, id_extension=person.id.extension or "", family=person.family or "",
        given=person.given or "", role=_code(person.role),
        organisation_id=(organisation.id.extension or "") if organisation and organisation.id else "",
        organisation_name=(organisation.name or "") if organisation else "")


def _patient(patient: documents_cda.Patient) -> Patient | None:
    if not patient.matricule:
        return None
    return Patient(matricule=patient.matricule, oid=patient.oid or "", birth_name=patient.birth_name or "",
                   given=patient.first_name or "", birth_date=(patient.birth_date or "").replace("-", ""),
                   sex=patient.sex or "", birth_place=patient.birth_place or "")


def read_header(data: bytes) -> CdaHeader:
    """Read the header of a CDA R2 document (bounded, safe); raise :class:`CdaError` when it is not one."""
    try:
        header = documents_cda.read_header(data, validate=False, limits=_LIMITS)
    except DocumentRefused as refused:
        raise CdaError(str(refused)) from None
    type_code = _code(header.code)
    if type_code is None:
        raise CdaError("The CDA header has no document type code.")
    replaced = header.replaces
    return CdaHeader(
        unique_id=header.unique_id,
        type_code=type_code,
        title=header.title or "",
        effective_time=parse_ts(header.effective_time),
        confidentiality=header.confidentiality.code if header.confidentiality else "N",
        language=header.language or "fr-FR",
        patient=_patient(header.patient),
        authors=tuple(a for a in (_person(p) for p in header.authors) if a is not None),
        legal_authenticator=_person(header.legal_authenticator),
        service_start=parse_ts(header.service_start),
        service_stop=parse_ts(header.service_stop),
        practice_setting=_code(header.practice_setting),
        facility_type=_code(header.healthcare_facility),
        template_ids=frozenset(header.template_ids),
        body_media_type=header.body_media_type,
        replaces=str(replaced) if replaced is not None else None,
        set_id=str(header.set_id) if header.set_id is not None else "",
        version=header.version or 1,
        local_patient_ids=tuple(str(i) for i in header.patient.local_ids),
    )
