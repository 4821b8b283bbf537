"""XDS patient ids in HL7 CX form, and the XDS / ebRIM identifiers the XDM reader and writer use (defined in
:mod:`gateway.codes.xds`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

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
    DOCUMENT_ENTRY,
    HAS_MEMBER,
    SS_AUTHOR,
    SS_CONTENT_TYPE,
    SS_PATIENT_ID,
    SS_SOURCE_ID,
    SS_UNIQUE_ID,
    SUBMISSION_SET,
)
from gateway.codes.xds import NS_LCM as LCM
from gateway.codes.xds import NS_RIM as RIM

__all__ = ["DE_AUTHOR", "DE_CLASS_CODE", "DE_CONFIDENTIALITY", "DE_EVENT_CODE", "DE_FACILITY_TYPE", "DE_FORMAT_CODE",
           "DE_PATIENT_ID", "DE_PRACTICE_SETTING", "DE_TYPE_CODE", "DE_UNIQUE_ID", "DOCUMENT_ENTRY", "HAS_MEMBER",
           "LCM", "RIM", "SS_AUTHOR", "SS_CONTENT_TYPE", "SS_PATIENT_ID", "SS_SOURCE_ID", "SS_UNIQUE_ID",
           "SUBMISSION_SET", "cx", "parse_cx"]


def cx(matricule: str, oid: str) -> str:
    """The HL7 CX form of a patient id used by XDS: ``matricule^^^&oid&ISO``."""
    return f"{matricule}^^^&{oid}&ISO"


def parse_cx(value: str | None) -> tuple[str, str] | None:
    """``(id, assigning authority OID)`` from a CX value, or None when it is not of that form."""
    if not value:
        return None
    fields = value.split("^")
    if len(fields) < 4 or not fields[0]:
        return None
    authority = fields[3].split("&")
    if len(authority) < 2 or not authority[1]:
        return None
    return fields[0], authority[1]
