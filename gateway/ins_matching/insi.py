"""INSi, the national identity teleservice (R9), behind an interface, and the in-process simulator.

:class:`InsiSimulator` knows a fixed set of test identities (the test patient of the ANS samples, two homonyms,
and an obsolete matricule with its principal one) and answers as the service does: one identity found, none, or
several. With ``[insi] mode = "service"``, :func:`service_for` gives the SOAP client over mutual TLS
(insi_client.py) instead, which speaks to the real teleservice or to ``gateway insi-simulator``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gateway.ins_matching.identities import Traits
from gateway.ins_matching.nir import OID_NIR_TEST
from gateway.ins_matching.normalise import normalise

if TYPE_CHECKING:
    from gateway.config import Config


def same_traits(a: Traits, b: Traits) -> bool:
    """INSi's comparison: the R10 traits after normalisation, and the birth place."""
    left, right = normalise(a), normalise(b)
    return not left.differences(right) and left.birth_place == right.birth_place


@dataclass(frozen=True)
class InsiIdentity:
    matricule: str
    oid: str
    traits: Traits


@dataclass(frozen=True)
class InsiResult:
    """``outcome`` is "found", "none" or "several"; ``identity`` is set when found (principal matricule)."""

    outcome: str
    identity: InsiIdentity | None = None
    #: When the matricule asked about is obsolete, the principal one that replaces it (R8).
    replaced: str | None = None


class InsiService(Protocol):
    async def search(self, traits: Traits) -> InsiResult: ...
    async def search_by_card(self, holder: str, birth_date: str, rank: str = "1") -> InsiResult: ...
    async def verify(self, matricule: str, traits: Traits) -> InsiResult: ...


def _test(matricule: str, name: str, first: str, born: str, sex: str, place: str) -> InsiIdentity:
    return InsiIdentity(matricule, OID_NIR_TEST, Traits(name, first, born, sex, place))


#: The simulator's people. The first is the test patient of ../shared/samples/cda.
TEST_PATIENT = _test("279035121518989", "PAT-TROIS", "DOMINIQUE MARIE-LOUISE", "1979-03-28", "F", "51215")
HOMONYM_A = _test("180077511200168", "MARTIN", "JEAN", "1980-07-01", "M", "75112")
HOMONYM_B = _test("180077511200267", "MARTIN", "JEAN", "1980-07-01", "M", "75112")
PRINCIPAL = _test("285126906900144", "LEGRAND", "CLAIRE", "1985-12-01", "F", "69069")
OBSOLETE_MATRICULE = "785126906900185"  # a former NIA replaced by PRINCIPAL's NIR


@dataclass
class InsiSimulator:
    people: list[InsiIdentity] = field(default_factory=lambda: [TEST_PATIENT, HOMONYM_A, HOMONYM_B, PRINCIPAL])
    obsolete: dict[str, str] = field(default_factory=lambda: {OBSOLETE_MATRICULE: PRINCIPAL.matricule})

    async def search(self, traits: Traits) -> InsiResult:
        hits = [p for p in self.people if same_traits(p.traits, traits)]
        if not hits:
            return InsiResult("none")
        if len(hits) > 1:
            return InsiResult("several")
        return InsiResult("found", hits[0])

    async def search_by_card(self, holder: str, birth_date: str, rank: str = "1") -> InsiResult:
        hits = [p for p in self.people if p.matricule == holder and p.traits.birth_date == birth_date]
        return InsiResult("found", hits[0]) if len(hits) == 1 else InsiResult("none")

    async def verify(self, matricule: str, traits: Traits) -> InsiResult:
        principal = self.obsolete.get(matricule)
        wanted = principal or matricule
        for person in self.people:
            if person.matricule == wanted and same_traits(person.traits, traits):
                return InsiResult("found", person, replaced=wanted if principal else None)
        return InsiResult("none")


def service_for(config: Config) -> InsiService:
    """The INSi the configuration names: the SOAP client over mutual TLS, or the in-process simulator."""
    if config.insi is None:
        return InsiSimulator()
    from gateway.ins_matching.insi_client import InsiClient, client_context

    settings = config.insi
    context = client_context(str(settings.client_certificate), str(settings.client_key), str(settings.ca_file))
    return InsiClient(settings.url, context, settings.timeout)
