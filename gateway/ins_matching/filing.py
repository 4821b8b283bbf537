"""Filing decisions for the documents a message carries (R10, R11): one outcome per extracted document.

The documents are read by :mod:`gateway.documents.pipeline`; here each is matched against the identity
repository (:func:`gateway.ins_matching.matching.match`), after checking that the XDM metadata names the same
patient as the CDA. :mod:`gateway.ins_matching.record` stores the outcomes.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.documents.cda import CdaHeader
from gateway.documents.pipeline import ExtractedDocument, extract
from gateway.ins_matching.matching import INS_MISMATCH, OTHER, Decision, Lookup, Review, match


@dataclass(frozen=True)
class Outcome:
    document: ExtractedDocument
    decision: Decision


def decide(document: ExtractedDocument, lookup: Lookup, *, allow_test_oids: bool = False,
           author_allowed: Callable[[CdaHeader], bool] | None = None,
           filed_version: Callable[[str], int | None] | None = None, compare_birth_place: bool = True) -> Decision:
    """The filing decision for one extracted document (R10, R11); an unreadable one is reviewed (906)."""
    if document.header is None:
        return Review(OTHER, document.problem or "The document could not be read.")
    declared = document.declared_patient
    patient = document.header.patient
    if declared is not None and patient.ins and declared != (patient.matricule, patient.oid):
        return Review(INS_MISMATCH, "The XDM metadata's patient id differs from the INS in the CDA header.")
    return match(document.header, lookup, allow_test_oids=allow_test_oids, author_allowed=author_allowed,
                 filed_version=filed_version, compare_birth_place=compare_birth_place)


def outcomes(documents: list[ExtractedDocument], lookup: Lookup, *, allow_test_oids: bool = False,
             author_allowed: Callable[[CdaHeader], bool] | None = None,
             filed_version: Callable[[str], int | None] | None = None) -> list[Outcome]:
    return [Outcome(d, decide(d, lookup, allow_test_oids=allow_test_oids, author_allowed=author_allowed,
                              filed_version=filed_version)) for d in documents]


def process_message(raw: bytes, lookup: Lookup, *, allow_test_oids: bool = False,
                    author_allowed: Callable[[CdaHeader], bool] | None = None,
                    filed_version: Callable[[str], int | None] | None = None,
                    validate: bool = True) -> list[Outcome]:
    """MIME → XDM → CDA → match for one received message; one outcome per CDA found (or per unreadable part)."""
    return outcomes(extract(raw, validate=validate), lookup, allow_test_oids=allow_test_oids,
                    author_allowed=author_allowed, filed_version=filed_version)
