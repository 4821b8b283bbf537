"""HL7 v2 codes of the ANS volet "transmission de documents CDA R2 en HL7 v2", in one place.

Message types (MSH-9), the MetaDMPMSS table of OBX-3 (destinations and DMP visibility), the participation
roles of PRT-4, and the tables of the ACK: MSA-1 acknowledgement codes and HL7 table 0357 (ERR-3).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import Final

ORU_R01: Final = "ORU^R01"
MDM_T02: Final = "MDM^T02"
MDM_T10: Final = "MDM^T10"
#: What the listener accepts; MDM^T04 (document status change) and others are refused with 201.
MESSAGE_TYPES: Final = frozenset({ORU_R01, MDM_T02, MDM_T10})
#: MSH-12 versions of the volet: 2.5 for ORU, 2.6 for MDM (2.5.1 is read as 2.5).
VERSIONS: Final = frozenset({"2.5", "2.5.1", "2.6"})

META_SYSTEM: Final = "MetaDMPMSS"
DESTDMP: Final = "DESTDMP"
DESTMSSANTEPS: Final = "DESTMSSANTEPS"
DESTMSSANTEPAT: Final = "DESTMSSANTEPAT"
ACK_RECEPTION: Final = "ACK_RECEPTION"
ACK_LECTURE: Final = "ACK_LECTURE"
ACK_LECTURE_MSS: Final = "ACK_LECTURE_MSS"
MASQUE_PS: Final = "MASQUE_PS"
INVISIBLE_PATIENT: Final = "INVISIBLE_PATIENT"
INVISIBLE_REP_LEGAUX: Final = "INVISIBLE_REP_LEGAUX"
CONNEXION_SECRETE: Final = "CONNEXION_SECRETE"  # noqa: S105 (a MetaDMPMSS code, not a secret)
MODIF_CONF_CODE: Final = "MODIF_CONF_CODE"
CORPSMAIL_PS: Final = "CORPSMAIL_PS"
CORPSMAIL_PATIENT: Final = "CORPSMAIL_PATIENT"
YES_NO: Final = frozenset({DESTDMP, DESTMSSANTEPS, DESTMSSANTEPAT, ACK_RECEPTION, ACK_LECTURE, ACK_LECTURE_MSS,
                           MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REP_LEGAUX, CONNEXION_SECRETE,
                           MODIF_CONF_CODE})
BODIES: Final = frozenset({CORPSMAIL_PS, CORPSMAIL_PATIENT})
#: MetaDMPMSS visibility codes → the DMP's (R16, code system 1.2.250.1.213.1.1.4.13).
DMP_VISIBILITY: Final = {MASQUE_PS: "MASQUE_PS", INVISIBLE_PATIENT: "INVISIBLE_PATIENT",
                         INVISIBLE_REP_LEGAUX: "INVISIBLE_REPRESENTANTS_LEGAUX"}

#: PRT-4 participations: a recipient (RCT, "Results Copies To") and the reply address (REPLY).
PRT_RECIPIENT: Final = "RCT"
PRT_REPLY: Final = "REPLY"

AA: Final = "AA"
AE: Final = "AE"
AR: Final = "AR"

#: HL7 table 0357 (messageErrorCondition), used in ERR-3.
SEGMENT_SEQUENCE: Final = ("100", "Segment sequence error")
REQUIRED_FIELD: Final = ("101", "Required field missing")
DATA_TYPE: Final = ("102", "Data type error")
TABLE_VALUE: Final = ("103", "Table value not found")
UNSUPPORTED_TYPE: Final = ("200", "Unsupported message type")
UNSUPPORTED_EVENT: Final = ("201", "Unsupported event code")
UNSUPPORTED_VERSION: Final = ("203", "Unsupported version")
APPLICATION: Final = ("207", "Application internal error")
OTHER: Final = ("199", "Other HL7 Error")
