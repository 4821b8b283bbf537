"""The DMP bridge's own facts (sender headers, R15 limits, registry error codes), beside the shared ones it uses
(namespaces, XDS identifiers, OIDs, R14/R16 codes, reader limits), imported from their one place in
:mod:`gateway.codes` and :mod:`gateway.documents.limits` under the names the bridge knows them by.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import Final

from gateway.codes.dmp import (
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    VISIBILITY_CODES,
)
from gateway.codes.oids import (
    FORMAT_CISIS_GENERIC,
    FORMAT_LAB,
    FORMAT_PDF_WRAPPED,
    FORMAT_TEXT_WRAPPED,
    FORMAT_VSM,
    INS_OIDS,
    OID_CISIS_TYPE,
    OID_CLASS_CODE,
    OID_CONFIDENTIALITY,
    OID_CONTENT_TYPE,
    OID_FACILITY_TYPE,
    OID_FORMAT_CODE,
    OID_LOINC,
    OID_PRACTICE_SETTING,
    OID_PROFESSION,
    OID_RPPS,
    OID_SPECIALTY,
    OID_STRUCTURE,
    OID_VISIBILITY,
    TEMPLATE_XD_LAB,
    TYPE_CONSULTATION_REPORT,
    TYPE_IMAGING_REPORT,
    TYPE_LAB_REPORT,
    TYPE_PRESCRIPTION,
    TYPE_SUMMARY,
)
from gateway.codes.xds import (
    DE_AUTHOR,
    DE_CLASS_CODE,
    DE_CONFIDENTIALITY,
    DE_EVENT_CODE,
    DE_FACILITY_TYPE,
    DE_FORMAT_CODE,
    DE_PATIENT_ID,
    DE_PRACTICE_SETTING,
    DE_TYPE_CODE,
    DE_UNIQUE_ID,
    NS_DS,
    NS_HL7,
    NS_LCM,
    NS_QUERY,
    NS_RIM,
    NS_RS,
    NS_SAML,
    NS_SOAP,
    NS_WSA,
    NS_WSSE,
    NS_XDSB,
    NS_XML,
    NS_XOP,
    NS_XSI,
    QUERY_FIND_DOCUMENTS,
    QUERY_GET_DOCUMENTS,
    RESPONSE_FAILURE,
    RESPONSE_SUCCESS,
    SEVERITY_ERROR,
    SS_AUTHOR,
    SS_CONTENT_TYPE,
    SS_PATIENT_ID,
    SS_SOURCE_ID,
    SS_UNIQUE_ID,
    STATUS_APPROVED,
    STATUS_DEPRECATED,
)
from gateway.codes.xds import DOCUMENT_ENTRY as DE_OBJECT_TYPE
from gateway.codes.xds import HAS_MEMBER as ASSOC_HAS_MEMBER
from gateway.codes.xds import RPLC as ASSOC_RPLC
from gateway.codes.xds import SUBMISSION_SET as SS_CLASSIFICATION_NODE
from gateway.documents.limits import DEPOSIT_CDA as CDA_LIMITS
from gateway.documents.limits import MAX_DEPOSIT_CDA as MAX_CDA_SIZE

# --- Namespaces, XDS identifiers, OIDs and codes: one place each (gateway.codes), named here as the bridge uses them
__all__ = [
    "ACTION_ITI18",
    "ACTION_ITI18_RESPONSE",
    "ACTION_ITI41",
    "ACTION_ITI41_RESPONSE",
    "ALLOWED_MEDIA_TYPES",
    "ASSOC_HAS_MEMBER",
    "ASSOC_RPLC",
    "CDA_LIMITS",
    "DE_AUTHOR",
    "DE_CLASS_CODE",
    "DE_CONFIDENTIALITY",
    "DE_EVENT_CODE",
    "DE_FACILITY_TYPE",
    "DE_FORMAT_CODE",
    "DE_OBJECT_TYPE",
    "DE_PATIENT_ID",
    "DE_PRACTICE_SETTING",
    "DE_TYPE_CODE",
    "DE_UNIQUE_ID",
    "ERR_ASSERTION",
    "ERR_DMP_CLOSED",
    "ERR_DMP_NOT_CREATED",
    "ERR_DUPLICATE_UNIQUE_ID",
    "ERR_FORMAT",
    "ERR_METADATA",
    "ERR_MISSING_DOCUMENT",
    "ERR_NOT_AUTHORISED",
    "ERR_PS_BLOCKED",
    "ERR_REPLACED_UNKNOWN",
    "ERR_REPOSITORY",
    "ERR_REPOSITORY_METADATA",
    "ERR_TOO_LARGE",
    "ERR_UNKNOWN_PATIENT",
    "FORMAT_CISIS_GENERIC",
    "FORMAT_LAB",
    "FORMAT_PDF_WRAPPED",
    "FORMAT_TEXT_WRAPPED",
    "FORMAT_VSM",
    "INS_OIDS",
    "INVISIBLE_PATIENT",
    "INVISIBLE_REPRESENTANTS_LEGAUX",
    "MASQUE_PS",
    "MAX_CDA_SIZE",
    "MAX_DOCUMENTS_PER_SUBMISSION",
    "MAX_DOCUMENT_SIZE",
    "MAX_MIME_PARTS",
    "MAX_SOAP_SIZE",
    "MAX_SUBMISSION_BYTES",
    "NSMAP",
    "NS_DS",
    "NS_HL7",
    "NS_LCM",
    "NS_QUERY",
    "NS_RIM",
    "NS_RS",
    "NS_SAML",
    "NS_SOAP",
    "NS_WSA",
    "NS_WSSE",
    "NS_XDSB",
    "NS_XML",
    "NS_XOP",
    "NS_XSI",
    "OID_CISIS_TYPE",
    "OID_CLASS_CODE",
    "OID_CONFIDENTIALITY",
    "OID_CONTENT_TYPE",
    "OID_FACILITY_TYPE",
    "OID_FORMAT_CODE",
    "OID_LOINC",
    "OID_PRACTICE_SETTING",
    "OID_PROFESSION",
    "OID_RPPS",
    "OID_SPECIALTY",
    "OID_STRUCTURE",
    "OID_VISIBILITY",
    "PATIENT_HEADER",
    "QUERY_FIND_DOCUMENTS",
    "QUERY_GET_DOCUMENTS",
    "RESPONSE_FAILURE",
    "RESPONSE_SUCCESS",
    "SEVERITY_ERROR",
    "SS_AUTHOR",
    "SS_CLASSIFICATION_NODE",
    "SS_CONTENT_TYPE",
    "SS_PATIENT_ID",
    "SS_SOURCE_ID",
    "SS_UNIQUE_ID",
    "STATUS_APPROVED",
    "STATUS_DEPRECATED",
    "TEMPLATE_XD_LAB",
    "TITLE_HEADER",
    "TYPE_CONSULTATION_REPORT",
    "TYPE_IMAGING_REPORT",
    "TYPE_LAB_REPORT",
    "TYPE_PRESCRIPTION",
    "TYPE_SUMMARY",
    "VISIBILITY_CODES",
    "VISIBILITY_HEADER",
]

NSMAP: Final = {
    "soap": NS_SOAP, "wsa": NS_WSA, "wsse": NS_WSSE, "saml2": NS_SAML, "ds": NS_DS, "xop": NS_XOP,
    "xdsb": NS_XDSB, "rim": NS_RIM, "lcm": NS_LCM, "rs": NS_RS, "query": NS_QUERY, "hl7": NS_HL7,
}

# --- SOAP actions (WS-Addressing) --------------------------------------------------------------------------
ACTION_ITI41: Final = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI41_RESPONSE: Final = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
ACTION_ITI18: Final = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_ITI18_RESPONSE: Final = "urn:ihe:iti:2007:RegistryStoredQueryResponse"

# --- Sender headers ---------------------------------------------------------------------------------------------
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
