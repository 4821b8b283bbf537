"""DMP codes in one place: access modes (R14) and visibility codes (R16).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from gateway.codes.oids import OID_VISIBILITY


class AccessMode(StrEnum):
    """R14: how deposits of a structure or professional are triggered."""

    MANUAL = "manual"
    PRESENCE = "presence"
    SYSTEMATIC = "systematic"


#: R16 visibility codes (code system :data:`VISIBILITY_SYSTEM`); the base confidentiality stays ``N``.
INVISIBLE_PATIENT: Final = "INVISIBLE_PATIENT"
MASQUE_PS: Final = "MASQUE_PS"
INVISIBLE_REPRESENTANTS_LEGAUX: Final = "INVISIBLE_REPRESENTANTS_LEGAUX"
VISIBILITY_SYSTEM: Final = OID_VISIBILITY
VISIBILITY_CODES: Final = {
    INVISIBLE_PATIENT: "Non visible par le patient",
    MASQUE_PS: "Masqué aux professionnels de santé",
    INVISIBLE_REPRESENTANTS_LEGAUX: "Non visible par les représentants légaux du patient",
}
BASE_CONFIDENTIALITY: Final = "N"
