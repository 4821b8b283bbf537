"""Object identifiers and codes of the French health information system, in one place (domain.md 3 and 5).

INS OIDs (R8), national identifiers of professionals and structures, the code systems and the type and
format codes the XDM reader, the CDA reader, the record and the DMP bridge all use.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import Final

# --- INS (R8) ----------------------------------------------------------------------------------------------
OID_NIR: Final = "1.2.250.1.213.1.4.8"
OID_NIA: Final = "1.2.250.1.213.1.4.9"
OID_NIR_TEST: Final = "1.2.250.1.213.1.4.10"
OID_NIR_DEMO: Final = "1.2.250.1.213.1.4.11"
INS_OIDS: Final = frozenset({OID_NIR, OID_NIA, OID_NIR_TEST, OID_NIR_DEMO})
#: Test and demonstration INS: real identities only when ``rules.allow_test_identities`` says so.
TEST_OIDS: Final = frozenset({OID_NIR_TEST, OID_NIR_DEMO})

# --- Professionals and structures ---------------------------------------------------------------------------
#: National professional id (``8`` + RPPS, or ADELI forms).
OID_RPPS: Final = "1.2.250.1.71.4.2.1"
#: National structure id (FINESS / SIRET forms).
OID_STRUCTURE: Final = "1.2.250.1.71.4.2.2"
OID_PROFESSION: Final = "1.2.250.1.71.1.2.7"
OID_SPECIALTY: Final = "1.2.250.1.71.4.2.5"
OID_FACILITY_TYPE: Final = "1.2.250.1.71.4.2.4"

# --- Code systems ---------------------------------------------------------------------------------------------
OID_LOINC: Final = "2.16.840.1.113883.6.1"
OID_CONFIDENTIALITY: Final = "2.16.840.1.113883.5.25"
OID_VISIBILITY: Final = "1.2.250.1.213.1.1.4.13"  # R16
OID_CISIS_TYPE: Final = "1.2.250.1.213.1.1.4.12"  # SYNTH and other French type codes
OID_CLASS_CODE: Final = "1.2.250.1.213.1.1.4.1"
OID_PRACTICE_SETTING: Final = "1.2.250.1.213.1.1.4.9"
OID_CONTENT_TYPE: Final = "1.2.250.1.213.2.2"
OID_FORMAT_CODE: Final = "1.3.6.1.4.1.19376.1.2.3"

# --- CDA templates ---------------------------------------------------------------------------------------------
TEMPLATE_CR_BIO: Final = "1.2.250.1.213.1.1.1.55"
TEMPLATE_VSM: Final = "1.2.250.1.213.1.1.1.13"
TEMPLATE_XD_LAB: Final = "1.3.6.1.4.1.19376.1.3.3"

# --- Type and format codes (domain.md section 5, R13) -------------------------------------------------------------
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
