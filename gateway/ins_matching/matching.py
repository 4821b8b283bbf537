"""Document-to-patient matching (R10, R11): file automatically, or send to review with an ANS error code.

Pure: :func:`match` takes a CDA header and a way to look identities up by matricule, and returns a decision
value (style.md: decisions are values); the caller records it. A document is filed only when its INS matricule
(right key, accepted OID) names a ``qualifiée`` identity whose traits agree after normalisation. Everything
else is a :class:`Review` carrying one of the ANS integration codes: never guess a patient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.codes.identity_status import QUALIFIEE
from gateway.codes.rules import Rule
from gateway.documents.cda import CdaHeader
from gateway.ins_matching.nir import INS_OIDS, TEST_OIDS, key_ok
from gateway.ins_matching.normalise import normalise

#: ANS integration error codes (domain.md R10).
VERSION_PROBLEM = 900
AUTHOR_NOT_ALLOWED = 901
UNKNOWN_PATIENT = 902
NO_INS = 903
INS_MISMATCH = 904
TRAITS_INCOMPLETE = 905
OTHER = 906
CODES = {
    VERSION_PROBLEM: "wrong document version",
    AUTHOR_NOT_ALLOWED: "author not allowed",
    UNKNOWN_PATIENT: "unknown patient",
    NO_INS: "INS absent",
    INS_MISMATCH: "INS or traits do not match the stored identity",
    TRAITS_INCOMPLETE: "matricule present but traits incomplete",
    OTHER: "other",
}


class IdentityLike(Protocol):
    """What matching needs of an identity; :class:`gateway.store.models.Identity` has exactly these names."""

    @property
    def matricule(self) -> str: ...
    @property
    def oid(self) -> str: ...
    @property
    def birth_name(self) -> str: ...
    @property
    def first_names(self) -> str: ...
    @property
    def first_name(self) -> str: ...
    @property
    def birth_date(self) -> str: ...
    @property
    def sex(self) -> str: ...
    @property
    def birth_place(self) -> str: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class IdentityRecord:
    """A plain identity for tests and callers without the store."""

    matricule: str
    oid: str
    birth_name: str
    first_names: str
    first_name: str
    birth_date: str
    sex: str
    birth_place: str
    status: str
    id: int | None = None


@dataclass(frozen=True)
class FileTo:
    """File the document into ``identity``'s record (R10)."""

    identity: IdentityLike
    rule: str = Rule.R10
    note: str | None = None


@dataclass(frozen=True)
class Review:
    """Send the document to the review queue with an ANS code and a sentence; ``candidate`` per R11."""

    code: int
    reason: str
    rule: str = Rule.R10
    candidate: IdentityLike | None = None

    @property
    def label(self) -> str:
        return CODES.get(self.code, "other")


Decision = FileTo | Review
Lookup = Callable[[str], IdentityLike | None] | Mapping[str, IdentityLike]


def _find(lookup: Lookup, matricule: str) -> IdentityLike | None:
    if isinstance(lookup, Mapping):
        return lookup.get(matricule)
    return lookup(matricule)


def match(header: CdaHeader, lookup: Lookup, *, allow_test_oids: bool = False,
          author_allowed: Callable[[CdaHeader], bool] | None = None,
          filed_version: Callable[[str], int | None] | None = None,
          compare_birth_place: bool = True) -> Decision:
    """Decide where a received document goes (R10, R11).

    ``lookup`` maps a matricule to the repository's identity (an obsolete matricule may lead to its principal
    identity, R8). ``allow_test_oids`` accepts the INS-NIR test and demonstration OIDs (never in production).
    ``author_allowed`` and ``filed_version`` (the highest version already filed for a setId; an older version
    is refused, the same one is a harmless duplicate) are optional checks. ``compare_birth_place``: R7's fifth
    trait, the INSEE code of the birth place, must agree whenever both the document and the identity carry it
    (``[documents] compare_birth_place = false`` relaxes this to the four traits R10 names).
    """
    if header.version is None or header.version < 1:
        return Review(VERSION_PROBLEM, "The document has no valid versionNumber (a positive integer).")
    if filed_version is not None and header.set_id is not None:
        filed = filed_version(str(header.set_id))
        if filed is not None and filed > header.version:
            return Review(VERSION_PROBLEM, f"Version {header.version} arrived after version {filed} of the same "
                                           "document (setId) was filed: it is older than what the record has.")
    if author_allowed is not None and not author_allowed(header):
        return Review(AUTHOR_NOT_ALLOWED, "The document's author is not allowed to send documents here.")
    if header.patients != 1:
        return Review(OTHER, f"The document names {header.patients} patients (recordTarget); exactly one is needed.")
    patient = header.patient
    matricules = {ii.extension for ii in patient.ins}
    if not patient.ins or None in matricules:
        return Review(NO_INS, "The document carries no INS (no patient id under an INS OID).")
    if len(matricules) > 1:
        return Review(OTHER, "The document carries several different INS matricules for its patient.")
    matricule, oid = patient.ins[0].extension or "", patient.ins[0].root
    if oid in TEST_OIDS and not allow_test_oids:
        return Review(OTHER, "The INS is under a test or demonstration OID, refused unless test identities are "
                             "allowed (R8).")
    if oid not in INS_OIDS or not key_ok(matricule):
        return Review(INS_MISMATCH, "The INS matricule is malformed or its key is wrong (R8).")
    traits = normalise(patient)
    if traits.missing:
        return Review(TRAITS_INCOMPLETE, f"The INS is present but traits are missing: {', '.join(traits.missing)}.")
    identity = _find(lookup, matricule)
    if identity is None:
        return Review(UNKNOWN_PATIENT, "No identity of the repository has this INS matricule.")
    if identity.oid != oid and not ({identity.oid, oid} <= TEST_OIDS):
        return Review(INS_MISMATCH, "The document's INS OID (NIR/NIA) differs from the stored identity's.",
                      candidate=identity)
    stored = normalise(identity)
    differences = traits.differences(stored)
    if compare_birth_place and traits.birth_place and stored.birth_place and traits.birth_place != stored.birth_place:
        differences = (*differences, "birth place")  # R7: the fifth trait, when both sides carry it
    if differences:
        return Review(INS_MISMATCH, f"The document's traits differ from the stored identity: "
                                    f"{', '.join(differences)}.", candidate=identity)
    if identity.status != QUALIFIEE:
        return Review(OTHER, f"The identity is '{identity.status}', not 'qualifiée': the document does not "
                             "qualify it; a person must check it and INSi verification remains required (R11).",
                      rule=Rule.R11, candidate=identity)
    note = "obsolete matricule: filed under the principal identity (R8)" if identity.matricule != matricule else None
    return FileTo(identity, note=note)
