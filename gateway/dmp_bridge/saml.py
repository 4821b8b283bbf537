"""The VIHF: a SAML 2.0 assertion naming the structure, the professional and the patient, signed (XML-DSig)
with the structure's signing certificate and carried in the WS-Security header of every DMP request.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import SignatureConfiguration, XMLSigner, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.rules import Professional, Structure
from gateway.pki import Issued

VIHF_VERSION = "3.0"
#: How long an assertion is valid; the simulator refuses expired ones (with a little skew).
LIFETIME = timedelta(minutes=5)
SKEW = timedelta(minutes=2)
PURPOSE_OF_USE_SYSTEM = "1.2.250.1.213.1.1.4.248"


class AssertionError_(ValueError):
    """The assertion is missing, unsigned, badly signed, expired, or lacks a required attribute."""


@dataclass(frozen=True)
class Software:
    """The LPS attributes: who made the software that talks to the DMP."""

    identifier: str = "mss-gateway"
    name: str = "MSS gateway"
    version: str = "0.1.0"
    homologation: str = "DEV-HOMOLOGATION"


@dataclass(frozen=True)
class VihfContext:
    """Who acts, for whom: the inputs of one assertion."""

    professional: Professional
    structure: Structure
    matricule: str
    patient_oid: str
    software: Software = Software()
    #: INDIRECTE: the structure's certificate authenticates, not the professional's card.
    authentication_mode: str = "INDIRECTE"


def _s(tag: str) -> str:
    return f"{{{c.NS_SAML}}}{tag}"


def _attribute(parent: etree._Element, name: str, *values: str | etree._Element) -> None:
    attr = etree.SubElement(parent, _s("Attribute"), Name=name)
    for value in values:
        av = etree.SubElement(attr, _s("AttributeValue"))
        if isinstance(value, str):
            av.text = value
        else:
            av.append(value)


def _ce(tag: str, code: str, system: str, display: str) -> etree._Element:
    element = etree.Element(f"{{{c.NS_HL7}}}{tag}", nsmap={None: c.NS_HL7, "xsi": c.NS_XSI})
    element.set("code", code)
    element.set("codeSystem", system)
    element.set("displayName", display)
    element.set(f"{{{c.NS_XSI}}}type", "CE")
    return element


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def build_assertion(ctx: VihfContext, signer: Issued, now: datetime | None = None) -> etree._Element:
    """A signed VIHF assertion (enveloped RSA-SHA256 signature, exclusive c14n, certificate in KeyInfo)."""
    now = now or datetime.now(UTC)
    assertion_id = f"_{uuid.uuid4()}"
    nsmap = {"saml2": c.NS_SAML, "xsi": c.NS_XSI}
    a = etree.Element(_s("Assertion"), nsmap=nsmap, ID=assertion_id, IssueInstant=_iso(now), Version="2.0")
    issuer = etree.SubElement(a, _s("Issuer"), Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
    issuer.text = signer.certificate.subject.rfc4514_string()
    etree.SubElement(a, f"{{{c.NS_DS}}}Signature", nsmap={"ds": c.NS_DS}, Id="placeholder")
    subject = etree.SubElement(a, _s("Subject"))
    etree.SubElement(subject, _s("NameID")).text = ctx.professional.national_id
    etree.SubElement(a, _s("Conditions"), NotBefore=_iso(now - SKEW), NotOnOrAfter=_iso(now + LIFETIME))
    authn = etree.SubElement(a, _s("AuthnStatement"), AuthnInstant=_iso(now))
    etree.SubElement(etree.SubElement(authn, _s("AuthnContext")), _s("AuthnContextClassRef")).text = (
        "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient")
    stmt = etree.SubElement(a, _s("AttributeStatement"))
    sector = ctx.structure.activity_sector
    _attribute(stmt, "VIHF_Version", VIHF_VERSION)
    _attribute(stmt, "Secteur_Activite", f"{sector.code}^{sector.system}")
    _attribute(stmt, "Ressource_URN", "urn:dmp")
    _attribute(stmt, "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
               f"{ctx.professional.given} {ctx.professional.family}".strip())
    _attribute(stmt, "Identifiant_Structure", ctx.structure.identifier)
    _attribute(stmt, "LPS_ID", ctx.software.identifier)
    _attribute(stmt, "LPS_Nom", ctx.software.name)
    _attribute(stmt, "LPS_ID_HOMOLOGATION_DMP", ctx.software.homologation)
    _attribute(stmt, "LPS_Version", ctx.software.version)
    _attribute(stmt, "urn:oasis:names:tc:xacml:2.0:resource:resource-id",
               f"{ctx.matricule}^^^&{ctx.patient_oid}&ISO^NH")
    _attribute(stmt, "Authentification_Mode", ctx.authentication_mode)
    _attribute(stmt, "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
               _ce("PurposeOfUse", "normal", PURPOSE_OF_USE_SYSTEM, "Accès normal"))
    pro = ctx.professional
    _attribute(stmt, "urn:oasis:names:tc:xacml:2.0:subject:role",
               _ce("Role", pro.profession.code, pro.profession.system, pro.profession.display),
               _ce("Role", pro.specialty.code, pro.specialty.system, pro.specialty.display))
    signer_ = XMLSigner(signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256,
                        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    cert_pem = signer.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    signed: etree._Element = signer_.sign(a, key=signer.key, cert=cert_pem, reference_uri=f"#{assertion_id}",
                                          id_attribute="ID")
    return signed


@dataclass(frozen=True)
class VerifiedAssertion:
    """What a verified assertion says (only from the signed bytes)."""

    subject: str
    issuer: str
    attributes: dict[str, list[str]]
    roles: list[tuple[str, str]]
    certificate: x509.Certificate

    def one(self, name: str) -> str:
        values = self.attributes.get(name) or [""]
        return values[0]

    @property
    def patient(self) -> str:
        """The patient's matricule from resource-id (``matricule^^^&oid&ISO^NH``)."""
        return self.one("urn:oasis:names:tc:xacml:2.0:resource:resource-id").split("^", 1)[0]


REQUIRED_ATTRIBUTES = ("VIHF_Version", "Secteur_Activite", "Identifiant_Structure", "LPS_ID", "LPS_Nom",
                       "LPS_Version", "urn:oasis:names:tc:xacml:2.0:resource:resource-id", "Authentification_Mode",
                       "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
                       "urn:oasis:names:tc:xacml:2.0:subject:role",
                       "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse")


def _issued_by_trusted(cert: x509.Certificate, anchors: Sequence[x509.Certificate], now: datetime) -> bool:
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        return False
    for anchor in anchors:
        if anchor.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return anchor.not_valid_before_utc <= now <= anchor.not_valid_after_utc
    return False


def verify_assertion(assertion: etree._Element, anchors: Sequence[x509.Certificate],
                     now: datetime | None = None) -> VerifiedAssertion:
    """Check the signature against a certificate issued by one of ``anchors``, the validity window and the
    required VIHF attributes; read everything from what the signature covers."""
    now = now or datetime.now(UTC)
    cert_el = assertion.find(f"{{{c.NS_DS}}}Signature/{{{c.NS_DS}}}KeyInfo/{{{c.NS_DS}}}X509Data/"
                             f"{{{c.NS_DS}}}X509Certificate")
    if cert_el is None or not (cert_el.text or "").strip():
        raise AssertionError_("The assertion is not signed with an X.509 certificate.")
    try:
        import base64

        cert = x509.load_der_x509_certificate(base64.b64decode("".join((cert_el.text or "").split())))
    except ValueError as exc:
        raise AssertionError_("The assertion's certificate cannot be read.") from exc
    if not _issued_by_trusted(cert, anchors, now):
        raise AssertionError_("The assertion's signing certificate is not issued by a trusted authority or is "
                              "not valid now.")
    config = SignatureConfiguration(
        signature_methods=frozenset({SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384,
                                     SignatureMethod.RSA_SHA512}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}))
    try:
        result = XMLVerifier().verify(etree.tostring(assertion), x509_cert=cert, id_attribute="ID",
                                      expect_config=config, validate_schema=True)
    except Exception as exc:
        raise AssertionError_(f"The assertion's signature is not valid: {exc}.") from exc
    signed = result.signed_xml  # type: ignore[union-attr]
    if signed is None or signed.tag != _s("Assertion"):
        raise AssertionError_("The signature does not cover the assertion.")
    conditions = signed.find(_s("Conditions"))
    if conditions is not None:
        try:
            not_before = datetime.fromisoformat(conditions.get("NotBefore", "").replace("Z", "+00:00"))
            not_after = datetime.fromisoformat(conditions.get("NotOnOrAfter", "").replace("Z", "+00:00"))
        except ValueError as exc:
            raise AssertionError_("The assertion's validity window cannot be read.") from exc
        if not (not_before - SKEW <= now < not_after + SKEW):
            raise AssertionError_("The assertion has expired or is not valid yet.")
    attributes: dict[str, list[str]] = {}
    roles: list[tuple[str, str]] = []
    for attr in signed.iterfind(f"{_s('AttributeStatement')}/{_s('Attribute')}"):
        name = attr.get("Name", "")
        for value in attr.findall(_s("AttributeValue")):
            child = next(iter(value), None)
            if child is not None:
                attributes.setdefault(name, []).append(child.get("code", ""))
                if name.endswith("subject:role"):
                    roles.append((child.get("code", ""), child.get("codeSystem", "")))
            else:
                attributes.setdefault(name, []).append((value.text or "").strip())
    missing = [n for n in REQUIRED_ATTRIBUTES if not any(attributes.get(n, []))]
    if missing:
        raise AssertionError_("The assertion lacks required VIHF attributes: " + ", ".join(missing) + ".")
    subject = signed.findtext(f"{_s('Subject')}/{_s('NameID')}") or ""
    if not subject:
        raise AssertionError_("The assertion names no professional (Subject/NameID).")
    return VerifiedAssertion(subject=subject.strip(), issuer=signed.findtext(_s("Issuer")) or "",
                             attributes=attributes, roles=roles, certificate=cert)
