"""INS matricule syntax and key (R8): 13-character NIR or NIA followed by a 2-digit key.

The INS OIDs live in :mod:`gateway.codes.oids`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re

from gateway.codes.oids import INS_OIDS, OID_NIA, OID_NIR, OID_NIR_DEMO, OID_NIR_TEST, TEST_OIDS

__all__ = ["INS_OIDS", "OID_NIA", "OID_NIR", "OID_NIR_DEMO", "OID_NIR_TEST", "TEST_OIDS", "is_well_formed",
           "key_ok", "nir_key"]

_SHAPE = re.compile(r"^[12378]\d{4}(\d{2}|2A|2B)\d{6}\d{2}$")


def nir_key(nir13: str) -> int:
    """The key of a 13-character NIR: 97 − (NIR mod 97), Corsica's 2A counting as 19 and 2B as 18 (R8)."""
    digits = nir13.upper().replace("2A", "19", 1) if nir13[5:7].upper() == "2A" else nir13
    digits = digits.upper().replace("2B", "18", 1) if nir13[5:7].upper() == "2B" else digits
    return 97 - int(digits) % 97


def is_well_formed(matricule: str) -> bool:
    """Fifteen characters of the NIR shape (sex digit, year, month, department, commune, order, key)."""
    return bool(_SHAPE.match(matricule.upper()))


def key_ok(matricule: str) -> bool:
    """Whether a 15-character matricule is well formed and its last two digits are the right key (R8)."""
    return is_well_formed(matricule) and nir_key(matricule[:13]) == int(matricule[13:])
