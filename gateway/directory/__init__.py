"""The Annuaire Santé (national directory of health professionals): FHIR client, simulator, RCPT check.

SPDX-License-Identifier: GPL-3.0-or-later
"""
