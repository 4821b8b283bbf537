"""Deposit rules R7 and R12–R17 as pure functions: inputs in, a :class:`Decision` out, no I/O.

Every decision carries its rule number, a short code for machines and a sentence for people, so that the
caller records it in the event trail (R18) without re-deriving anything.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from gateway.codes.dmp import AccessMode
from gateway.codes.identity_status import is_qualified
from gateway.codes.rules import Rule
from gateway.dmp_bridge import constants as c
from gateway.documents.cda import CdaHeader, Code

#: Clock skew tolerated when checking that a document date is not in the future (R15).
CLOCK_SKEW = timedelta(minutes=5)

#: R13: kinds deposited automatically, by type code (domain.md section 5).
DEPOSITED_TYPES: frozenset[str] = frozenset({
    c.TYPE_LAB_REPORT, c.TYPE_IMAGING_REPORT, c.TYPE_CONSULTATION_REPORT, c.TYPE_PRESCRIPTION, c.TYPE_SUMMARY,
})
#: R13: kinds never deposited, with the reason a person reads (LOINC or CI-SIS codes).
NOT_DEPOSITED_TYPES: Mapping[str, str] = {
    "11369-6": "vaccination booklet entries are not deposited",
    "8716-3": "vital signs are not deposited",
    "CERFA": "administrative forms (CERFA) are not deposited",
    "CERT_DECL": "administrative forms (CERFA) are not deposited",
    "QUEST": "questionnaires and scores are not deposited",
    "NOTE": "personal notes are not deposited",
    "TASK": "tasks are not deposited",
}


DEFAULT_PROFESSION = Code("10", c.OID_PROFESSION, "Médecin")
DEFAULT_SPECIALTY = Code("SM26", c.OID_SPECIALTY, "Qualifié en médecine générale")
DEFAULT_FACILITY = Code("SA07", c.OID_FACILITY_TYPE, "Cabinet individuel")
DEFAULT_PRACTICE_SETTING = Code("AMBULATOIRE", c.OID_PRACTICE_SETTING, "Ambulatoire")
#: VIHF Secteur_Activite (the sample DMP request carries ``SA25^1.2.250.1.71.4.2.4``).
DEFAULT_ACTIVITY_SECTOR = Code("SA07", c.OID_FACILITY_TYPE, "Cabinet individuel")
DEFAULT_CONTENT_TYPE = Code("04", c.OID_CONTENT_TYPE, "Hospitalisation de jour")

#: Labels of the codes a configuration names most often, used when it gives a code without its label.
PROFESSION_LABELS: Mapping[str, str] = {
    "10": "Médecin", "21": "Pharmacien", "40": "Chirurgien-Dentiste", "50": "Sage-Femme", "60": "Infirmier",
    "70": "Masseur-Kinésithérapeute", "91": "Orthophoniste",
}
SPECIALTY_LABELS: Mapping[str, str] = {
    "SM26": "Qualifié en médecine générale", "SM54": "Médecine générale", "SM44": "Radio-diagnostic",
    "SM05": "Biologie médicale",
}
SECTOR_LABELS: Mapping[str, str] = {
    "SA01": "Etablissement public de santé", "SA07": "Cabinet individuel", "SA08": "Cabinet de groupe",
    "SA25": "Laboratoire de biologie médicale",
}
CONTENT_TYPE_LABELS: Mapping[str, str] = {"04": "Hospitalisation de jour"}


def labelled(code: str, system: str, label: str, labels: Mapping[str, str]) -> Code:
    """A configured code with its label: the one given, else the known one, else the code itself."""
    return Code(code, system, label or labels.get(code, code))


@dataclass(frozen=True)
class Decision:
    """One rule's verdict: the rule, whether the deposit may go on, a code and a readable reason."""

    rule: str
    allowed: bool
    code: str
    reason: str

    def as_detail(self) -> dict[str, object]:
        return {"rule": self.rule, "allowed": self.allowed, "code": self.code, "reason": self.reason}


def allow(rule: str, code: str, reason: str) -> Decision:
    return Decision(rule, True, code, reason)


def refuse(rule: str, code: str, reason: str) -> Decision:
    return Decision(rule, False, code, reason)


@dataclass(frozen=True)
class Professional:
    """A professional of the structure, as the DMP knows them (VIHF subject, XDS author)."""

    national_id: str  # "8" + RPPS
    family: str
    given: str
    mailbox: str = ""  # the professional's PER mailbox address, if any
    profession: Code = DEFAULT_PROFESSION
    specialty: Code = DEFAULT_SPECIALTY
    #: The structure of the practice situation the Annuaire Santé publishes for this author (XDS
    #: authorInstitution); None: the structure hosting the gateway (see gateway/dmp_bridge/authors.py).
    institution: Structure | None = None

    def xcn(self) -> str:
        """HL7 v2 XCN as the DMP wants it for authorPerson and legalAuthenticator."""
        return f"{self.national_id}^{self.family}^{self.given}^^^^^^&{c.OID_RPPS}&ISO^D^^^IDNPS"


@dataclass(frozen=True)
class Structure:
    """The structure hosting the gateway: author institution, VIHF Identifiant_Structure, submission source."""

    identifier: str  # FINESS, SIRET or the DMP's structure id
    name: str
    source_id: str  # OID root of submission sets (XDSSubmissionSet.sourceId)
    facility_type: Code = DEFAULT_FACILITY
    practice_setting: Code = DEFAULT_PRACTICE_SETTING
    activity_sector: Code = DEFAULT_ACTIVITY_SECTOR
    content_type: Code = DEFAULT_CONTENT_TYPE

    def xon(self) -> str:
        return f"{self.name}^^^^^&{c.OID_STRUCTURE}&ISO^IDNST^^^{self.identifier}"


@dataclass(frozen=True)
class DepositPolicy:
    """The structure's deposit settings (R13, R14, R16): what the configuration says."""

    structure: Structure
    professionals: tuple[Professional, ...] = ()
    default_mode: AccessMode = AccessMode.SYSTEMATIC
    #: R14 per mailbox address (professional, organisational or applicative mailbox).
    modes: Mapping[str, AccessMode] = field(default_factory=dict)
    deposited_types: frozenset[str] = DEPOSITED_TYPES
    default_visibility: frozenset[str] = frozenset()
    default_title: str = "Document déposé automatiquement"
    max_size: int = c.MAX_DOCUMENT_SIZE

    def professional(self, national_id: str) -> Professional | None:
        return next((p for p in self.professionals if p.national_id == national_id), None)

    def professional_by_mailbox(self, address: str) -> Professional | None:
        address = address.lower()
        return next((p for p in self.professionals if p.mailbox.lower() == address), None)

    def mode_for(self, address: str) -> AccessMode:
        return self.modes.get(address.lower(), self.default_mode)


# --- R7 -----------------------------------------------------------------------------------------------------------

def r7_identity(status: str | None) -> Decision:
    """R7: only a ``qualifiée`` identity may feed the DMP."""
    if is_qualified(status):
        return allow(Rule.R7, "qualified", "The patient's identity is qualifiée.")
    if status is None:
        return refuse(Rule.R7, "unknown_identity",
                      "The patient is not in the structure's identity repository; qualify the identity first.")
    return refuse(Rule.R7, "not_qualified", f"The patient's identity is {status}, not qualifiée; the DMP can only "
                  "be fed for a qualifiée identity (INSi call and identity document check).")


# --- R12 ----------------------------------------------------------------------------------------------------------

def r12_author(header: CdaHeader, policy: DepositPolicy, sender: Professional | None,
               confirmed_by: str | None = None) -> Decision:
    """R12: only the document's author, a professional of the structure, may deposit it.

    ``sender`` is the professional behind the submitting mailbox (None for an applicative or organisational
    mailbox sending on behalf of the structure's professionals). ``confirmed_by`` names the person who
    confirmed authorship when the automatic check cannot.
    """
    author_ids = [a.national_id for a in header.authors]
    ours = [a for a in author_ids if a and policy.professional(a) is not None]
    if not header.authors:
        return refuse(Rule.R12, "no_author", "The document names no author; only its author may deposit it.")
    if not ours:
        if confirmed_by:
            return allow(Rule.R12, "confirmed", f"Authorship confirmed by {confirmed_by}.")
        return refuse(Rule.R12, "not_author", "The document's author is not a professional of this structure: it is "
                      "filed locally and not deposited, unless a person confirms authorship.")
    if sender is not None and sender.national_id not in ours:
        if confirmed_by:
            return allow(Rule.R12, "confirmed", f"Authorship confirmed by {confirmed_by}.")
        return refuse(Rule.R12, "sender_not_author", "The sender is not the document's author; a professional may "
                      "only deposit documents they wrote.")
    return allow(Rule.R12, "author", "The document's author is a professional of this structure.")


def depositing_author(header: CdaHeader, policy: DepositPolicy) -> Professional | None:
    """The structure's professional who wrote the document (first matching author)."""
    for author in header.authors:
        found = policy.professional(author.national_id) if author.national_id else None
        if found is not None:
            return found
    return None


# --- R13 ----------------------------------------------------------------------------------------------------------

def r13_kind(type_code: str, policy: DepositPolicy) -> Decision:
    """R13: deposit only the kinds the structure deposits automatically."""
    if type_code in NOT_DEPOSITED_TYPES:
        return refuse(Rule.R13, "kind_excluded", f"Not deposited: {NOT_DEPOSITED_TYPES[type_code]} (type {type_code}).")
    if type_code in policy.deposited_types:
        return allow(Rule.R13, "kind_deposited", f"Type {type_code} is deposited automatically.")
    return refuse(Rule.R13, "kind_not_listed", f"Type {type_code} is not among the kinds deposited automatically.")


# --- R14 ----------------------------------------------------------------------------------------------------------

def r14_access(mode: AccessMode, *, manual_request: bool, patient_present: bool | None,
               title: str | None, policy: DepositPolicy) -> tuple[Decision, str]:
    """R14: manual, in the patient's presence, or systematic; automatic deposits get a default title.

    Returns the decision and the title to use.
    """
    given = (title or "").strip()
    if manual_request:
        if not given:
            return refuse(Rule.R14, "title_required", "A manual deposit needs a title; give one and try again."), ""
        return allow(Rule.R14, "manual", "Deposit triggered by a person."), given
    if mode is AccessMode.MANUAL:
        return refuse(Rule.R14, "manual_mode", "This mailbox deposits manually: a person must trigger each "
                      "deposit."), given
    if mode is AccessMode.PRESENCE and not patient_present:
        return refuse(Rule.R14, "patient_absent", "This mailbox deposits in the patient's presence and the "
                      "patient's Vitale card is not in the reader."), given
    reason = "Systematic deposit." if mode is AccessMode.SYSTEMATIC else "Deposit in the patient's presence."
    return allow(Rule.R14, mode.value, reason), given or policy.default_title


# --- R15 ----------------------------------------------------------------------------------------------------------

def r15_document(header: CdaHeader, size: int, now: datetime, policy: DepositPolicy, title: str) -> Decision:
    """R15: size, format and mandatory metadata."""
    if size > policy.max_size:
        return refuse(Rule.R15, "too_large", f"The document is {size} bytes; the DMP accepts at most "
                      f"{policy.max_size} bytes per document.")
    if header.body_media_type is not None and header.body_media_type not in c.ALLOWED_MEDIA_TYPES:
        return refuse(Rule.R15, "format", f"The DMP does not accept {header.body_media_type} documents "
                      "(pdf, jpeg, tiff, txt, rtf or structured CDA).")
    missing = []
    if not header.type_code:
        missing.append("document type")
    if not title:
        missing.append("title")
    created = header.created_at
    if created is None:
        missing.append("document date")
    if header.service_start_at is None:
        missing.append("start date of the act")
    if not header.authors:
        missing.append("author")
    elif not any(a.has_structure for a in header.authors) and not policy.structure.name:
        missing.append("author's structure")
    if header.practice_setting is None and not policy.structure.practice_setting.code:
        missing.append("practice setting")
    if not header.patient.matricule:
        missing.append("patient INS")
    if missing:
        return refuse(Rule.R15, "missing_metadata", "Mandatory deposit metadata missing: " + ", ".join(missing) + ".")
    assert created is not None
    if created > now + CLOCK_SKEW:
        return refuse(Rule.R15, "future_date", "The document date is in the future.")
    return allow(Rule.R15, "document_ok", "Size, format and mandatory metadata are acceptable.")


def r15_media_type(media_type: str, size: int, policy: DepositPolicy) -> Decision:
    """R15 for a raw attachment (before wrapping it in a level-1 CDA)."""
    if media_type not in c.ALLOWED_MEDIA_TYPES:
        return refuse(Rule.R15, "format", f"The DMP does not accept {media_type} documents "
                      "(pdf, jpeg, tiff, txt, rtf).")
    if size > policy.max_size:
        return refuse(Rule.R15, "too_large", f"The document is {size} bytes; the DMP accepts at most "
                      f"{policy.max_size} bytes per document.")
    return allow(Rule.R15, "format_ok", f"{media_type} is accepted.")


# --- R16 ----------------------------------------------------------------------------------------------------------

def parse_visibility(header_value: str | None) -> list[str]:
    """The codes of an ``X-DMP-Visibility`` header: comma or space separated, case-insensitive."""
    if not header_value:
        return []
    return [part.strip().upper() for part in header_value.replace(";", ",").replace(" ", ",").split(",")
            if part.strip()][:10]


def _is_minor(birth_date: str, today: date) -> bool | None:
    if len(birth_date) < 8 or not birth_date[:8].isdigit():
        return None
    try:
        born = date(int(birth_date[:4]), int(birth_date[4:6]), int(birth_date[6:8]))
    except ValueError:
        return None
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return years < 18


def r16_visibility(requested: Iterable[str], policy: DepositPolicy, birth_date: str,
                   today: date) -> tuple[Decision, frozenset[str]]:
    """R16: visibility codes at deposit, from the sender's header or the structure's default.

    Unknown codes refuse the deposit rather than guess; hiding from legal representatives only applies to minors.
    """
    codes = set(requested) or set(policy.default_visibility)
    unknown = sorted(codes - set(c.VISIBILITY_CODES))
    if unknown:
        return refuse(Rule.R16, "unknown_visibility", "Unknown visibility code(s): " + ", ".join(unknown) +
                      f"; known codes are {', '.join(c.VISIBILITY_CODES)}."), frozenset()
    if c.INVISIBLE_REPRESENTANTS_LEGAUX in codes and _is_minor(birth_date, today) is False:
        return refuse(Rule.R16, "not_a_minor", "Hiding a document from legal representatives only applies to a "
                      "minor patient."), frozenset()
    label = ", ".join(sorted(codes)) if codes else "normal visibility"
    return allow(Rule.R16, "visibility", f"Visibility: {label}."), frozenset(codes)


def visible_to_patient(codes: Iterable[str]) -> bool:
    """R16: a document may be sent to the patient's mailbox only if it is visible to the patient."""
    return c.INVISIBLE_PATIENT not in set(codes)


# --- All together ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DepositPlan:
    """Every decision for one document, and what the deposit will carry if all allow it."""

    decisions: tuple[Decision, ...]
    title: str = ""
    visibility: frozenset[str] = frozenset()
    author: Professional | None = None

    @property
    def allowed(self) -> bool:
        return all(d.allowed for d in self.decisions)

    @property
    def refusal(self) -> Decision | None:
        return next((d for d in self.decisions if not d.allowed), None)


def evaluate(header: CdaHeader, *, size: int, policy: DepositPolicy, sender_address: str,
             identity_status: str | None, patient_present: bool | None, now: datetime,
             visibility_header: str | None = None, title: str | None = None, manual_request: bool = False,
             confirmed_by: str | None = None) -> DepositPlan:
    """Apply R7, R12–R16 in order; every rule is evaluated so that the trail shows them all."""
    sender = policy.professional_by_mailbox(sender_address)
    decisions = [r7_identity(identity_status), r12_author(header, policy, sender, confirmed_by),
                 r13_kind(header.type_code, policy)]
    access, chosen_title = r14_access(policy.mode_for(sender_address), manual_request=manual_request,
                                      patient_present=patient_present, title=title or header.title or None,
                                      policy=policy)
    decisions.append(access)
    decisions.append(r15_document(header, size, now, policy, chosen_title))
    visibility, codes = r16_visibility(parse_visibility(visibility_header), policy,
                                       (header.patient.birth_date or "").replace("-", ""), now.date())
    decisions.append(visibility)
    return DepositPlan(tuple(decisions), chosen_title, codes, depositing_author(header, policy))
