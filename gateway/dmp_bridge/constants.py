"""One place for the DMP bridge's facts: namespaces, XDS identifiers, code systems, limits and error codes.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import Final

from gateway.documents.limits import CdaLimits

# --- Namespaces --------------------------------------------------------------------------------------------
NS_SOAP: Final = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA: Final = "http://www.w3.org/2005/08/addressing"
NS_WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_SAML: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_DS: Final = "http://www.w3.org/2000/09/xmldsig#"
NS_XOP: Final = "http://www.w3.org/2004/08/xop/include"
NS_XDSB: Final = "urn:ihe:iti:xds-b:2007"
NS_RIM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_LCM: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RS: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NS_QUERY: Final = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
NS_HL7: Final = "urn:hl7-org:v3"
NS_XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
NS_XML: Final = "http://www.w3.org/XML/1998/namespace"

NSMAP: Final = {
    "soap": NS_SOAP, "wsa": NS_WSA, "wsse": NS_WSSE, "saml2": NS_SAML, "ds": NS_DS, "xop": NS_XOP,
    "xdsb": NS_XDSB, "rim": NS_RIM, "lcm": NS_LCM, "rs": NS_RS, "query": NS_QUERY, "hl7": NS_HL7,
}

# --- SOAP actions (WS-Addressing) --------------------------------------------------------------------------
ACTION_ITI41: Final = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI41_RESPONSE: Final = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
ACTION_ITI18: Final = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_ITI18_RESPONSE: Final = "urn:ihe:iti:2007:RegistryStoredQueryResponse"

# --- XDS.b metadata identifiers (IHE ITI TF-3 4.2) -----------------------------------------------------------
SS_CLASSIFICATION_NODE: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_AUTHOR: Final = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE: Final = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID: Final = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID: Final = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID: Final = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
DE_OBJECT_TYPE: Final = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
DE_AUTHOR: Final = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS_CODE: Final = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY: Final = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT_CODE: Final = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT_CODE: Final = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY_TYPE: Final = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING: Final = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE: Final = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID: Final = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID: Final = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
ASSOC_HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
ASSOC_RPLC: Final = "urn:ihe:iti:2007:AssociationType:RPLC"
STATUS_APPROVED: Final = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED: Final = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
RESPONSE_SUCCESS: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
RESPONSE_FAILURE: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
SEVERITY_ERROR: Final = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
QUERY_FIND_DOCUMENTS: Final = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
QUERY_GET_DOCUMENTS: Final = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"

# --- Code systems (OIDs) -------------------------------------------------------------------------------------
OID_LOINC: Final = "2.16.840.1.113883.6.1"
OID_CONFIDENTIALITY: Final = "2.16.840.1.113883.5.25"
OID_VISIBILITY: Final = "1.2.250.1.213.1.1.4.13"  # R16
OID_CISIS_TYPE: Final = "1.2.250.1.213.1.1.4.12"  # SYNTH and other French type codes
OID_CLASS_CODE: Final = "1.2.250.1.213.1.1.4.1"
OID_PRACTICE_SETTING: Final = "1.2.250.1.213.1.1.4.9"
OID_FACILITY_TYPE: Final = "1.2.250.1.71.4.2.4"
OID_CONTENT_TYPE: Final = "1.2.250.1.213.2.2"
OID_RPPS: Final = "1.2.250.1.71.4.2.1"  # national professional id (8 + RPPS)
OID_STRUCTURE: Final = "1.2.250.1.71.4.2.2"
OID_PROFESSION: Final = "1.2.250.1.71.1.2.7"
OID_SPECIALTY: Final = "1.2.250.1.71.4.2.5"
OID_FORMAT_CODE: Final = "1.3.6.1.4.1.19376.1.2.3"
INS_OIDS: Final = frozenset({"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10",
                             "1.2.250.1.213.1.4.11"})

# --- Type, class and format codes (domain.md section 5, R13) ----------------------------------------------------
TYPE_LAB_REPORT: Final = "11502-2"
TYPE_IMAGING_REPORT: Final = "18748-4"
TYPE_CONSULTATION_REPORT: Final = "11488-4"
TYPE_PRESCRIPTION: Final = "57833-6"
TYPE_SUMMARY: Final = "SYNTH"
FORMAT_PDF_WRAPPED: Final = "urn:ihe:iti:xds-sd:pdf:2008"
FORMAT_TEXT_WRAPPED: Final = "urn:ihe:iti:xds-sd:text:2008"
FORMAT_LAB: Final = "urn:ihe:lab:xd-lab:2008"
FORMAT_VSM: Final = "urn:asip:ci-sis:vsm:2012"
#: Generic structured CDA of the CI-SIS, used when no more specific format code applies.
FORMAT_CISIS_GENERIC: Final = "urn:asip:ci-sis:2010"
TEMPLATE_XD_LAB: Final = "1.3.6.1.4.1.19376.1.3.3"

# --- Visibility (R16) ------------------------------------------------------------------------------------------
INVISIBLE_PATIENT: Final = "INVISIBLE_PATIENT"
MASQUE_PS: Final = "MASQUE_PS"
INVISIBLE_REPRESENTANTS_LEGAUX: Final = "INVISIBLE_REPRESENTANTS_LEGAUX"
VISIBILITY_CODES: Final = {
    INVISIBLE_PATIENT: "Non visible par le patient",
    MASQUE_PS: "Masqué aux professionnels de santé",
    INVISIBLE_REPRESENTANTS_LEGAUX: "Non visible par les représentants légaux du patient",
}
#: The sender header carrying visibility codes, comma separated (our design; see rules.visibility).
VISIBILITY_HEADER: Final = "X-DMP-Visibility"
#: The sender header carrying the deposit title for manual deposits (R14).
TITLE_HEADER: Final = "X-DMP-Title"
#: The sender header naming the patient (INS matricule) of attached documents when the message has no CDA (R7).
PATIENT_HEADER: Final = "X-DMP-Patient"

# --- Limits (R15 and parser bounds) ------------------------------------------------------------------------------
MAX_DOCUMENT_SIZE: Final = 5 * 1024 * 1024
#: Raw formats the DMP accepts (R15), by MIME type.
ALLOWED_MEDIA_TYPES: Final = frozenset({"application/pdf", "image/jpeg", "image/tiff", "text/plain", "text/rtf",
                                        "application/rtf"})
MAX_CDA_SIZE: Final = 8 * 1024 * 1024  # a CDA wrapping a 5 MB PDF in base64 is about 6.7 MB
#: The bound gateway.documents.cda reads a CDA for the DMP with (schema validation is the filing's business).
CDA_LIMITS: Final = CdaLimits(max_bytes=MAX_CDA_SIZE)
MAX_SOAP_SIZE: Final = 12 * 1024 * 1024
MAX_MIME_PARTS: Final = 20
MAX_DOCUMENTS_PER_SUBMISSION: Final = 10
#: The documents of one submission together, so that the request stays under MAX_SOAP_SIZE.
MAX_SUBMISSION_BYTES: Final = 10 * 1024 * 1024

# --- Registry error codes ----------------------------------------------------------------------------------------
ERR_DUPLICATE_UNIQUE_ID: Final = "XDSDuplicateUniqueIdInRegistry"
ERR_METADATA: Final = "XDSRegistryMetadataError"
ERR_REPOSITORY_METADATA: Final = "XDSRepositoryMetadataError"
ERR_REPOSITORY: Final = "XDSRepositoryError"
ERR_UNKNOWN_PATIENT: Final = "XDSUnknownPatientId"
ERR_MISSING_DOCUMENT: Final = "XDSMissingDocument"
ERR_TOO_LARGE: Final = "DMPDocumentTooLarge"
ERR_FORMAT: Final = "DMPFormatNotAllowed"
ERR_DMP_NOT_CREATED: Final = "DMPNotFound"
ERR_DMP_CLOSED: Final = "DMPClosed"
ERR_NOT_AUTHORISED: Final = "DMPAccessNotAuthorized"
ERR_PS_BLOCKED: Final = "DMPAccessDeniedByExcludedPS"
ERR_ASSERTION: Final = "DMPInvalidAssertion"
ERR_REPLACED_UNKNOWN: Final = "XDSUnknownDocumentToReplace"
