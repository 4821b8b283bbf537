"""The DMP's pre-check before a deposit (TD0.2 of the DMP integration guide, "test d'existence et vérification
des autorisations"): does this patient's DMP exist, is it open, may this professional write to it (R17)?

TD0.2 is an HL7 v3 "Patient Registry Get Demographics Query" (PRPA_IN201307UV02, answered by PRPA_IN201308UV02)
sent with the VIHF in WS-Security, like ITI-41. The DMP's own WSDL and extension schema are not public: the
interaction ids, the query parameter and the acknowledgement are the HL7 v3 ones; the DMP state is the patient's
``statusCode`` and the professional's authorisation is modelled as one ``dmp:autorisation`` element with the
guide's values (VALIDE, EXPIREE, INTERDITE, AUCUNE). Client (soap.py) and simulator read both through here.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.soap import RegistryError, SoapError

ACTION_TD02 = "urn:hl7-org:v3:PRPA_IN201307UV02"
ACTION_TD02_RESPONSE = "urn:hl7-org:v3:PRPA_IN201308UV02"
NS_DMP = "urn:dmp:td0.2"
OID_INTERACTION = "2.16.840.1.113883.1.6"
#: The DMP as the receiving device of the query.
OID_DMP_DEVICE = "1.2.250.1.213.4.1.4.2"

AUTH_VALID = "VALIDE"
AUTH_EXPIRED = "EXPIREE"
AUTH_FORBIDDEN = "INTERDITE"
AUTH_NONE = "AUCUNE"
AUTHORISATIONS = (AUTH_VALID, AUTH_EXPIRED, AUTH_FORBIDDEN, AUTH_NONE)
#: The patient's DMP as statusCode: open, closed (no more deposits).
STATUS_OPEN = "active"
STATUS_CLOSED = "terminated"


def _h(tag: str) -> str:
    return f"{{{c.NS_HL7}}}{tag}"


def _stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")


def _head(root: etree._Element, interaction: str, now: datetime | None) -> None:
    etree.SubElement(root, _h("id"), root=str(uuid.uuid4()))
    etree.SubElement(root, _h("creationTime"), value=_stamp(now))
    etree.SubElement(root, _h("interactionId"), root=OID_INTERACTION, extension=interaction)
    etree.SubElement(root, _h("processingCode"), code="P")
    etree.SubElement(root, _h("processingModeCode"), code="T")
    etree.SubElement(root, _h("acceptAckCode"), code="AL")


def _device(parent: etree._Element, tag: str, type_code: str, root: str, extension: str = "") -> None:
    device = etree.SubElement(etree.SubElement(parent, _h(tag), typeCode=type_code), _h("device"),
                              classCode="DEV", determinerCode="INSTANCE")
    attrs = {"root": root, **({"extension": extension} if extension else {})}
    etree.SubElement(device, _h("id"), attrs)


def query(matricule: str, oid: str, structure_id: str, now: datetime | None = None) -> etree._Element:
    """The TD0.2 request for one patient (INS matricule under its OID), from the structure."""
    root = etree.Element(_h("PRPA_IN201307UV02"), nsmap={"hl7": c.NS_HL7}, ITSVersion="XML_1.0")
    _head(root, "PRPA_IN201307UV02", now)
    _device(root, "receiver", "RCV", OID_DMP_DEVICE)
    _device(root, "sender", "SND", c.OID_STRUCTURE, structure_id)
    act = etree.SubElement(root, _h("controlActProcess"), classCode="CACT", moodCode="EVN")
    etree.SubElement(act, _h("code"), code="PRPA_TE201307UV02", codeSystem=OID_INTERACTION)
    qbp = etree.SubElement(act, _h("queryByParameter"))
    etree.SubElement(qbp, _h("queryId"), root=str(uuid.uuid4()))
    etree.SubElement(qbp, _h("statusCode"), code="new")
    etree.SubElement(qbp, _h("responsePriorityCode"), code="I")
    ident = etree.SubElement(etree.SubElement(qbp, _h("parameterList")), _h("patientIdentifier"))
    etree.SubElement(ident, _h("value"), root=oid, extension=matricule)
    etree.SubElement(ident, _h("semanticsText")).text = "Patient.id"
    return root


def queried_patient(request: etree._Element) -> tuple[str, str]:
    """(matricule, oid) of a TD0.2 request; SoapError when it is not one."""
    if request.tag != _h("PRPA_IN201307UV02"):
        raise SoapError("The body is not a PRPA_IN201307UV02 query.")
    value = request.find(f"{_h('controlActProcess')}/{_h('queryByParameter')}/{_h('parameterList')}/"
                         f"{_h('patientIdentifier')}/{_h('value')}")
    if value is None or not value.get("extension") or not value.get("root"):
        raise SoapError("The query names no patient (parameterList/patientIdentifier/value).")
    return value.get("extension", ""), value.get("root", "")


@dataclass(frozen=True)
class AccessCheck:
    """What TD0.2 answered: the DMP exists, is open, and this professional's authorisation."""

    exists: bool
    open: bool = True
    authorisation: str = AUTH_VALID
    #: The error of a query the DMP could not answer (bad assertion, unknown patient id...), else empty.
    error: RegistryError | None = None

    @property
    def refusal(self) -> RegistryError | None:
        """Why a deposit would be refused (R17), with the DMP's own codes; None when it may go."""
        if self.error is not None:
            return self.error
        if not self.exists:
            return RegistryError(c.ERR_DMP_NOT_CREATED, "Le DMP de ce patient n'existe pas.")
        if not self.open:
            return RegistryError(c.ERR_DMP_CLOSED, "Le DMP de ce patient est fermé : il ne peut plus être alimenté.")
        if self.authorisation == AUTH_FORBIDDEN:
            return RegistryError(c.ERR_PS_BLOCKED, "Le patient a bloqué l'accès de ce professionnel à son DMP.")
        if self.authorisation == AUTH_EXPIRED:
            return RegistryError(c.ERR_NOT_AUTHORISED, "L'autorisation d'accès a expiré après six mois sans accès : "
                                 "recueillir à nouveau l'autorisation du patient.")
        if self.authorisation == AUTH_NONE:
            return RegistryError(c.ERR_NOT_AUTHORISED, "Ce professionnel n'est pas autorisé à accéder au DMP de ce "
                                 "patient : recueillir l'autorisation du patient.")
        return None


def answer(request: etree._Element | None, matricule: str, oid: str, check: AccessCheck,
           now: datetime | None = None) -> etree._Element:
    """The PRPA_IN201308UV02 answer: AA with the patient (state and authorisation) or NF, AE with the error."""
    root = etree.Element(_h("PRPA_IN201308UV02"), nsmap={"hl7": c.NS_HL7, "dmp": NS_DMP}, ITSVersion="XML_1.0")
    _head(root, "PRPA_IN201308UV02", now)
    ack = etree.SubElement(root, _h("acknowledgement"))
    etree.SubElement(ack, _h("typeCode"), code="AE" if check.error else "AA")
    target = etree.SubElement(ack, _h("targetMessage"))
    request_id = request.find(_h("id")) if request is not None else None
    etree.SubElement(target, _h("id"), root=request_id.get("root", "") if request_id is not None else "")
    if check.error is not None:
        detail = etree.SubElement(ack, _h("acknowledgementDetail"), typeCode="E")
        etree.SubElement(detail, _h("code"), code=check.error.code)
        etree.SubElement(detail, _h("text")).text = check.error.context
    act = etree.SubElement(root, _h("controlActProcess"), classCode="CACT", moodCode="EVN")
    etree.SubElement(act, _h("code"), code="PRPA_TE201308UV02", codeSystem=OID_INTERACTION)
    if check.error is None and check.exists:
        event = etree.SubElement(etree.SubElement(act, _h("subject"), typeCode="SUBJ"), _h("registrationEvent"),
                                 classCode="REG", moodCode="EVN")
        etree.SubElement(event, _h("statusCode"), code="active")
        patient = etree.SubElement(etree.SubElement(event, _h("subject1"), typeCode="SBJ"), _h("patient"),
                                   classCode="PAT")
        etree.SubElement(patient, _h("id"), root=oid, extension=matricule)
        etree.SubElement(patient, _h("statusCode"), code=STATUS_OPEN if check.open else STATUS_CLOSED)
        etree.SubElement(patient, f"{{{NS_DMP}}}autorisation", code=check.authorisation)
    query_ack = etree.SubElement(act, _h("queryAck"))
    code = "AE" if check.error else ("OK" if check.exists else "NF")
    etree.SubElement(query_ack, _h("queryResponseCode"), code=code)
    return root


def read_answer(element: etree._Element) -> AccessCheck:
    """An AccessCheck from a PRPA_IN201308UV02 (or a SOAP Fault); SoapError when it is neither."""
    if element.tag == f"{{{c.NS_SOAP}}}Fault":
        reason = element.findtext(f"{{{c.NS_SOAP}}}Reason/{{{c.NS_SOAP}}}Text") or "SOAP fault"
        return AccessCheck(False, error=RegistryError("SOAPFault", reason.strip()[:500]))
    if element.tag != _h("PRPA_IN201308UV02"):
        raise SoapError(f"Expected a PRPA_IN201308UV02 answer, got {element.tag}.")
    ack = element.find(f"{_h('acknowledgement')}/{_h('typeCode')}")
    if ack is not None and ack.get("code") != "AA":
        detail = element.find(f"{_h('acknowledgement')}/{_h('acknowledgementDetail')}")
        code = detail.find(_h("code")) if detail is not None else None
        text = (detail.findtext(_h("text")) if detail is not None else None) or "The DMP refused the query."
        return AccessCheck(False, error=RegistryError(code.get("code", "AE") if code is not None else "AE",
                                                      text.strip()[:500]))
    response = element.find(f"{_h('controlActProcess')}/{_h('queryAck')}/{_h('queryResponseCode')}")
    if response is not None and response.get("code") == "NF":
        return AccessCheck(False)
    patient = element.find(f"{_h('controlActProcess')}/{_h('subject')}/{_h('registrationEvent')}/"
                           f"{_h('subject1')}/{_h('patient')}")
    if patient is None:
        raise SoapError("The TD0.2 answer has neither a patient nor queryResponseCode NF.")
    status = patient.find(_h("statusCode"))
    authorisation = patient.find(f"{{{NS_DMP}}}autorisation")
    code = authorisation.get("code", "") if authorisation is not None else ""
    if code not in AUTHORISATIONS:
        raise SoapError(f"Unknown TD0.2 authorisation {code[:40]!r}.")
    return AccessCheck(True, open=status is None or status.get("code") == STATUS_OPEN, authorisation=code)
