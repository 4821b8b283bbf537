"""The Annuaire Santé's FHIR R4 resources as the gateway reads them: pure, bounded, no I/O.

The national directory (API Annuaire Santé, ANS implementation guide "Annuaire Santé FHIR") publishes
``Practitioner`` (identity, national id ``8`` + RPPS under ``urn:oid:1.2.250.1.71.4.2.1``, qualifications),
``PractitionerRole`` (a practice situation: profession TRE_G15 in ``code``, specialty TRE_R38 in ``specialty``,
the ``organization`` it is exercised in) and ``Organization`` (FINESS/SIRET structure ids, name, address).
A secure-messaging mailbox is a ``telecom`` with ``system = email`` marked as MSSanté (the TRE_R256 ``MSSANTE``
messaging type, and the ``as-ext-mailbox-mss-metadata`` extension carrying its TRE_R257 type PER/ORG/APP/CAB
and the red-list flag). A red-listed mailbox is not published.

Readers here never trust the shape: every field is checked for its type, lists are capped, and a JSON
document is refused before parsing when it nests deeper than :data:`MAX_DEPTH` (the parser recurses).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# --- Systems, extensions and search parameters of the ANS guide (one place) ----------------------------------
SYSTEM_IDNAT_PS = "urn:oid:1.2.250.1.71.4.2.1"
SYSTEM_RPPS = "https://rpps.esante.gouv.fr"
SYSTEM_IDNAT_STRUCTURE = "urn:oid:1.2.250.1.71.4.2.2"
SYSTEM_FINESS = "https://finess.esante.gouv.fr"
SYSTEM_SIRET = "https://sirene.fr"
SYSTEM_PROFESSION = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
SYSTEM_SPECIALTY = "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
SYSTEM_MESSAGING_TYPE = "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
SYSTEM_MAILBOX_TYPE = "https://mos.esante.gouv.fr/NOS/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL"
EXT_MAILBOX_METADATA = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata"
EXT_EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-email-type"
MESSAGING_MSSANTE = "MSSANTE"
#: The guide's search parameter for a mailbox address (on Practitioner, PractitionerRole, Organization).
SEARCH_MAILBOX = "mailbox-mss"
MAILBOX_TYPES = frozenset({"PER", "ORG", "APP", "CAB"})

# --- Limits -------------------------------------------------------------------------------------------------
MAX_DEPTH = 32
MAX_LIST = 50  # identifiers, names, telecoms, codings, extensions... of one resource
MAX_TEXT = 300

#: Labels of the TRE_G15 professions and TRE_R38 specialties met most, for answers that give a code alone.
PROFESSION_LABELS: Mapping[str, str] = {
    "10": "Médecin", "21": "Pharmacien", "40": "Chirurgien-Dentiste", "50": "Sage-Femme", "60": "Infirmier",
    "70": "Masseur-Kinésithérapeute", "91": "Orthophoniste",
}
SPECIALTY_LABELS: Mapping[str, str] = {
    "SM01": "Anatomie et cytologie pathologiques", "SM02": "Anesthésie-réanimation", "SM03": "Biologie médicale",
    "SM04": "Cardiologie et maladies vasculaires", "SM26": "Qualifié en médecine générale",
    "SM44": "Radio-diagnostic", "SM54": "Médecine générale",
}


class AnswerRefused(ValueError):
    """A directory answer is not a readable FHIR document within the limits (size, depth, entries)."""


@dataclass(frozen=True)
class Coded:
    code: str
    system: str
    display: str = ""


@dataclass(frozen=True)
class Mailbox:
    """A published MSSanté mailbox: its address and TRE_R257 type (PER, ORG, APP, CAB; empty when not given)."""

    address: str
    kind: str = ""


@dataclass(frozen=True)
class Organisation:
    id: str
    identifier: str  # idNatSt (FINESS or SIRET form), else the first identifier given
    name: str
    city: str = ""
    postal_code: str = ""
    mailboxes: tuple[Mailbox, ...] = ()


@dataclass(frozen=True)
class Role:
    """A practice situation (PractitionerRole): profession and specialty exercised in one organisation."""

    id: str
    practitioner_id: str
    organisation: Organisation | None = None
    profession: Coded | None = None
    specialty: Coded | None = None
    mailboxes: tuple[Mailbox, ...] = ()


@dataclass(frozen=True)
class Practitioner:
    id: str
    national_id: str  # "8" + RPPS
    family: str
    given: str
    profession: Coded | None = None
    specialty: Coded | None = None
    mailboxes: tuple[Mailbox, ...] = ()
    roles: tuple[Role, ...] = field(default=())

    @property
    def rpps(self) -> str:
        return self.national_id[1:] if self.national_id.startswith("8") else self.national_id

    def role_in(self, structure_id: str) -> Role | None:
        """The practice situation in ``structure_id``, else the first one with a profession."""
        for role in self.roles:
            if role.organisation is not None and role.organisation.identifier == structure_id:
                return role
        return next((r for r in self.roles if r.profession is not None), self.roles[0] if self.roles else None)

    def all_mailboxes(self) -> tuple[Mailbox, ...]:
        seen: dict[str, Mailbox] = {}
        for box in (*self.mailboxes, *(b for r in self.roles for b in r.mailboxes)):
            seen.setdefault(box.address, box)
        return tuple(seen.values())

    def as_json(self) -> dict[str, Any]:
        """What ``gateway directory`` prints (public directory data only)."""
        def coded(c: Coded | None) -> dict[str, str] | None:
            return None if c is None else {"code": c.code, "display": c.display}
        return {
            "national_id": self.national_id, "rpps": self.rpps, "family": self.family, "given": self.given,
            "profession": coded(self.profession), "specialty": coded(self.specialty),
            "mailboxes": [{"address": b.address, "type": b.kind} for b in self.all_mailboxes()],
            "roles": [{"profession": coded(r.profession), "specialty": coded(r.specialty),
                       "organisation": None if r.organisation is None else {
                           "identifier": r.organisation.identifier, "name": r.organisation.name,
                           "city": r.organisation.city}} for r in self.roles],
        }


# --- Bounded JSON ---------------------------------------------------------------------------------------------
_STRUCTURE = re.compile(rb'["\[\]{}]')
#: The rest of a JSON string after its opening quote; possessive, so a failure never backtracks.
_STRING_REST = re.compile(rb'(?:[^"\\]++|\\.)*+"', re.DOTALL)


def json_depth(body: bytes, limit: int) -> int:
    """The nesting depth of a JSON text in one forward pass (strings skipped whole, no backtracking, no
    recursion); stops counting past ``limit``. An unterminated string ends the count (the parser refuses it)."""
    depth = deepest = 0
    pos = 0
    while (match := _STRUCTURE.search(body, pos)) is not None:
        char = body[match.start()]
        pos = match.end()
        if char == 0x22:
            rest = _STRING_REST.match(body, pos)
            if rest is None:
                break
            pos = rest.end()
        elif char in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def load_json(body: bytes, max_bytes: int) -> Any:
    """Parse ``body`` after checking its size and nesting depth without recursion."""
    if len(body) > max_bytes:
        raise AnswerRefused(f"The directory's answer is larger than {max_bytes} bytes.")
    if json_depth(body, MAX_DEPTH) > MAX_DEPTH:
        raise AnswerRefused(f"The directory's answer nests deeper than {MAX_DEPTH} levels.")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise AnswerRefused(f"The directory's answer is not JSON: {exc}.") from None


# --- Field readers ------------------------------------------------------------------------------------------
def _list(value: Any) -> list[Any]:
    return value[:MAX_LIST] if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in _list(value) if isinstance(v, dict)]


def _text(value: Any) -> str:
    return value.strip()[:MAX_TEXT] if isinstance(value, str) else ""


def _codings(concepts: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for concept in concepts:
        if isinstance(concept, dict):
            yield from _dicts(concept.get("coding"))


def _coded(concepts: Iterable[Any], system: str, labels: Mapping[str, str]) -> Coded | None:
    for coding in _codings(concepts):
        code = _text(coding.get("code"))
        if _text(coding.get("system")) == system and code:
            return Coded(code, system, _text(coding.get("display")) or labels.get(code, code))
    return None


def _extensions(value: Any) -> list[dict[str, Any]]:
    return _dicts(value.get("extension")) if isinstance(value, dict) else []


def mailboxes(telecoms: Any) -> tuple[Mailbox, ...]:
    """The published MSSanté mailboxes among ``telecom`` (red-listed ones are left out)."""
    found = []
    for telecom in _dicts(telecoms):
        address = _text(telecom.get("value")).lower()
        if _text(telecom.get("system")) != "email" or "@" not in address:
            continue
        mss, kind, red = False, "", False
        for ext in _extensions(telecom):
            url = _text(ext.get("url"))
            coding = ext.get("valueCoding")
            if isinstance(coding, dict) and _text(coding.get("code")) == MESSAGING_MSSANTE:
                mss = True
            if url == EXT_MAILBOX_METADATA:
                mss = True
                for sub in _extensions(ext):
                    if _text(sub.get("url")) == "type":
                        typed = _coded([sub.get("valueCodeableConcept")], SYSTEM_MAILBOX_TYPE, {})
                        kind = typed.code if typed is not None and typed.code in MAILBOX_TYPES else ""
                    elif _text(sub.get("url")) == "listeRouge":
                        red = sub.get("valueBoolean") is True
        if mss and not red:
            found.append(Mailbox(address, kind))
    return tuple(found)


def _identifier(resource: Mapping[str, Any], systems: Sequence[str]) -> str:
    identifiers = _dicts(resource.get("identifier"))
    for system in systems:
        for ident in identifiers:
            if _text(ident.get("system")) == system and _text(ident.get("value")):
                return _text(ident.get("value"))
    return ""


def _reference_id(value: Any, kind: str) -> str:
    ref = _text(value.get("reference")) if isinstance(value, dict) else ""
    head, _, tail = ref.rstrip("/").rpartition("/")
    return tail if head.endswith(kind) else ""


def organisation(resource: Mapping[str, Any]) -> Organisation:
    address = next(iter(_dicts(resource.get("address"))), {})
    return Organisation(
        _text(resource.get("id")),
        _identifier(resource, (SYSTEM_IDNAT_STRUCTURE, SYSTEM_FINESS, SYSTEM_SIRET))
        or next((_text(i.get("value")) for i in _dicts(resource.get("identifier")) if _text(i.get("value"))), ""),
        _text(resource.get("name")), _text(address.get("city")), _text(address.get("postalCode")),
        mailboxes(resource.get("telecom")))


def practitioner(resource: Mapping[str, Any], roles: Sequence[Role] = ()) -> Practitioner | None:
    """A Practitioner with the roles given; None without a national id (the gateway keys on it)."""
    national_id = _identifier(resource, (SYSTEM_IDNAT_PS,))
    if not national_id:
        rpps = _identifier(resource, (SYSTEM_RPPS,))
        national_id = f"8{rpps}" if rpps else ""
    if not national_id:
        return None
    names = _dicts(resource.get("name"))
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    given = " ".join(_text(g) for g in _list(name.get("given")) if _text(g))
    qualifications = [q.get("code") for q in _dicts(resource.get("qualification"))]
    return Practitioner(
        _text(resource.get("id")), national_id, _text(name.get("family")), given,
        _coded(qualifications, SYSTEM_PROFESSION, PROFESSION_LABELS),
        _coded(qualifications, SYSTEM_SPECIALTY, SPECIALTY_LABELS),
        mailboxes(resource.get("telecom")), tuple(roles))


def role(resource: Mapping[str, Any], organisations: Mapping[str, Organisation]) -> Role:
    org_id = _reference_id(resource.get("organization"), "Organization")
    return Role(_text(resource.get("id")), _reference_id(resource.get("practitioner"), "Practitioner"),
                organisations.get(org_id),
                _coded(_list(resource.get("code")), SYSTEM_PROFESSION, PROFESSION_LABELS),
                _coded(_list(resource.get("specialty")), SYSTEM_SPECIALTY, SPECIALTY_LABELS),
                mailboxes(resource.get("telecom")))


def bundle_resources(bundle: Any, max_entries: int) -> tuple[list[dict[str, Any]], str | None]:
    """The resources of a searchset Bundle and its ``next`` link; refused past ``max_entries`` entries."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        kind = bundle.get("resourceType") if isinstance(bundle, dict) else type(bundle).__name__
        raise AnswerRefused(f"The directory answered a {str(kind)[:40]!r}, not a Bundle.")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise AnswerRefused("The directory's Bundle has no entry list.")
    if len(entries) > max_entries:
        raise AnswerRefused(f"The directory's Bundle has more than {max_entries} entries.")
    resources = [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    following = next((_text(link.get("url")) for link in _dicts(bundle.get("link"))
                      if link.get("relation") == "next"), None)
    return resources, following or None


def assemble(resources: Iterable[Mapping[str, Any]]) -> list[Practitioner]:
    """Practitioners with their roles and the roles' organisations, from resources of any of the three types."""
    orgs: dict[str, Organisation] = {}
    raw_roles: list[Mapping[str, Any]] = []
    raw_practitioners: dict[str, Mapping[str, Any]] = {}
    for res in resources:
        kind = res.get("resourceType")
        if kind == "Organization":
            org = organisation(res)
            orgs[org.id] = org
        elif kind == "PractitionerRole":
            raw_roles.append(res)
        elif kind == "Practitioner":
            raw_practitioners.setdefault(_text(res.get("id")), res)
    by_practitioner: dict[str, list[Role]] = {}
    for raw in raw_roles:
        if raw.get("active") is False:
            continue
        r = role(raw, orgs)
        by_practitioner.setdefault(r.practitioner_id, []).append(r)
    found = []
    for pid, raw_p in raw_practitioners.items():
        if raw_p.get("active") is False:
            continue
        p = practitioner(raw_p, by_practitioner.get(pid, ()))
        if p is not None:
            found.append(p)
    return found


def organisations(resources: Iterable[Mapping[str, Any]]) -> list[Organisation]:
    return [organisation(r) for r in resources if r.get("resourceType") == "Organization"
            and r.get("active") is not False]
