"""The rule numbers of docs/domain.md (R1–R18), the value every decision and event names (R18).

A :class:`Rule` is a ``str`` (``Rule.R1 == "R1"``), so it is stored and logged as the bare number.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from enum import StrEnum


class Rule(StrEnum):
    R1 = "R1"  # only a professional starts a conversation with a patient (pharmacy exception)
    R2 = "R2"  # [FIN] / X-MSS-MES: FIN ends it
    R3 = "R3"  # replies forbidden or allowed by the professional
    R4 = "R4"  # a patient address only for a qualifiée identity
    R5 = "R5"  # conversations per (professional mailbox, INS), every change traced
    R6 = "R6"  # delivery status and disposition notifications
    R7 = "R7"  # INS traits and identity statuses
    R8 = "R8"  # matricule shape, key, OIDs, obsolete matricules
    R9 = "R9"  # INSi teleservice
    R10 = "R10"  # automatic filing only on a qualified INS with matching traits
    R11 = "R11"  # a received INS never qualifies an identity
    R12 = "R12"  # only the author deposits in the DMP
    R13 = "R13"  # what is deposited automatically
    R14 = "R14"  # access modes: manual, patient present, systematic
    R15 = "R15"  # deposit constraints, linked deposits, replacements
    R16 = "R16"  # visibility at deposit
    R17 = "R17"  # DMP state and authorisations
    R18 = "R18"  # everything is traced
