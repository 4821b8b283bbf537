"""Deposit rules R7 and R12–R16 as pure functions (no sockets, no store)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from dmp_bridge.dmp_support import BIOLOGIST, GP, policy, sample

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import rules
from gateway.dmp_bridge.rules import AccessMode
from gateway.documents.cda import CdaHeader, read_header

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def header() -> CdaHeader:
    return read_header(sample("DOC_NON_STRUCTURE_CDA-R2-N1.xml"), validate=False, limits=c.CDA_LIMITS)


def plan(**kwargs: object) -> rules.DepositPlan:
    values: dict[str, object] = {"size": 1000, "policy": policy(), "sender_address": BIOLOGIST.mailbox,
                                 "identity_status": "qualifiée", "patient_present": None, "now": NOW}
    values.update(kwargs)
    h = values.pop("header", header())
    return rules.evaluate(h, **values)  # type: ignore[arg-type]


def test_all_rules_allow_a_qualified_patients_report_from_its_author() -> None:
    result = plan()
    assert result.allowed and [d.rule for d in result.decisions] == ["R7", "R12", "R13", "R14", "R15", "R16"]
    assert result.author == BIOLOGIST and result.title == "Compte rendu d'examens biologiques"


def test_r7_only_qualified_identities_feed_the_dmp() -> None:
    for status in ("provisoire", "récupérée", "validée", None):
        decision = rules.r7_identity(status)
        assert not decision.allowed and decision.rule == "R7"
    assert rules.r7_identity("qualifiée").allowed


def test_r12_author_outside_the_structure_is_refused_unless_confirmed() -> None:
    stranger = policy(professionals=(GP,))
    assert rules.r12_author(header(), stranger, None).code == "not_author"
    assert rules.r12_author(header(), stranger, None, confirmed_by="dr.x@gw.test").allowed


def test_r12_a_professional_cannot_deposit_a_colleagues_document() -> None:
    decision = rules.r12_author(header(), policy(), GP)
    assert not decision.allowed and decision.code == "sender_not_author"


def test_r12_an_applicative_mailbox_deposits_for_the_structures_author() -> None:
    assert rules.r12_author(header(), policy(), None).allowed


def test_r13_deposited_and_excluded_kinds() -> None:
    for code in ("11502-2", "18748-4", "11488-4", "57833-6", "SYNTH"):
        assert rules.r13_kind(code, policy()).allowed
    assert rules.r13_kind("CERT_DECL", policy()).code == "kind_excluded"
    assert rules.r13_kind("8716-3", policy()).code == "kind_excluded"
    assert rules.r13_kind("99999-9", policy()).code == "kind_not_listed"


def test_r14_manual_mode_needs_a_person_and_a_title() -> None:
    manual = policy(default_mode=AccessMode.MANUAL)
    assert plan(policy=manual).refusal.code == "manual_mode"  # type: ignore[union-attr]
    decision, title = rules.r14_access(AccessMode.MANUAL, manual_request=True, patient_present=None, title=" ",
                                       policy=manual)
    assert decision.code == "title_required" and not decision.allowed
    decision, title = rules.r14_access(AccessMode.MANUAL, manual_request=True, patient_present=None,
                                       title="Bilan", policy=manual)
    assert decision.allowed and title == "Bilan"


def test_r14_presence_mode_follows_the_card() -> None:
    presence = policy(default_mode=AccessMode.PRESENCE)
    assert plan(policy=presence, patient_present=False).refusal.code == "patient_absent"  # type: ignore[union-attr]
    assert plan(policy=presence, patient_present=True).allowed


def test_r14_per_mailbox_mode_overrides_the_structure() -> None:
    mixed = policy(modes={BIOLOGIST.mailbox: AccessMode.MANUAL})
    assert mixed.mode_for(BIOLOGIST.mailbox) is AccessMode.MANUAL and mixed.mode_for("x@y") is AccessMode.SYSTEMATIC


def test_r14_automatic_deposit_gets_the_default_title() -> None:
    untitled = dataclasses.replace(header(), title="")
    result = plan(header=untitled)
    assert result.allowed and result.title == policy().default_title


def test_r15_size_format_dates_and_mandatory_fields() -> None:
    assert rules.r15_document(header(), c.MAX_DOCUMENT_SIZE + 1, NOW, policy(), "t").code == "too_large"
    assert rules.r15_document(header(), 10, NOW, policy(), "t").allowed
    future = dataclasses.replace(header(), effective_time=(NOW + timedelta(days=1)).strftime("%Y%m%d%H%M%S+0000"))
    assert rules.r15_document(future, 10, NOW, policy(), "t").code == "future_date"
    no_start = dataclasses.replace(header(), service_start=None)
    decision = rules.r15_document(no_start, 10, NOW, policy(), "t")
    assert decision.code == "missing_metadata" and "start date of the act" in decision.reason
    word = dataclasses.replace(header(), body_media_type="application/msword")
    assert rules.r15_document(word, 10, NOW, policy(), "t").code == "format"
    assert rules.r15_media_type("image/jpeg", 10, policy()).allowed
    assert rules.r15_media_type("application/zip", 10, policy()).code == "format"


def test_r16_visibility_header_and_default() -> None:
    assert rules.parse_visibility("INVISIBLE_PATIENT, masque_ps") == [c.INVISIBLE_PATIENT, c.MASQUE_PS]
    decision, codes = rules.r16_visibility([c.INVISIBLE_PATIENT], policy(), "19790328", date(2026, 1, 1))
    assert decision.allowed and codes == {c.INVISIBLE_PATIENT}
    assert not rules.visible_to_patient(codes) and rules.visible_to_patient({c.MASQUE_PS})
    hidden_default = policy(default_visibility=frozenset({c.MASQUE_PS}))
    assert rules.r16_visibility([], hidden_default, "19790328", date(2026, 1, 1))[1] == {c.MASQUE_PS}


def test_r16_unknown_code_and_legal_representatives_of_an_adult_are_refused() -> None:
    assert rules.r16_visibility(["SECRET"], policy(), "19790328", date(2026, 1, 1))[0].code == "unknown_visibility"
    adult = rules.r16_visibility([c.INVISIBLE_REPRESENTANTS_LEGAUX], policy(), "19790328", date(2026, 1, 1))
    assert adult[0].code == "not_a_minor"
    child = rules.r16_visibility([c.INVISIBLE_REPRESENTANTS_LEGAUX], policy(), "20150101", date(2026, 1, 1))
    assert child[0].allowed


def test_every_refusal_names_its_rule_and_a_sentence() -> None:
    result = plan(identity_status="provisoire", sender_address=GP.mailbox)
    refused = [d for d in result.decisions if not d.allowed]
    assert {d.rule for d in refused} == {"R7", "R12"}
    assert all(d.reason.endswith(".") for d in refused)
