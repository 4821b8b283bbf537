"""XDS.b metadata (ebRIM 3.0) for ITI-41, built from a CDA header, and the level-1 CDA wrapper for raw files.

The request is one ProvideAndRegisterDocumentSetRequest: a SubmitObjectsRequest with one submission set, its
document entries, HasMember associations, and an RPLC association when a document replaces an earlier version
(R15); then one ``Document`` element per entry whose content travels as an MTOM part (see soap.py).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from lxml import etree

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.rules import DEFAULT_CONTENT_TYPE, DepositPlan, DepositPolicy, Professional, Structure
from gateway.documents.cda import CdaHeader, Code, Person
from gateway.samples import samples_dir

#: UUIDs derived from a document's uniqueId: re-sending the same document yields the same entryUUID, and a
#: replacement can name its predecessor's entryUUID without a query.
ENTRY_NAMESPACE = uuid.UUID("6f1c1c9e-4d0b-4a8e-9a55-0b8d3c2f7e11")

#: (class code, display) by type code: the document class the DMP files a type under.
CLASS_CODES: dict[str, tuple[str, str]] = {
    c.TYPE_LAB_REPORT: ("10", "Compte rendu"),
    c.TYPE_IMAGING_REPORT: ("10", "Compte rendu"),
    c.TYPE_CONSULTATION_REPORT: ("10", "Compte rendu"),
    c.TYPE_PRESCRIPTION: ("21", "Prescription"),
    c.TYPE_SUMMARY: ("11", "Synthèse"),
}


def entry_uuid(unique_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(ENTRY_NAMESPACE, unique_id)}"


def xds_time(moment: datetime) -> str:
    """XDS DTM in UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def patient_cx(matricule: str, oid: str) -> str:
    """The patient id as XDS carries it: the INS matricule under its OID (R8)."""
    return f"{matricule}^^^&{oid}&ISO^NH"


def format_code(header: CdaHeader) -> Code:
    """formatCode from the CDA: wrapped PDF or text (XDS-SD), lab (XD-LAB), VSM, or the generic CI-SIS one."""
    if header.body_media_type == "application/pdf":
        return Code(c.FORMAT_PDF_WRAPPED, c.OID_FORMAT_CODE, "Document à corps non structuré en Pdf/A-1")
    if header.body_media_type is not None:
        return Code(c.FORMAT_TEXT_WRAPPED, c.OID_FORMAT_CODE, "Document à corps non structuré")
    if header.type_code == c.TYPE_SUMMARY:
        return Code(c.FORMAT_VSM, c.OID_FORMAT_CODE, "Volet de synthèse médicale")
    if c.TEMPLATE_XD_LAB in header.template_ids:
        return Code(c.FORMAT_LAB, c.OID_FORMAT_CODE, "CR d'examens biologiques")
    return Code(c.FORMAT_CISIS_GENERIC, c.OID_FORMAT_CODE, "Document CDA du CI-SIS")


@dataclass(frozen=True)
class DocumentEntry:
    """Everything an XDSDocumentEntry carries (domain.md section 5)."""

    unique_id: str
    content: bytes
    matricule: str
    patient_oid: str
    title: str
    type_code: Code
    class_code: Code
    format_code: Code
    creation_time: datetime
    service_start: datetime
    author: Professional
    structure: Structure
    practice_setting: Code
    facility_type: Code
    service_stop: datetime | None = None
    legal_authenticator: str = ""
    language: str = "fr-FR"
    confidentiality: str = "N"
    visibility: frozenset[str] = frozenset()
    mime_type: str = "text/xml"
    replaces: str | None = None
    source_patient_id: str = ""
    #: HL7 v2 PID fields of the patient's traits (sourcePatientInfo: PID-5 name, PID-7 birth date, PID-8 sex,
    #: PID-11 birth place), as the ANS ITI-41 sample carries them.
    source_patient_info: tuple[str, ...] = ()
    #: The submission time repeated on the entry (slot submissionTime), as the DMP reads it on each document.
    submission_time: datetime | None = None

    @property
    def entry_uuid(self) -> str:
        return entry_uuid(self.unique_id)

    @property
    def hash(self) -> str:
        return hashlib.sha1(self.content, usedforsecurity=False).hexdigest()

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class SubmissionSet:
    unique_id: str
    source_id: str
    author: Professional
    structure: Structure
    submission_time: datetime
    title: str = ""
    content_type: Code = DEFAULT_CONTENT_TYPE


def entry_from_cda(content: bytes, header: CdaHeader, plan: DepositPlan, policy: DepositPolicy) -> DocumentEntry:
    """The document entry for a CDA that passed the rules (``plan.allowed``)."""
    matricule, oid = header.patient.matricule, header.patient.oid
    created, started = header.created_at, header.service_start_at
    assert matricule and oid and plan.author is not None and header.code is not None  # the rules allowed it
    assert created is not None and started is not None
    code = header.code
    klass = CLASS_CODES.get(code.code, ("10", "Compte rendu"))
    system = code.system or (c.OID_CISIS_TYPE if code.code == c.TYPE_SUMMARY else c.OID_LOINC)
    return DocumentEntry(
        unique_id=header.unique_id, content=content, matricule=matricule,
        patient_oid=oid, title=plan.title,
        type_code=Code(code.code, system, code.display or plan.title),
        class_code=Code(klass[0], c.OID_CLASS_CODE, klass[1]), format_code=format_code(header),
        creation_time=created, service_start=started, service_stop=header.service_stop_at,
        author=plan.author, structure=policy.structure,
        practice_setting=header.practice_setting or policy.structure.practice_setting,
        facility_type=header.healthcare_facility or policy.structure.facility_type,
        legal_authenticator=_xcn(header.legal_authenticator), language=header.language or "fr-FR",
        confidentiality=header.confidentiality.code if header.confidentiality else "N",
        visibility=plan.visibility, replaces=str(header.replaces) if header.replaces else None,
        source_patient_id=patient_cx(matricule, oid), source_patient_info=source_patient_info(header),
    )


def _pid(value: str | None) -> str:
    """A trait as an HL7 v2 component: separators cannot be smuggled in from the document."""
    return "".join(ch for ch in (value or "") if ch not in "^|&~\\\r\n")


def source_patient_info(header: CdaHeader) -> tuple[str, ...]:
    """sourcePatientInfo from the CDA's patient traits (R7): birth name and first name (PID-5), birth date
    (PID-7), sex (PID-8) and the INSEE code of the birth place (PID-11), each only when the document gives it."""
    p = header.patient
    info = []
    if p.birth_name or p.first_name or p.first_names:
        info.append(f"PID-5|{_pid(p.birth_name)}^{_pid(p.first_name or p.first_names)}^^^^^L")
    if p.birth_date:
        info.append(f"PID-7|{_pid(p.birth_date.replace('-', ''))}")
    if p.sex:
        info.append(f"PID-8|{_pid(p.sex)}")
    if p.birth_place:
        info.append(f"PID-11|^^^^^^BDL^^{_pid(p.birth_place)}")
    return tuple(info)


def _xcn(person: Person | None) -> str:
    """A CDA professional as an XDS XCN (legalAuthenticator); empty when the header names none with an id."""
    if person is None or person.id is None or not person.id.extension:
        return ""
    return (f"{person.id.extension}^{person.family or ''}^{person.given or ''}^^^^^^&{person.id.root}&ISO"
            "^D^^^IDNPS")


# --- ebRIM building -------------------------------------------------------------------------------------------

def _rim(tag: str) -> str:
    return f"{{{c.NS_RIM}}}{tag}"


def _slot(parent: etree._Element, name: str, values: Iterable[str]) -> None:
    slot = etree.SubElement(parent, _rim("Slot"), name=name)
    value_list = etree.SubElement(slot, _rim("ValueList"))
    for value in values:
        etree.SubElement(value_list, _rim("Value")).text = value


def _name(parent: etree._Element, tag: str, text: str) -> None:
    element = etree.SubElement(parent, _rim(tag))
    etree.SubElement(element, _rim("LocalizedString"), charset="UTF-8", value=text,
                     attrib={f"{{{c.NS_XML}}}lang": "fr-FR"})


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def next(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n:03d}"


def _classification(parent: etree._Element, ids: _Ids, scheme: str, obj: str, code: Code) -> None:
    cl = etree.SubElement(parent, _rim("Classification"), classificationScheme=scheme, classifiedObject=obj,
                          id=ids.next("cl"), nodeRepresentation=code.code)
    _slot(cl, "codingScheme", [code.system])
    _name(cl, "Name", code.display or code.code)


def _author(parent: etree._Element, ids: _Ids, scheme: str, obj: str, author: Professional,
            structure: Structure) -> None:
    cl = etree.SubElement(parent, _rim("Classification"), classificationScheme=scheme, classifiedObject=obj,
                          id=ids.next("cl"), nodeRepresentation="")
    _slot(cl, "authorPerson", [author.xcn()])
    _slot(cl, "authorInstitution", [(author.institution or structure).xon()])  # from the directory (authors.py)
    _slot(cl, "authorRole", [f"{author.profession.code}^{author.profession.display}^{author.profession.system}"])
    _slot(cl, "authorSpecialty", [f"{author.specialty.code}^{author.specialty.display}^{author.specialty.system}"])


def _external_id(parent: etree._Element, ids: _Ids, scheme: str, obj: str, value: str, name: str) -> None:
    ei = etree.SubElement(parent, _rim("ExternalIdentifier"), id=ids.next("ei"), identificationScheme=scheme,
                          registryObject=obj, value=value)
    _name(ei, "Name", name)


def document_cid(entry: DocumentEntry) -> str:
    """The MTOM Content-ID of an entry's content (without angle brackets)."""
    return f"{entry.entry_uuid.removeprefix('urn:uuid:')}@gateway"


def build_request(submission: SubmissionSet, entries: Sequence[DocumentEntry], *,
                  inline: bool = False) -> etree._Element:
    """The ProvideAndRegisterDocumentSetRequest element.

    With ``inline`` the documents are base64 text (what the XDS.b schema validates); otherwise each is an
    ``xop:Include`` pointing at its MTOM part (what goes on the wire).
    """
    if not entries or len(entries) > c.MAX_DOCUMENTS_PER_SUBMISSION:
        raise ValueError("A submission carries between 1 and 10 documents.")
    ids = _Ids()
    nsmap = {None: c.NS_RIM, "xdsb": c.NS_XDSB, "lcm": c.NS_LCM, "rs": c.NS_RS}
    request = etree.Element(f"{{{c.NS_XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap=nsmap)
    sor = etree.SubElement(request, f"{{{c.NS_LCM}}}SubmitObjectsRequest")
    objects = etree.SubElement(sor, _rim("RegistryObjectList"))
    patient = patient_cx(entries[0].matricule, entries[0].patient_oid)
    for entry in entries:
        eo = etree.SubElement(objects, _rim("ExtrinsicObject"), id=entry.entry_uuid, mimeType=entry.mime_type,
                              objectType=c.DE_OBJECT_TYPE)
        _slot(eo, "creationTime", [xds_time(entry.creation_time)])
        _slot(eo, "submissionTime", [xds_time(entry.submission_time or submission.submission_time)])
        _slot(eo, "hash", [entry.hash])
        _slot(eo, "languageCode", [entry.language])
        if entry.legal_authenticator:
            _slot(eo, "legalAuthenticator", [entry.legal_authenticator])
        _slot(eo, "serviceStartTime", [xds_time(entry.service_start)])
        if entry.service_stop is not None:
            _slot(eo, "serviceStopTime", [xds_time(entry.service_stop)])
        _slot(eo, "size", [str(entry.size)])
        _slot(eo, "sourcePatientId", [entry.source_patient_id or patient])
        if entry.source_patient_info:
            _slot(eo, "sourcePatientInfo", entry.source_patient_info)
        _name(eo, "Name", entry.title)
        _author(eo, ids, c.DE_AUTHOR, entry.entry_uuid, entry.author, entry.structure)
        _classification(eo, ids, c.DE_CLASS_CODE, entry.entry_uuid, entry.class_code)
        _classification(eo, ids, c.DE_CONFIDENTIALITY, entry.entry_uuid,
                        Code(entry.confidentiality, c.OID_CONFIDENTIALITY, "Normal"))
        for code in sorted(entry.visibility):  # R16
            _classification(eo, ids, c.DE_CONFIDENTIALITY, entry.entry_uuid,
                            Code(code, c.OID_VISIBILITY, c.VISIBILITY_CODES[code]))
        _classification(eo, ids, c.DE_FORMAT_CODE, entry.entry_uuid, entry.format_code)
        _classification(eo, ids, c.DE_FACILITY_TYPE, entry.entry_uuid, entry.facility_type)
        _classification(eo, ids, c.DE_PRACTICE_SETTING, entry.entry_uuid, entry.practice_setting)
        _classification(eo, ids, c.DE_TYPE_CODE, entry.entry_uuid, entry.type_code)
        _external_id(eo, ids, c.DE_PATIENT_ID, entry.entry_uuid, patient, "XDSDocumentEntry.patientId")
        _external_id(eo, ids, c.DE_UNIQUE_ID, entry.entry_uuid, entry.unique_id, "XDSDocumentEntry.uniqueId")
    ss_id = "SubmissionSet01"
    package = etree.SubElement(objects, _rim("RegistryPackage"), id=ss_id)
    _slot(package, "submissionTime", [xds_time(submission.submission_time)])
    _name(package, "Name", submission.title or entries[0].title)
    _author(package, ids, c.SS_AUTHOR, ss_id, submission.author, submission.structure)
    _classification(package, ids, c.SS_CONTENT_TYPE, ss_id, submission.content_type)
    # The set's own classification inside the package, where the ANS ITI-41 sample carries it.
    etree.SubElement(package, _rim("Classification"), id=ids.next("cl"), classifiedObject=ss_id,
                     classificationNode=c.SS_CLASSIFICATION_NODE)
    _external_id(package, ids, c.SS_PATIENT_ID, ss_id, patient, "XDSSubmissionSet.patientId")
    _external_id(package, ids, c.SS_SOURCE_ID, ss_id, submission.source_id, "XDSSubmissionSet.sourceId")
    _external_id(package, ids, c.SS_UNIQUE_ID, ss_id, submission.unique_id, "XDSSubmissionSet.uniqueId")
    for entry in entries:
        assoc = etree.SubElement(objects, _rim("Association"), id=ids.next("as"),
                                 associationType=c.ASSOC_HAS_MEMBER, sourceObject=ss_id,
                                 targetObject=entry.entry_uuid)
        _slot(assoc, "SubmissionSetStatus", ["Original"])
        if entry.replaces:  # R15: a corrected document replaces the old one as a new version
            etree.SubElement(objects, _rim("Association"), id=ids.next("as"), associationType=c.ASSOC_RPLC,
                             sourceObject=entry.entry_uuid, targetObject=entry_uuid(entry.replaces))
    for entry in entries:
        doc = etree.SubElement(request, f"{{{c.NS_XDSB}}}Document", id=entry.entry_uuid)
        if inline:
            doc.text = base64.b64encode(entry.content).decode("ascii")
        else:
            etree.SubElement(doc, f"{{{c.NS_XOP}}}Include", nsmap={"xop": c.NS_XOP},
                             href=f"cid:{document_cid(entry)}")
    return request


# --- Schema validation ------------------------------------------------------------------------------------------

def default_schema_dir() -> Path | None:
    """Where the XDS.b schemas are: GATEWAY_XDS_SCHEMA_DIR, else the shared samples folder when present."""
    import os

    configured = os.environ.get("GATEWAY_XDS_SCHEMA_DIR")
    candidates = [Path(configured)] if configured else []
    candidates.append(samples_dir() / "xds-schema")
    return next((p for p in candidates if (p / "IHE" / "XDS.b_DocumentRepository.xsd").is_file()), None)


@lru_cache(maxsize=4)
def xds_schema(folder: Path) -> etree.XMLSchema:
    """The XDS.b repository schema (imports ebRIM, LCM, RS, query), compiled offline once."""
    doc = etree.parse(str(folder / "IHE" / "XDS.b_DocumentRepository.xsd"),
                      etree.XMLParser(no_network=True, resolve_entities=False))
    return etree.XMLSchema(doc)


def validate(element: etree._Element, folder: Path) -> list[str]:
    """Schema errors of a request whose documents are inline (empty list when valid)."""
    schema = xds_schema(folder)
    if schema.validate(element):
        return []
    return [f"line {e.line}: {e.message}" for e in list(schema.error_log)[:10]]


# --- Level-1 CDA wrapper (XDS-SD) -------------------------------------------------------------------------------

@dataclass(frozen=True)
class WrappedPatient:
    matricule: str
    oid: str
    birth_name: str
    first_names: str
    first_name: str
    birth_date: str  # ISO YYYY-MM-DD
    sex: str
    birth_place: str


def _h(tag: str) -> str:
    return f"{{{c.NS_HL7}}}{tag}"


def wrap_document(content: bytes, media_type: str, *, unique_id: str, title: str, type_code: Code,
                  patient: WrappedPatient, author: Professional, structure: Structure, created: datetime,
                  service_start: datetime | None = None) -> bytes:
    """A CDA R2 level-1 document (nonXMLBody, base64) wrapping a PDF or another accepted raw format.

    ``unique_id`` is an OID (the document's id root); the same id is the XDS uniqueId.
    """
    if media_type not in c.ALLOWED_MEDIA_TYPES:
        raise ValueError(f"{media_type} cannot be deposited (R15).")
    ts = created.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    start = (service_start or created).astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")
    e = etree.SubElement
    doc = etree.Element(_h("ClinicalDocument"), nsmap={None: c.NS_HL7, "xsi": c.NS_XSI})
    e(doc, _h("realmCode"), code="FR")
    e(doc, _h("typeId"), root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    e(doc, _h("templateId"), root="2.16.840.1.113883.2.8.2.1")
    e(doc, _h("templateId"), root="1.2.250.1.213.1.1.1.1")
    e(doc, _h("templateId"), root="1.3.6.1.4.1.19376.1.2.20")  # XDS-SD
    e(doc, _h("id"), root=unique_id)
    e(doc, _h("code"), code=type_code.code, codeSystem=type_code.system or c.OID_LOINC,
      displayName=type_code.display or title)
    e(doc, _h("title")).text = title
    e(doc, _h("effectiveTime"), value=ts)
    e(doc, _h("confidentialityCode"), code="N", codeSystem=c.OID_CONFIDENTIALITY)
    e(doc, _h("languageCode"), code="fr-FR")
    e(doc, _h("setId"), root=unique_id + ".0")
    e(doc, _h("versionNumber"), value="1")
    role = e(e(doc, _h("recordTarget")), _h("patientRole"))
    e(role, _h("id"), root=patient.oid, extension=patient.matricule)
    pat = e(role, _h("patient"))
    name = e(pat, _h("name"))
    e(name, _h("family"), qualifier="BR").text = patient.birth_name
    e(name, _h("given")).text = patient.first_names
    e(name, _h("given"), qualifier="BR").text = patient.first_name
    e(pat, _h("administrativeGenderCode"), code=patient.sex, codeSystem="2.16.840.1.113883.5.1")
    e(pat, _h("birthTime"), value=patient.birth_date.replace("-", ""))
    if patient.birth_place:
        e(e(e(e(pat, _h("birthplace")), _h("place")), _h("addr")), _h("county")).text = patient.birth_place
    auth = e(doc, _h("author"))
    e(auth, _h("time"), value=ts)
    assigned = e(auth, _h("assignedAuthor"))
    e(assigned, _h("id"), root=c.OID_RPPS, extension=author.national_id)
    person_name = e(e(assigned, _h("assignedPerson")), _h("name"))
    e(person_name, _h("given")).text = author.given
    e(person_name, _h("family")).text = author.family
    org = e(assigned, _h("representedOrganization"))
    e(org, _h("id"), root=c.OID_STRUCTURE, extension=structure.identifier)
    e(org, _h("name")).text = structure.name
    custodian = e(e(e(doc, _h("custodian")), _h("assignedCustodian")), _h("representedCustodianOrganization"))
    e(custodian, _h("id"), root=c.OID_STRUCTURE, extension=structure.identifier)
    e(custodian, _h("name")).text = structure.name
    event = e(e(doc, _h("documentationOf")), _h("serviceEvent"))
    times = e(event, _h("effectiveTime"))
    e(times, _h("low"), value=start)
    performer = e(event, _h("performer"), typeCode="PRF")
    entity = e(performer, _h("assignedEntity"))
    e(entity, _h("id"), root=c.OID_RPPS, extension=author.national_id)
    rep = e(entity, _h("representedOrganization"))
    e(rep, _h("name")).text = structure.name
    ps = structure.practice_setting
    e(rep, _h("standardIndustryClassCode"), code=ps.code, codeSystem=ps.system, displayName=ps.display)
    encounter = e(e(doc, _h("componentOf")), _h("encompassingEncounter"))
    e(e(encounter, _h("effectiveTime")), _h("low"), value=start)
    facility = e(e(encounter, _h("location")), _h("healthCareFacility"))
    ft = structure.facility_type
    e(facility, _h("code"), code=ft.code, codeSystem=ft.system, displayName=ft.display)
    text = e(e(e(doc, _h("component")), _h("nonXMLBody")), _h("text"), mediaType=media_type,
             representation="B64")
    text.text = base64.b64encode(content).decode("ascii")
    return etree.tostring(doc, xml_declaration=True, encoding="UTF-8")
