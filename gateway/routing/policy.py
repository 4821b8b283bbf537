"""The routing decision for each recipient: deliver, or refuse with the rule and the reply.

Decisions are values: they carry the rule (R-number), the SMTP reply and what the store must do. The rules
are pure functions of facts (:func:`decide_submitted`, :func:`decide_relayed_facts`, :func:`patient_reply`):
the recipient's mailbox, the patient's identity status and the conversation state, which
:mod:`gateway.store.recipients` loads in one query per recipient. The same decision is taken at RCPT (so
that the sender hears "no" per recipient) and its mutable part again inside the delivery transaction (so
that a conversation closed in between is honoured atomically).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.accounts import Account
from gateway.codes.identity_status import is_qualified
from gateway.codes.rules import Rule
from gateway.config import Config
from gateway.ins_matching.nir import is_well_formed, key_ok
from gateway.routing import conversations, replies
from gateway.routing.addresses import Destination, Local, PatientAddress, Remote, classify
from gateway.routing.replies import Reply
from gateway.store import recipients
from gateway.store.recipients import ConversationFacts, Reader, RecipientFacts, Wanted

#: What R1–R3 read of a conversation, local (professional mailbox) or with a remote professional.
ConversationState = ConversationFacts


@dataclass(frozen=True)
class DsnRequest:
    """What the sender asked about delivery status notifications (RFC 3461 NOTIFY, ORCPT, RET, ENVID)."""

    notify: str | None = None  # "NEVER" or a comma list of SUCCESS, FAILURE, DELAY; None = failures only
    orcpt: str | None = None
    ret: str | None = None  # "FULL" or "HDRS"
    envid: str | None = None


@dataclass(frozen=True)
class Target:
    """An accepted recipient: the mailbox it lands in and what kind of exchange it is."""

    address: str
    #: None for a recipient at another operator (queued for outbound delivery).
    mailbox_id: int | None
    #: "pro-to-pro", "pro-to-patient", "patient-to-pro" (R1–R5 apply to the last two); for other operators
    #: "pro-to-remote", "patient-to-remote" (R1–R3 via the remote conversation), and for relayed mail
    #: "remote-to-pro", "remote-to-patient" (R4).
    exchange: str
    matricule: str | None = None
    conversation_id: int | None = None
    #: Outbound recipients only: the sender's DSN request, carried to the queue.
    dsn: DsnRequest | None = None
    #: The documents delivered to this mailbox are filed into patients' records (R10).
    files: bool = False


@dataclass(frozen=True)
class Decision:
    reply: Reply
    rule: Rule | None
    kind: str
    target: Target | None = None

    @property
    def accepted(self) -> bool:
        return self.target is not None


@dataclass(frozen=True)
class Sender:
    """Who writes, as the rules see it: a patient (with the matricule of their address) or a professional."""

    address: str
    is_patient: bool
    matricule: str | None = None

    @staticmethod
    def of(account: Account) -> Sender:
        return Sender(account.address, account.is_patient, account.matricule)


def _refuse(reply: Reply, rule: Rule | None, kind: str) -> Decision:
    return Decision(reply, rule, kind)


def _address_refusal(reply: Reply) -> Decision:
    """R8 for a malformed patient address; other syntax errors and relay tricks name no rule."""
    rule = Rule.R8 if reply in (replies.BAD_INS_KEY, replies.BAD_INS_SHAPE) else None
    return _refuse(reply, rule, "rcpt.refused.address")


def _remote_matricule(address: str) -> str:
    return address.partition("@")[0].upper()


# --- Pure rules --------------------------------------------------------------------------------------------------
def patient_reply(conversation: ConversationState | None, target: Target, stage: str = "rcpt") -> Decision:
    """R1–R3 for a patient's message: only inside the conversation the professional opened, still open, with
    replies allowed. ``stage`` names the SMTP step in the event ("rcpt", or "data" when re-checked)."""
    if conversation is None:
        return _refuse(replies.PATIENT_FIRST, Rule.R1, f"{stage}.refused.no_conversation")
    if conversation.state != conversations.OPEN:
        return _refuse(replies.CONVERSATION_CLOSED, Rule.R2, f"{stage}.refused.conversation_closed")
    if conversation.replies_blocked:
        return _refuse(replies.REPLIES_BLOCKED, Rule.R3, f"{stage}.refused.replies_blocked")
    return Decision(replies.RCPT_OK, Rule.R1, "rcpt.accepted.reply", replace(target, conversation_id=conversation.id))


def _patient_to_pro(config: Config, target: Target, facts: RecipientFacts) -> Decision:
    """R1 with its configurable exception: a pharmacy's organisational mailbox may hear from patients first."""
    if target.address in config.rules.patients_may_write_first:
        return Decision(replies.RCPT_OK, Rule.R1, "rcpt.accepted.patient_first_exception", target)
    return patient_reply(facts.conversation, target)


def _to_patient(facts: RecipientFacts, target: Target) -> Decision:
    """A professional (ours or remote) may write to a patient only if the identity is qualifiée (R4, R8)."""
    identity = facts.identity
    if identity is not None and identity.replaced_by is not None:
        return _refuse(replies.MATRICULE_OBSOLETE, Rule.R8, "rcpt.refused.obsolete_matricule")
    if identity is None or not is_qualified(identity.status):
        return _refuse(replies.NOT_QUALIFIED, Rule.R4, "rcpt.refused.not_qualified")
    return Decision(replies.RCPT_OK, Rule.R4, "rcpt.accepted.patient", target)


def _mailbox_refusal(facts: RecipientFacts) -> Decision | None:
    if facts.mailbox is None:
        return _refuse(replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown")
    if not facts.mailbox.active:
        return _refuse(replies.DISABLED_MAILBOX, None, "rcpt.refused.disabled")
    return None


def wanted_submitted(config: Config, sender: Sender, destination: Destination) -> Wanted:
    """The facts :func:`decide_submitted` needs for this sender and destination."""
    if isinstance(destination, Remote):
        if destination.domain in config.rules.remote_patient_domains:
            return Wanted(identity=_remote_matricule(destination.address))
        if sender.is_patient:
            return Wanted(conversation=sender.matricule, remote_professional=destination.address)
        return Wanted()
    if isinstance(destination, PatientAddress):
        return Wanted(destination.address, identity=destination.matricule)
    return Wanted(destination.address, conversation=sender.matricule if sender.is_patient else None)


def decide_submitted(config: Config, sender: Sender, destination: Destination | Reply,
                     facts: RecipientFacts) -> Decision:
    """Whether ``sender`` may send to ``destination`` given ``facts``, and why (R1–R5, R8). Pure."""
    if isinstance(destination, Reply):
        return _address_refusal(destination)
    if isinstance(destination, Remote):
        return _to_remote(config, sender, destination, facts)
    refusal = _mailbox_refusal(facts)
    if refusal is not None:
        return refusal
    assert facts.mailbox is not None
    if isinstance(destination, PatientAddress):
        if sender.is_patient:
            return _refuse(replies.PATIENT_TO_PATIENT, Rule.R1, "rcpt.refused.patient_to_patient")
        return _to_patient(facts, Target(destination.address, facts.mailbox.id, "pro-to-patient",
                                         destination.matricule))
    assert isinstance(destination, Local)
    if facts.mailbox.kind == "PAT":  # a patient mailbox configured at a professional domain is never reachable
        return _refuse(replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown")
    if not sender.is_patient:
        return Decision(replies.RCPT_OK, None, "rcpt.accepted", Target(destination.address, facts.mailbox.id,
                                                                         "pro-to-pro"))
    assert sender.matricule is not None
    return _patient_to_pro(config, Target(destination.address, facts.mailbox.id, "patient-to-pro",
                                          sender.matricule), facts)


def _to_remote(config: Config, sender: Sender, destination: Remote, facts: RecipientFacts) -> Decision:
    """Another operator's address: only whitelisted domains, queued for outbound delivery over mutual TLS."""
    if config.outbound is None or destination.domain not in config.trusted:
        return _refuse(replies.NO_RELAY, None, "rcpt.refused.relay")
    if destination.domain in config.rules.remote_patient_domains:
        return _to_remote_patient(sender, destination, facts)
    if not sender.is_patient:
        return Decision(replies.RCPT_OK, None, "rcpt.accepted.remote",
                        Target(destination.address, None, "pro-to-remote"))
    # Our patient answering a remote professional: only inside the conversation that professional opened (R1-R3).
    assert sender.matricule is not None
    return patient_reply(facts.conversation, Target(destination.address, None, "patient-to-remote",
                                                    sender.matricule))


def _to_remote_patient(sender: Sender, destination: Remote, facts: RecipientFacts) -> Decision:
    """A patient hosted by another operator: the address is an INS matricule (R8), only professionals write to
    it (R1), and only with the identity qualifiée in our repository (R4); the conversation opens here (R1, R5)."""
    matricule = _remote_matricule(destination.address)
    if len(matricule) != 15 or not is_well_formed(matricule):
        return _refuse(replies.BAD_INS_SHAPE, Rule.R8, "rcpt.refused.address")
    if not key_ok(matricule):
        return _refuse(replies.BAD_INS_KEY, Rule.R8, "rcpt.refused.address")
    if sender.is_patient:
        return _refuse(replies.PATIENT_TO_PATIENT, Rule.R1, "rcpt.refused.patient_to_patient")
    target = Target(destination.address, None, "pro-to-remote-patient", matricule)
    decision = _to_patient(facts, target)
    if decision.target is None:
        return decision
    return Decision(decision.reply, decision.rule, "rcpt.accepted.remote_patient", target)


def wanted_relayed(config: Config, sender: str, destination: Destination) -> Wanted:
    """The facts :func:`decide_relayed_facts` needs for relayed mail from ``sender``."""
    if isinstance(destination, Remote):
        return Wanted()
    if isinstance(destination, PatientAddress):
        return Wanted(destination.address, identity=destination.matricule)
    remote_patient = sender.rpartition("@")[2] in config.rules.remote_patient_domains
    return Wanted(destination.address, conversation=_remote_matricule(sender) if remote_patient else None)


def decide_relayed_facts(config: Config, sender: str, destination: Destination | Reply,
                         facts: RecipientFacts) -> Decision:
    """Whether mail relayed by another operator may be delivered to ``destination`` given ``facts``. Pure.

    A professional of the trust space writing to our patient needs a qualified identity (R4) and opens the
    conversation keyed by the remote sender's address (:func:`conversations.professional_wrote`). A patient of another
    operator (``rules.remote_patient_domains``) reaches our professionals only inside an open conversation
    (R1–R3) and never our patients.
    """
    remote_patient = sender.rpartition("@")[2] in config.rules.remote_patient_domains
    if isinstance(destination, Reply):
        return _address_refusal(destination)
    if isinstance(destination, Remote):
        return _refuse(replies.RELAY_THIRD_DOMAIN, None, "rcpt.refused.relay")
    refusal = _mailbox_refusal(facts)
    if refusal is not None:
        return refusal
    assert facts.mailbox is not None
    if isinstance(destination, PatientAddress):
        if remote_patient:
            return _refuse(replies.PATIENT_TO_PATIENT, Rule.R1, "rcpt.refused.patient_to_patient")
        return _to_patient(facts, Target(destination.address, facts.mailbox.id, "remote-to-patient",
                                         destination.matricule))
    if facts.mailbox.kind == "PAT":
        return _refuse(replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown")
    if remote_patient:
        return _patient_to_pro(config, Target(destination.address, facts.mailbox.id, "patient-to-pro",
                                              _remote_matricule(sender)), facts)
    return Decision(replies.RCPT_OK, None, "rcpt.accepted.relayed",
                    Target(destination.address, facts.mailbox.id, "remote-to-pro"))


def wants_filing(config: Config, address: str) -> bool:
    """Whether mail delivered to ``address`` is filed (R10): listed mailboxes, or every professional INBOX."""
    settings = config.documents
    if settings is None:
        return False
    return address.lower() in settings.filing_mailboxes or (
        settings.file_all_inboxes and address.rpartition("@")[2] in config.domains)


def with_filing(config: Config, decision: Decision) -> Decision:
    """Mark an accepted local recipient whose mail is filed (R10), so every door files it alike."""
    target = decision.target
    if target is None or target.mailbox_id is None or not wants_filing(config, target.address):
        return decision
    return replace(decision, target=replace(target, files=True))


# --- What the SMTP handlers call: load the facts, then decide ----------------------------------------------------
async def _quota(session: Reader, config: Config, decision: Decision) -> Decision:
    """A local mailbox at or over ``limits.mailbox_quota`` bytes is refused temporarily (RFC 3463 4.2.2), so the
    sender retries instead of losing the mail; only an accepted recipient costs the extra query."""
    limit = config.limits.mailbox_quota
    target = decision.target
    if limit <= 0 or target is None or target.mailbox_id is None:
        return decision
    if await recipients.stored_bytes(session, target.mailbox_id) < limit:
        return decision
    return _refuse(replies.MAILBOX_FULL, None, "rcpt.refused.mailbox_full")


async def decide(session: Reader, config: Config, sender: Account, address: str) -> Decision:
    """Whether ``sender`` may send to ``address`` now, and why (R1–R5, R8, R10)."""
    destination = classify(address, config)
    who = Sender.of(sender)
    facts = RecipientFacts()
    if not isinstance(destination, Reply):
        facts = await recipients.load(session, wanted_submitted(config, who, destination))
    decision = decide_submitted(config, who, destination, facts)
    if decision.kind == "rcpt.accepted.remote" and config.directory is not None and config.directory.check_recipients:
        from gateway.directory.recipients import is_published

        if await is_published(config.directory, decision.target.address if decision.target else address) is False:
            return _refuse(replies.NOT_PUBLISHED, None, "rcpt.refused.not_published")
    return with_filing(config, await _quota(session, config, decision))


async def decide_relayed(session: Reader, config: Config, address: str, sender: str = "") -> Decision:
    """Whether mail relayed by another operator from ``sender`` may be delivered to ``address`` (ours only)."""
    destination = classify(address, config)
    facts = RecipientFacts()
    if not isinstance(destination, Reply):
        facts = await recipients.load(session, wanted_relayed(config, sender, destination))
    return with_filing(config, await _quota(session, config,
                                            decide_relayed_facts(config, sender, destination, facts)))


async def recheck(session: AsyncSession, target: Target) -> Decision:
    """Inside the delivery transaction: re-check what can change between RCPT and DATA.

    Only a patient's reply depends on mutable state (the conversation may have been closed by [FIN] or
    its replies blocked meanwhile, R2–R3); other decisions rest on facts that do not change in that time.
    """
    if target.exchange not in ("patient-to-pro", "patient-to-remote") or target.conversation_id is None:
        return Decision(replies.RCPT_OK, None, "rcpt.accepted", target)
    assert target.matricule is not None
    if target.mailbox_id is None:  # our patient answering a professional at another operator
        conversation = await recipients.conversation(session, target.matricule, remote_professional=target.address)
    else:
        conversation = await recipients.conversation(session, target.matricule, professional_id=target.mailbox_id)
    return patient_reply(conversation, target, "data")
