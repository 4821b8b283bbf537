"""The routing decision for each recipient of a submission: deliver, or refuse with the rule and the reply.

Decisions are values: they carry the rule (R-number), the SMTP reply and what the store must do. The same
function is evaluated at RCPT (so that the sender hears "no" per recipient) and again inside the delivery
transaction (so that a conversation closed in between is honoured atomically).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.accounts import Account
from gateway.config import Config
from gateway.ins_matching import identities
from gateway.routing import conversations, replies
from gateway.routing.addresses import Local, PatientAddress, Remote, classify
from gateway.routing.replies import Reply
from gateway.store.mailstore import mailbox_by_address


@dataclass(frozen=True)
class Target:
    """An accepted recipient: the mailbox it lands in and what kind of exchange it is."""

    address: str
    mailbox_id: int
    #: "pro-to-pro", "pro-to-patient", "patient-to-pro" (R1–R5 apply to the last two).
    exchange: str
    matricule: str | None = None
    conversation_id: int | None = None


@dataclass(frozen=True)
class Decision:
    reply: Reply
    rule: str | None
    kind: str
    target: Target | None = None

    @property
    def accepted(self) -> bool:
        return self.target is not None


def _refuse(reply: Reply, rule: str | None, kind: str) -> Decision:
    return Decision(reply, rule, kind)


async def decide(session: AsyncSession, config: Config, sender: Account, address: str) -> Decision:
    """Whether ``sender`` may send to ``address`` now, and why (R1–R5, R8)."""
    destination = classify(address, config)
    if isinstance(destination, Reply):
        rule = "R8" if destination in (replies.BAD_INS_KEY, replies.BAD_INS_SHAPE) else None
        return _refuse(destination, rule, "rcpt.refused.address")
    if isinstance(destination, Remote):
        return _refuse(replies.NO_RELAY, None, "rcpt.refused.relay")
    mailbox = await mailbox_by_address(session, destination.address)
    if mailbox is None:
        return _refuse(replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown")
    if not mailbox.active:
        return _refuse(replies.DISABLED_MAILBOX, None, "rcpt.refused.disabled")

    if isinstance(destination, PatientAddress):
        if sender.is_patient:
            return _refuse(replies.PATIENT_TO_PATIENT, "R1", "rcpt.refused.patient_to_patient")
        identity = await identities.find(session, destination.matricule, follow=False)
        if identity is not None and identity.replaced_by is not None:
            return _refuse(replies.MATRICULE_OBSOLETE, "R8", "rcpt.refused.obsolete_matricule")
        if identity is None or identity.status != identities.QUALIFIEE:
            return _refuse(replies.NOT_QUALIFIED, "R4", "rcpt.refused.not_qualified")
        return Decision(replies.RCPT_OK, "R4", "rcpt.accepted.patient",
                        Target(destination.address, mailbox.id, "pro-to-patient", destination.matricule))

    assert isinstance(destination, Local)
    if mailbox.kind == "PAT":  # a patient mailbox configured at a professional domain is never reachable
        return _refuse(replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown")
    if not sender.is_patient:
        return Decision(replies.RCPT_OK, None, "rcpt.accepted", Target(destination.address, mailbox.id, "pro-to-pro"))

    assert sender.matricule is not None
    if destination.address in config.rules.patients_may_write_first:
        return Decision(replies.RCPT_OK, "R1", "rcpt.accepted.patient_first_exception",
                        Target(destination.address, mailbox.id, "patient-to-pro", sender.matricule))
    conversation = await conversations.find(session, mailbox.id, sender.matricule)
    if conversation is None:
        return _refuse(replies.PATIENT_FIRST, "R1", "rcpt.refused.no_conversation")
    if conversation.state != conversations.OPEN:
        return _refuse(replies.CONVERSATION_CLOSED, "R2", "rcpt.refused.conversation_closed")
    if conversation.replies_blocked:
        return _refuse(replies.REPLIES_BLOCKED, "R3", "rcpt.refused.replies_blocked")
    return Decision(replies.RCPT_OK, "R1", "rcpt.accepted.reply",
                    Target(destination.address, mailbox.id, "patient-to-pro", sender.matricule, conversation.id))
