"""Routing as pure decisions: R1–R5, R8 and the pharmacy exception, table-driven over plain facts.

No database and no sockets: each case gives the recipient's facts (mailbox, identity status, conversation
state) as :mod:`gateway.store.recipients` would load them, and checks the decision's reply, rule and kind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.codes.rules import Rule
from gateway.config import Config, load
from gateway.routing import replies
from gateway.routing.addresses import classify
from gateway.routing.conversations import professional_wrote
from gateway.routing.policy import (
    Sender,
    Target,
    decide_relayed_facts,
    decide_submitted,
    patient_reply,
    wanted_relayed,
    wanted_submitted,
    with_filing,
)
from gateway.store.recipients import ConversationFacts, IdentityFacts, MailboxFacts, RecipientFacts, Wanted

MATRICULE = "279035121518989"
PATIENT = f"{MATRICULE}@patient.test"
PRO = "dr.house@pro.test"
PHARMACY = "pharmacie@pro.test"
REMOTE_PRO = "dr.far@pro.other.test"
REMOTE_PATIENT = f"{MATRICULE}@patient.other.test"

DOCTOR = Sender(PRO, False)
PATIENT_SENDER = Sender(PATIENT, True, MATRICULE)

PRO_BOX = MailboxFacts(2, "PER", True)
PHARMACY_BOX = MailboxFacts(3, "ORG", True)
PATIENT_BOX = MailboxFacts(4, "PAT", True)
QUALIFIED = IdentityFacts("qualifiée", None)
OPEN = ConversationFacts(7, "open", False)
CLOSED = ConversationFacts(7, "closed", False)
BLOCKED = ConversationFacts(7, "open", True)


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    folder = tmp_path_factory.mktemp("config")
    (folder / "c.pem").write_text("x")
    (folder / "k.pem").write_text("x")
    path = folder / "gateway.toml"
    path.write_text('[gateway]\nhostname = "mx.test"\ndomains = ["pro.test"]\npatient_domain = "patient.test"\n'
                    '[database]\nurl = "sqlite+aiosqlite:///gw.sqlite3"\n'
                    '[tls]\ncertificate = "c.pem"\nprivate_key = "k.pem"\n[smtp]\nsubmission = "127.0.0.1:2587"\n'
                    f'[rules]\npatients_may_write_first = ["{PHARMACY}"]\n'
                    'remote_patient_domains = ["patient.other.test"]\n'
                    f'[documents]\nfiling_mailboxes = ["{PHARMACY}"]\n')
    return load(Path(path))


SUBMITTED = [
    # (case, sender, address, facts, reply, rule, kind)
    ("r4_qualified_patient", DOCTOR, PATIENT, RecipientFacts(PATIENT_BOX, QUALIFIED),
     replies.RCPT_OK, Rule.R4, "rcpt.accepted.patient"),
    ("r4_patient_unknown_to_the_repository", DOCTOR, PATIENT, RecipientFacts(PATIENT_BOX),
     replies.NOT_QUALIFIED, Rule.R4, "rcpt.refused.not_qualified"),
    ("r4_patient_only_validee", DOCTOR, PATIENT, RecipientFacts(PATIENT_BOX, IdentityFacts("validée", None)),
     replies.NOT_QUALIFIED, Rule.R4, "rcpt.refused.not_qualified"),
    ("r4_patient_recuperee", DOCTOR, PATIENT, RecipientFacts(PATIENT_BOX, IdentityFacts("récupérée", None)),
     replies.NOT_QUALIFIED, Rule.R4, "rcpt.refused.not_qualified"),
    ("r8_obsolete_matricule", DOCTOR, PATIENT,
     RecipientFacts(PATIENT_BOX, IdentityFacts("qualifiée", "180077511200168")),
     replies.MATRICULE_OBSOLETE, Rule.R8, "rcpt.refused.obsolete_matricule"),
    ("r8_wrong_key", DOCTOR, f"{MATRICULE[:-2]}00@patient.test", RecipientFacts(),
     replies.BAD_INS_KEY, Rule.R8, "rcpt.refused.address"),
    ("r8_not_fifteen_characters", DOCTOR, "27903512151898@patient.test", RecipientFacts(),
     replies.BAD_INS_SHAPE, Rule.R8, "rcpt.refused.address"),
    ("r1_patient_cannot_start_a_conversation", PATIENT_SENDER, PRO, RecipientFacts(PRO_BOX),
     replies.PATIENT_FIRST, Rule.R1, "rcpt.refused.no_conversation"),
    ("r1_patient_replies_inside_an_open_conversation", PATIENT_SENDER, PRO, RecipientFacts(PRO_BOX, None, OPEN),
     replies.RCPT_OK, Rule.R1, "rcpt.accepted.reply"),
    ("r2_conversation_closed_by_fin", PATIENT_SENDER, PRO, RecipientFacts(PRO_BOX, None, CLOSED),
     replies.CONVERSATION_CLOSED, Rule.R2, "rcpt.refused.conversation_closed"),
    ("r3_replies_blocked", PATIENT_SENDER, PRO, RecipientFacts(PRO_BOX, None, BLOCKED),
     replies.REPLIES_BLOCKED, Rule.R3, "rcpt.refused.replies_blocked"),
    ("r1_pharmacy_exception_lets_a_patient_write_first", PATIENT_SENDER, PHARMACY, RecipientFacts(PHARMACY_BOX),
     replies.RCPT_OK, Rule.R1, "rcpt.accepted.patient_first_exception"),
    ("r1_patient_to_patient", PATIENT_SENDER, PATIENT, RecipientFacts(PATIENT_BOX, QUALIFIED),
     replies.PATIENT_TO_PATIENT, Rule.R1, "rcpt.refused.patient_to_patient"),
    ("professional_to_professional", DOCTOR, "dr.wilson@pro.test", RecipientFacts(PRO_BOX),
     replies.RCPT_OK, None, "rcpt.accepted"),
    ("unknown_mailbox", DOCTOR, "nobody@pro.test", RecipientFacts(),
     replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown"),
    ("disabled_mailbox", DOCTOR, "dr.wilson@pro.test", RecipientFacts(MailboxFacts(2, "PER", False)),
     replies.DISABLED_MAILBOX, None, "rcpt.refused.disabled"),
    ("patient_mailbox_at_a_professional_domain", DOCTOR, "odd@pro.test", RecipientFacts(PATIENT_BOX),
     replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown"),
    ("remote_without_outbound_is_no_relay", DOCTOR, REMOTE_PRO, RecipientFacts(),
     replies.NO_RELAY, None, "rcpt.refused.relay"),
    ("relay_trick", DOCTOR, "user%other.test@pro.test", RecipientFacts(),
     replies.ADDRESS_TRICK, None, "rcpt.refused.address"),
]


@pytest.mark.parametrize(("case", "sender", "address", "facts", "reply", "rule", "kind"), SUBMITTED,
                         ids=[c[0] for c in SUBMITTED])
def test_submitted_decisions(config: Config, case: str, sender: Sender, address: str, facts: RecipientFacts,
                             reply: replies.Reply, rule: Rule | None, kind: str) -> None:
    decision = decide_submitted(config, sender, classify(address, config), facts)
    assert (decision.reply, decision.rule, decision.kind) == (reply, rule, kind)
    assert decision.accepted == reply.ok


def test_r1_a_reply_carries_its_conversation(config: Config) -> None:
    decision = decide_submitted(config, PATIENT_SENDER, classify(PRO, config), RecipientFacts(PRO_BOX, None, OPEN))
    assert decision.target == Target(PRO, PRO_BOX.id, "patient-to-pro", MATRICULE, conversation_id=OPEN.id)


RELAYED = [
    ("r4_remote_professional_to_qualified_patient", REMOTE_PRO, PATIENT, RecipientFacts(PATIENT_BOX, QUALIFIED),
     replies.RCPT_OK, Rule.R4, "rcpt.accepted.patient"),
    ("r4_remote_professional_to_unqualified_patient", REMOTE_PRO, PATIENT, RecipientFacts(PATIENT_BOX),
     replies.NOT_QUALIFIED, Rule.R4, "rcpt.refused.not_qualified"),
    ("r1_remote_patient_needs_the_conversation", REMOTE_PATIENT, PRO, RecipientFacts(PRO_BOX),
     replies.PATIENT_FIRST, Rule.R1, "rcpt.refused.no_conversation"),
    ("r1_remote_patient_inside_the_conversation", REMOTE_PATIENT, PRO, RecipientFacts(PRO_BOX, None, OPEN),
     replies.RCPT_OK, Rule.R1, "rcpt.accepted.reply"),
    ("r2_remote_patient_after_fin", REMOTE_PATIENT, PRO, RecipientFacts(PRO_BOX, None, CLOSED),
     replies.CONVERSATION_CLOSED, Rule.R2, "rcpt.refused.conversation_closed"),
    ("r1_remote_patient_to_our_patient", REMOTE_PATIENT, PATIENT, RecipientFacts(PATIENT_BOX, QUALIFIED),
     replies.PATIENT_TO_PATIENT, Rule.R1, "rcpt.refused.patient_to_patient"),
    ("r1_pharmacy_exception_for_a_remote_patient", REMOTE_PATIENT, PHARMACY, RecipientFacts(PHARMACY_BOX),
     replies.RCPT_OK, Rule.R1, "rcpt.accepted.patient_first_exception"),
    ("remote_professional_to_ours", REMOTE_PRO, PRO, RecipientFacts(PRO_BOX),
     replies.RCPT_OK, None, "rcpt.accepted.relayed"),
    ("third_domain", REMOTE_PRO, "someone@third.test", RecipientFacts(),
     replies.RELAY_THIRD_DOMAIN, None, "rcpt.refused.relay"),
    ("r8_wrong_key_relayed", REMOTE_PRO, f"{MATRICULE[:-2]}00@patient.test", RecipientFacts(),
     replies.BAD_INS_KEY, Rule.R8, "rcpt.refused.address"),
]


@pytest.mark.parametrize(("case", "sender", "address", "facts", "reply", "rule", "kind"), RELAYED,
                         ids=[c[0] for c in RELAYED])
def test_relayed_decisions(config: Config, case: str, sender: str, address: str, facts: RecipientFacts,
                           reply: replies.Reply, rule: Rule | None, kind: str) -> None:
    decision = decide_relayed_facts(config, sender, classify(address, config), facts)
    assert (decision.reply, decision.rule, decision.kind) == (reply, rule, kind)


@pytest.mark.parametrize(("conversation", "rule", "kind"), [
    (None, Rule.R1, "data.refused.no_conversation"),
    (CLOSED, Rule.R2, "data.refused.conversation_closed"),
    (BLOCKED, Rule.R3, "data.refused.replies_blocked"),
    (OPEN, Rule.R1, "rcpt.accepted.reply"),
])
def test_r1_r3_rechecked_at_data(conversation: ConversationFacts | None, rule: Rule, kind: str) -> None:
    decision = patient_reply(conversation, Target(PRO, 2, "patient-to-pro", MATRICULE), "data")
    assert (decision.rule, decision.kind) == (rule, kind)


@pytest.mark.parametrize(("sender", "address", "wanted"), [
    (DOCTOR, PATIENT, Wanted(PATIENT, identity=MATRICULE)),
    (PATIENT_SENDER, PRO, Wanted(PRO, conversation=MATRICULE)),
    (DOCTOR, PRO, Wanted(PRO)),
    (DOCTOR, REMOTE_PATIENT, Wanted(identity=MATRICULE)),
    (PATIENT_SENDER, REMOTE_PRO, Wanted(conversation=MATRICULE, remote_professional=REMOTE_PRO)),
])
def test_one_query_asks_exactly_the_facts_a_decision_reads(config: Config, sender: Sender, address: str,
                                                           wanted: Wanted) -> None:
    destination = classify(address, config)
    assert not isinstance(destination, replies.Reply)
    assert wanted_submitted(config, sender, destination) == wanted


def test_relayed_remote_patient_reads_the_conversation_with_our_mailbox(config: Config) -> None:
    destination = classify(PRO, config)
    assert not isinstance(destination, replies.Reply)
    assert wanted_relayed(config, REMOTE_PATIENT, destination) == Wanted(PRO, conversation=MATRICULE)


def test_r10_a_filing_mailbox_is_marked_at_rcpt(config: Config) -> None:
    decision = decide_submitted(config, DOCTOR, classify(PHARMACY, config), RecipientFacts(PHARMACY_BOX))
    assert with_filing(config, decision).target.files  # type: ignore[union-attr]
    other = decide_submitted(config, DOCTOR, classify(PRO, config), RecipientFacts(PRO_BOX))
    assert not with_filing(config, other).target.files  # type: ignore[union-attr]


# --- R1, R2, R3, R5: what a professional's message does to the conversation --------------------------------------
@pytest.mark.parametrize(("replies_header", "ends_via", "steps"), [
    (None, None, [("conversation.reopened", Rule.R5, {"state": "open"})]),
    ("blocked", None, [("conversation.reopened", Rule.R5, {"state": "open"}),
                       ("conversation.replies_blocked", Rule.R3, {"replies_blocked": True})]),
    ("allowed", "subject", [("conversation.reopened", Rule.R5, {"state": "open"}),
                            ("conversation.replies_unblocked", Rule.R3, {"replies_blocked": False}),
                            ("conversation.closed.subject", Rule.R2, {"state": "closed"})]),
    (None, "header", [("conversation.reopened", Rule.R5, {"state": "open"}),
                      ("conversation.closed.header", Rule.R2, {"state": "closed"})]),
])
def test_r5_every_change_of_a_professional_message_is_a_recorded_step(
        replies_header: str | None, ends_via: str | None, steps: list[tuple[str, Rule, dict[str, object]]]) -> None:
    change = professional_wrote(MATRICULE, PRO, professional_id=2, replies=replies_header, ends_via=ends_via)
    assert change.key == {"professional_id": 2, "matricule": MATRICULE}
    assert (change.created.kind, change.created.rule) == ("conversation.opened", Rule.R1)
    assert change.create == {"state": "open", "replies_blocked": False}
    assert [(s.event.kind, s.event.rule, s.values) for s in change.steps] == steps


def test_r5_a_remote_professional_conversation_is_keyed_by_its_address() -> None:
    change = professional_wrote(MATRICULE, "x", remote_professional="Dr.Far@pro.other.test")
    assert change.key == {"remote_professional": "dr.far@pro.other.test", "matricule": MATRICULE}
    assert change.created.actor == "dr.far@pro.other.test" and change.created.detail == {"remote": True}
    with pytest.raises(ValueError):
        professional_wrote(MATRICULE, "x", professional_id=1, remote_professional="dr.far@pro.other.test")
