"""The signature of a submission set (IHE DSG detached signature, XAdES), as the ANS ITI-41 capture carries it.

The signature document is an XML-DSig ``Signature`` whose SignedInfo covers a ``Manifest`` (one ``Reference`` per
document of the set: its uniqueId as ``urn:oid:`` and the SHA-256 of its bytes) and the XAdES SignedProperties
(signing time, signing certificate). It is signed with the structure's signing certificate, the one of the VIHF,
travels as one more document of the set (its own ExtrinsicObject, classCode "Digital Signature", formatCode
``http://www.w3.org/2000/09/xmldsig#`` as in the ANS capture) and is linked to the set by an
``urn:ihe:iti:2007:AssociationType:signs`` association (IHE ITI TF-3 4.2.2 / DSG 5.6).

SHA-256 where the ANS capture has SHA-1: signxml refuses SHA-1 and the DSG profile allows both. The capture's
Manifest also lists the submission set's own uniqueId with a placeholder digest; we list only the documents,
which is what the digests can prove.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from signxml import SignatureReference
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.xades import XAdESDataObjectFormat, XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import metadata
from gateway.documents.cda import Code
from gateway.pki import Issued

NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XADES = "http://uri.etsi.org/01903/v1.3.2#"
#: The association from the signature document to the set it signs (ITI TF-3 4.2.2).
ASSOC_SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
MANIFEST_ID = "IHEManifest"
MANIFEST_TYPE = "http://www.w3.org/2000/09/xmldsig#Manifest"
#: The signature entry's codes, as the ANS ITI-41 capture gives them.
CLASS_CODE = Code("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN", "Digital Signature")
TYPE_CODE = Code("E1762", "ASTM", "Full Document")
FORMAT_CODE = Code("http://www.w3.org/2000/09/xmldsig#", "URN", "Default Signature Style")
#: Purpose of the signature (ISO 17090 / ASTM E1762): the author is the source of the documents.
PURPOSE_SOURCE = Code("1.2.840.10065.1.12.1.14", "1.2.840.10065.1.12", "Source")
#: The signature is not a document to read: hidden from professionals and from the patient (R16 codes).
HIDDEN = ("MASQUE_PS", "INVISIBLE_PATIENT")
SIGNATURE_NAMESPACE = uuid.UUID("1d4c8f0e-2b7a-4c55-9e1f-6a3b0c9d2e47")
MAX_SIGNATURE_SIZE = 256 * 1024


class SignatureInvalid(ValueError):
    """The signature document is not a valid signature of these documents by this certificate."""


@dataclass(frozen=True)
class SignedSet:
    """The signature document of one submission set, and the ids it travels under."""

    unique_id: str
    content: bytes
    signed_at: datetime

    @property
    def entry_uuid(self) -> str:
        return metadata.entry_uuid(self.unique_id)

    @property
    def cid(self) -> str:
        return f"{self.entry_uuid.removeprefix('urn:uuid:')}@gateway"


def signature_uid(submission_uid: str) -> str:
    """The signature document's uniqueId: a 2.25 OID derived from the set's, so that a re-send of the same set
    (after a crash) is the same submission, signature included."""
    return f"2.25.{uuid.uuid5(SIGNATURE_NAMESPACE, submission_uid).int}"


def _ds(tag: str) -> str:
    return f"{{{NS_DS}}}{tag}"


class _DsgSigner(XAdESSigner):
    """XAdES with the DSG layout: the Signature's Id, the Manifest reference typed, the Manifest's Object after
    KeyInfo (before the XAdES properties), and the purpose of the signature as a signed CommitmentTypeIndication
    (ETSI TS 101 903 7.2.6; the ANS capture puts it in an unsigned SignatureProperty, which the XML-DSig schema
    rejects without a child element)."""

    def __init__(self, signature_id: str, manifest_object: etree._Element, purpose: str, **kwargs: Any) -> None:
        super().__init__(data_object_format=XAdESDataObjectFormat(
            Description="IHE DSG Manifest of the submission set's documents", MimeType="text/xml"), **kwargs)
        self.signature_id = signature_id
        self.manifest_object = manifest_object
        self.purpose = purpose
        self.signature_annotators.insert(1, self._dsg_layout)  # after KeyInfo, before the XAdES object
        self.signed_data_object_properties_annotators.append(self._commitment)  # type: ignore[arg-type]

    def _dsg_layout(self, sig_root: etree._Element, signing_settings: Any) -> None:
        sig_root.set("Id", self.signature_id)
        for reference in sig_root.iterfind(f"{_ds('SignedInfo')}/{_ds('Reference')}"):
            if reference.get("URI") == f"#{MANIFEST_ID}":
                reference.set("Type", MANIFEST_TYPE)
        sig_root.append(self.manifest_object)

    def _commitment(self, properties: etree._Element, sig_root: etree._Element, signing_settings: Any) -> None:
        indication = etree.SubElement(properties, _x("CommitmentTypeIndication"))
        type_id = etree.SubElement(indication, _x("CommitmentTypeId"))
        etree.SubElement(type_id, _x("Identifier")).text = f"urn:oid:{self.purpose}"
        etree.SubElement(indication, _x("AllSignedDataObjects"))


def _x(tag: str) -> str:
    return f"{{{NS_XADES}}}{tag}"


def sign_set(submission_uid: str, documents: Mapping[str, bytes], signer: Issued,
             now: datetime | None = None) -> SignedSet:
    """Sign the documents of a set (uniqueId → bytes) with the structure's signing certificate."""
    if not documents:
        raise ValueError("A submission set signature covers at least one document.")
    now = now or datetime.now(UTC)
    unique_id = signature_uid(submission_uid)
    signature_id = f"_{uuid.uuid5(SIGNATURE_NAMESPACE, unique_id)}"
    manifest_object = etree.Element(_ds("Object"), nsmap={"ds": NS_DS})
    manifest = etree.SubElement(manifest_object, _ds("Manifest"), Id=MANIFEST_ID)
    for doc_uid, content in documents.items():
        ref = etree.SubElement(manifest, _ds("Reference"), URI=f"urn:oid:{doc_uid}")
        etree.SubElement(ref, _ds("DigestMethod"), Algorithm=DigestAlgorithm.SHA256.value)
        etree.SubElement(ref, _ds("DigestValue")).text = base64.b64encode(hashlib.sha256(content).digest()).decode()
    # The Manifest is signed from a detached copy, then the signature carries it: its reference names exclusive
    # c14n, which ignores the surrounding namespaces, so the digest is the same in both places. The XAdES
    # references carry no transform (inclusive c14n by default), hence the signature's own c14n is inclusive.
    detached = etree.fromstring(etree.tostring(manifest_object))
    dsg = _DsgSigner(signature_id, manifest_object, PURPOSE_SOURCE.code, method=_detached(),
                     signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256,
                     c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1)
    cert_pem = signer.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    signed = dsg.sign(detached, key=signer.key, cert=cert_pem,
                      reference_uri=[SignatureReference(
                          URI=f"#{MANIFEST_ID}",
                          c14n_method=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)])
    content = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
    return SignedSet(unique_id, content, now)


def _detached() -> Any:
    from signxml import methods

    return methods.detached


def _parse(content: bytes) -> etree._Element:
    if len(content) > MAX_SIGNATURE_SIZE:
        raise SignatureInvalid(f"The signature document is {len(content)} bytes; the limit is {MAX_SIGNATURE_SIZE}.")
    try:
        root = etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                                                         load_dtd=False))
    except etree.XMLSyntaxError as exc:
        raise SignatureInvalid(f"The signature document is not XML: {exc}.") from exc
    if root.tag != _ds("Signature"):
        raise SignatureInvalid("The signature document is not an XML-DSig Signature.")
    return root


def manifest_digests(content: bytes) -> dict[str, bytes]:
    """The Manifest of a signature document: document uniqueId → digest (what the signature covers)."""
    root = _parse(content)
    found: dict[str, bytes] = {}
    for ref in root.iterfind(f"{_ds('Object')}/{_ds('Manifest')}/{_ds('Reference')}"):
        uri = ref.get("URI", "")
        method = ref.find(_ds("DigestMethod"))
        if not uri.startswith("urn:oid:") or method is None or method.get("Algorithm") != DigestAlgorithm.SHA256.value:
            raise SignatureInvalid(f"The Manifest reference {uri[:80]} is not a SHA-256 urn:oid: reference.")
        try:
            found[uri.removeprefix("urn:oid:")] = base64.b64decode(ref.findtext(_ds("DigestValue")) or "",
                                                                   validate=True)
        except ValueError as exc:
            raise SignatureInvalid(f"The Manifest digest of {uri[:80]} is not base64.") from exc
    return found


def verify_set(content: bytes, documents: Mapping[str, bytes], certificate: x509.Certificate) -> None:
    """Check a submission set signature: XAdES signature by ``certificate`` (signxml's XAdES verifier: the
    SignedInfo, the Manifest and SignedProperties digests, the SigningCertificate digest), then that the Manifest
    lists exactly ``documents`` with their SHA-256. Raises :class:`SignatureInvalid`."""
    root = _parse(content)
    config = XAdESSignatureConfiguration(expect_references=3, require_x509=True,
                                         signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
                                         digest_algorithms=frozenset({DigestAlgorithm.SHA256}))
    try:
        results = XAdESVerifier().verify(etree.tostring(root), x509_cert=certificate, expect_config=config)
    except Exception as exc:  # signxml raises several kinds; all mean "not a valid signature"
        raise SignatureInvalid(f"The signature is not valid: {exc}.") from exc
    covered = {r.signed_xml.get("Id") for r in results if r.signed_xml is not None}
    if MANIFEST_ID not in covered:
        raise SignatureInvalid("The signature does not cover the Manifest.")
    digests = manifest_digests(content)
    if set(digests) != set(documents):
        raise SignatureInvalid("The Manifest does not list exactly the documents of the set.")
    for doc_uid, data in documents.items():
        if digests[doc_uid] != hashlib.sha256(data).digest():
            raise SignatureInvalid(f"The digest of document {doc_uid} does not match its content.")


def signing_certificate(content: bytes) -> x509.Certificate:
    """The certificate the signature document carries in KeyInfo (to be checked against trust anchors)."""
    root = _parse(content)
    text = root.findtext(f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}") or ""
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except ValueError as exc:
        raise SignatureInvalid("The signature's certificate cannot be read.") from exc


# --- ebRIM: the signature entry and the signs association ------------------------------------------------------

def _rim(tag: str) -> str:
    return f"{{{c.NS_RIM}}}{tag}"


def attach(request: etree._Element, submission: metadata.SubmissionSet,
           entries: Sequence[metadata.DocumentEntry], signed: SignedSet, *, inline: bool = False) -> None:
    """Add the signature document to a ProvideAndRegisterDocumentSetRequest built by metadata.build_request: its
    ExtrinsicObject after the documents', HasMember from the set and ``signs`` to the set, and its Document."""
    objects = request.find(f"{{{c.NS_LCM}}}SubmitObjectsRequest/{_rim('RegistryObjectList')}")
    package = objects.find(_rim("RegistryPackage")) if objects is not None else None
    if objects is None or package is None:
        raise ValueError("The request has no submission set to sign.")
    ss_id = package.get("id", "")
    first = entries[0]
    patient = metadata.patient_cx(first.matricule, first.patient_oid)
    eid = signed.entry_uuid
    eo = etree.Element(_rim("ExtrinsicObject"), id=eid, mimeType="text/xml", objectType=c.DE_OBJECT_TYPE)
    package.addprevious(eo)
    when = metadata.xds_time(signed.signed_at)
    ids = _Ids()
    metadata._slot(eo, "creationTime", [when])
    metadata._slot(eo, "submissionTime", [metadata.xds_time(submission.submission_time)])
    metadata._slot(eo, "languageCode", ["art"])  # ISO 639-2 "artificial": not a human language
    metadata._slot(eo, "legalAuthenticator", [submission.author.xcn()])
    metadata._slot(eo, "serviceStartTime", [when])
    metadata._slot(eo, "serviceStopTime", [when])
    metadata._slot(eo, "sourcePatientId", [first.source_patient_id or patient])
    metadata._slot(eo, "hash", [hashlib.sha1(signed.content, usedforsecurity=False).hexdigest()])
    metadata._slot(eo, "size", [str(len(signed.content))])
    metadata._name(eo, "Name", PURPOSE_SOURCE.display)
    author = etree.SubElement(eo, _rim("Classification"), classificationScheme=c.DE_AUTHOR, classifiedObject=eid,
                              id=ids.next(), nodeRepresentation="")
    metadata._slot(author, "authorPerson", [submission.author.xcn()])
    metadata._slot(author, "authorInstitution", [submission.structure.xon()])
    codes: list[tuple[str, Code]] = [
        (c.DE_CLASS_CODE, CLASS_CODE), (c.DE_TYPE_CODE, TYPE_CODE),
        (c.DE_CONFIDENTIALITY, Code("N", c.OID_CONFIDENTIALITY, "Normal")),
        *[(c.DE_CONFIDENTIALITY, Code(code, c.OID_VISIBILITY, c.VISIBILITY_CODES[code])) for code in HIDDEN],
        (c.DE_FORMAT_CODE, FORMAT_CODE), (c.DE_FACILITY_TYPE, first.facility_type),
        (c.DE_PRACTICE_SETTING, first.practice_setting), (c.DE_EVENT_CODE, PURPOSE_SOURCE)]
    for scheme, code in codes:
        cl = etree.SubElement(eo, _rim("Classification"), classificationScheme=scheme, classifiedObject=eid,
                              id=ids.next(), nodeRepresentation=code.code)
        metadata._slot(cl, "codingScheme", [code.system])
        metadata._name(cl, "Name", code.display or code.code)
    for scheme, value, name in ((c.DE_PATIENT_ID, patient, "XDSDocumentEntry.patientId"),
                                (c.DE_UNIQUE_ID, signed.unique_id, "XDSDocumentEntry.uniqueId")):
        ei = etree.SubElement(eo, _rim("ExternalIdentifier"), id=ids.next("sigei"), identificationScheme=scheme,
                              registryObject=eid, value=value)
        metadata._name(ei, "Name", name)
    for kind, source, target in ((c.ASSOC_HAS_MEMBER, ss_id, eid), (ASSOC_SIGNS, eid, ss_id)):
        assoc = etree.SubElement(objects, _rim("Association"), id=ids.next("sigas"), associationType=kind,
                                 sourceObject=source, targetObject=target)
        metadata._slot(assoc, "SubmissionSetStatus", ["Original"])
    doc = etree.SubElement(request, f"{{{c.NS_XDSB}}}Document", id=eid)
    if inline:
        doc.text = base64.b64encode(signed.content).decode("ascii")
    else:
        etree.SubElement(doc, f"{{{c.NS_XOP}}}Include", nsmap={"xop": c.NS_XOP}, href=f"cid:{signed.cid}")


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def next(self, prefix: str = "sigcl") -> str:
        self.n += 1
        return f"{prefix}{self.n:03d}"


def is_signature_entry(eo: etree._Element) -> bool:
    """Is this ExtrinsicObject a submission set signature (its classCode)?"""
    return any(cl.get("classificationScheme") == c.DE_CLASS_CODE and cl.get("nodeRepresentation") == CLASS_CODE.code
               for cl in eo.findall(_rim("Classification")))
