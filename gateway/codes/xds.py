"""XDS.b / ebRIM identifiers and the XML namespaces of XDM, ITI-41 and VIHF (IHE ITI TF-3 section 4.2), in one
place for the XDM reader and writer and the DMP bridge.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import Final

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

# --- Object types and associations ---------------------------------------------------------------------------
DOCUMENT_ENTRY: Final = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUBMISSION_SET: Final = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
HAS_MEMBER: Final = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC: Final = "urn:ihe:iti:2007:AssociationType:RPLC"

# --- DocumentEntry classifications and identifiers -------------------------------------------------------------
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

# --- SubmissionSet classifications and identifiers -------------------------------------------------------------
SS_AUTHOR: Final = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE: Final = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID: Final = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID: Final = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID: Final = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"

# --- Statuses and stored queries ---------------------------------------------------------------------------------
STATUS_APPROVED: Final = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED: Final = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
RESPONSE_SUCCESS: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
RESPONSE_FAILURE: Final = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
SEVERITY_ERROR: Final = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
QUERY_FIND_DOCUMENTS: Final = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
QUERY_GET_DOCUMENTS: Final = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
