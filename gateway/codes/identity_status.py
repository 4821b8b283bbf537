"""Identity statuses of the national identity referential (RNIV, R7), in one place.

Only a ``qualifiée`` identity may address a patient mailbox (R4), have documents filed automatically (R10),
feed the DMP or be written into an outgoing document (R7).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from typing import Final

PROVISOIRE: Final = "provisoire"
RECUPEREE: Final = "récupérée"
VALIDEE: Final = "validée"
QUALIFIEE: Final = "qualifiée"
STATUSES: Final = (PROVISOIRE, RECUPEREE, VALIDEE, QUALIFIEE)


def is_qualified(status: str | None) -> bool:
    """R7: the one status that lets the gateway act on an INS without a person."""
    return status == QUALIFIEE
