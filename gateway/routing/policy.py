"""The routing decision for each recipient of a submission: deliver, or refuse with the rule and the reply.

Decisions are values: they carry the rule (R-number), the SMTP reply and what the store must do. The same
function is evaluated at RCPT (so that the sender hears "no" per recipient) and again inside the delivery
transaction (so that a conversation closed in between is honoured atomically).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.accounts import Account
from gateway.config import Config
from gateway.filing.jobs import wants_filing
from gateway.ins_matching import identities
from gateway.ins_matching.nir import is_well_formed, key_ok
from gateway.routing import conversations, remote, replies
from gateway.routing.addresses import Local, PatientAddress, Remote, classify
from gateway.routing.directory import DIRECTORY, Directory
from gateway.routing.replies import Reply


class ConversationState(Protocol):
    """What R1–R3 read of a conversation, local (professional mailbox) or with a remote professional."""

    id: int
    state: str
    replies_blocked: bool


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
    rule: str | None
    kind: str
    target: Target | None = None

    @property
    def accepted(self) -> bool:
        return self.target is not None


def _refuse(reply: Reply, rule: str | None, kind: str) -> Decision:
    return Decision(reply, rule, kind)


def patient_reply(conversation: ConversationState | None, target: Target, stage: str = "rcpt") -> Decision:
    """R1–R3 for a patient's message: only inside the conversation the professional opened, still open, with
    replies allowed. ``stage`` names the SMTP step in the event ("rcpt", or "data" when re-checked)."""
    if conversation is None:
        return _refuse(replies.PATIENT_FIRST, "R1", f"{stage}.refused.no_conversation")
    if conversation.state != conversations.OPEN:
        return _refuse(replies.CONVERSATION_CLOSED, "R2", f"{stage}.refused.conversation_closed")
    if conversation.replies_blocked:
        return _refuse(replies.REPLIES_BLOCKED, "R3", f"{stage}.refused.replies_blocked")
    return Decision(replies.RCPT_OK, "R1", "rcpt.accepted.reply", replace(target, conversation_id=conversation.id))


async def recheck(session: AsyncSession, target: Target) -> Decision:
    """Inside the delivery transaction: re-check what can change between RCPT and DATA.

    Only a patient's reply depends on mutable state (the conversation may have been closed by [FIN] or
    its replies blocked meanwhile, R2–R3); other decisions rest on facts that do not change in that time.
    """
    if target.exchange not in ("patient-to-pro", "patient-to-remote") or target.conversation_id is None:
        return Decision(replies.RCPT_OK, None, "rcpt.accepted", target)
    assert target.matricule is not None
    if target.mailbox_id is None:  # our patient answering a professional at another operator
        conversation = await remote.find(session, target.address, target.matricule)
    else:
        conversation = await conversations.find(session, target.mailbox_id, target.matricule)
    return patient_reply(conversation, target, "data")


def _filing(config: Config, decision: Decision) -> Decision:
    """Mark an accepted local recipient whose mail is filed (R10), so every door files it alike."""
    target = decision.target
    if target is None or target.mailbox_id is None or not wants_filing(config, target.address):
        return decision
    return replace(decision, target=replace(target, files=True))


async def decide(session: AsyncSession, config: Config, sender: Account, address: str,
                 directory: Directory = DIRECTORY) -> Decision:
    """Whether ``sender`` may send to ``address`` now, and why (R1–R5, R8)."""
    return _filing(config, await _decide(session, config, sender, address, directory))


async def _decide(session: AsyncSession, config: Config, sender: Account, address: str,
                  directory: Directory) -> Decision:
    destination = classify(address, config)
    if isinstance(destination, Reply):
        rule = "R8" if destination in (replies.BAD_INS_KEY, replies.BAD_INS_SHAPE) else None
        return _refuse(destination, rule, "rcpt.refused.address")
    if isinstance(destination, Remote):
        return await _to_remote(session, config, sender, destination)
    mailbox = await directory.lookup(session, destination.address)
    if mailbox is None:
        return _refuse(replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown")
    if not mailbox.active:
        return _refuse(replies.DISABLED_MAILBOX, None, "rcpt.refused.disabled")

    if isinstance(destination, PatientAddress):
        if sender.is_patient:
            return _refuse(replies.PATIENT_TO_PATIENT, "R1", "rcpt.refused.patient_to_patient")
        return await _to_patient(session, destination, mailbox.id, "pro-to-patient")

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
    return patient_reply(conversation, Target(destination.address, mailbox.id, "patient-to-pro", sender.matricule))


async def _to_patient(session: AsyncSession, destination: PatientAddress, mailbox_id: int, exchange: str) -> Decision:
    """A professional (ours or remote) may write to a patient only if the identity is qualifiée (R4, R8)."""
    identity = await identities.find(session, destination.matricule, follow=False)
    if identity is not None and identity.replaced_by is not None:
        return _refuse(replies.MATRICULE_OBSOLETE, "R8", "rcpt.refused.obsolete_matricule")
    if identity is None or identity.status != identities.QUALIFIEE:
        return _refuse(replies.NOT_QUALIFIED, "R4", "rcpt.refused.not_qualified")
    return Decision(replies.RCPT_OK, "R4", "rcpt.accepted.patient",
                    Target(destination.address, mailbox_id, exchange, destination.matricule))


async def _to_remote(session: AsyncSession, config: Config, sender: Account, destination: Remote) -> Decision:
    """Another operator's address: only whitelisted domains, queued for outbound delivery over mutual TLS."""
    if config.outbound is None or destination.domain not in config.trusted:
        return _refuse(replies.NO_RELAY, None, "rcpt.refused.relay")
    if destination.domain in config.rules.remote_patient_domains:
        return await _to_remote_patient(session, sender, destination)
    if not sender.is_patient:
        return Decision(replies.RCPT_OK, None, "rcpt.accepted.remote",
                        Target(destination.address, None, "pro-to-remote"))
    # Our patient answering a remote professional: only inside the conversation that professional opened (R1-R3).
    assert sender.matricule is not None
    conversation = await remote.find(session, destination.address, sender.matricule)
    return patient_reply(conversation, Target(destination.address, None, "patient-to-remote", sender.matricule))


async def _to_remote_patient(session: AsyncSession, sender: Account, destination: Remote) -> Decision:
    """A patient hosted by another operator: the address is an INS matricule (R8), only professionals write to
    it (R1), and only with the identity qualifiée in our repository (R4); the conversation opens here (R1, R5)."""
    matricule = destination.address.partition("@")[0].upper()
    if len(matricule) != 15 or not is_well_formed(matricule):
        return _refuse(replies.BAD_INS_SHAPE, "R8", "rcpt.refused.address")
    if not key_ok(matricule):
        return _refuse(replies.BAD_INS_KEY, "R8", "rcpt.refused.address")
    if sender.is_patient:
        return _refuse(replies.PATIENT_TO_PATIENT, "R1", "rcpt.refused.patient_to_patient")
    decision = await _to_patient(session, PatientAddress(destination.address, matricule), 0, "pro-to-remote-patient")
    if decision.target is None:
        return decision
    return Decision(decision.reply, decision.rule, "rcpt.accepted.remote_patient",
                    Target(destination.address, None, "pro-to-remote-patient", matricule))


async def _from_remote_patient(session: AsyncSession, config: Config, sender: str, mailbox_id: int,
                               address: str) -> Decision:
    """Relayed mail from another operator's patient to our professional: only inside an open conversation."""
    matricule = sender.partition("@")[0].upper()
    if address in config.rules.patients_may_write_first:
        return Decision(replies.RCPT_OK, "R1", "rcpt.accepted.patient_first_exception",
                        Target(address, mailbox_id, "patient-to-pro", matricule))
    conversation = await conversations.find(session, mailbox_id, matricule)
    return patient_reply(conversation, Target(address, mailbox_id, "patient-to-pro", matricule))


async def decide_relayed(session: AsyncSession, config: Config, address: str, sender: str = "",
                         directory: Directory = DIRECTORY) -> Decision:
    """Whether mail relayed by another operator may be delivered to ``address``; see :func:`_decide_relayed`."""
    return _filing(config, await _decide_relayed(session, config, address, sender, directory))


async def _decide_relayed(session: AsyncSession, config: Config, address: str, sender: str,
                          directory: Directory) -> Decision:
    """Whether mail relayed by another operator may be delivered to ``address`` (ours only; R4 for patients).

    A professional of the trust space writing to our patient needs a qualified identity (R4) and opens the
    conversation keyed by the remote sender's address (see :mod:`gateway.routing.remote`). A patient of another
    operator (``rules.remote_patient_domains``) reaches our professionals only inside an open conversation
    (R1–R3) and never our patients.
    """
    remote_patient = sender.rpartition("@")[2] in config.rules.remote_patient_domains
    destination = classify(address, config)
    if isinstance(destination, Reply):
        rule = "R8" if destination in (replies.BAD_INS_KEY, replies.BAD_INS_SHAPE) else None
        return _refuse(destination, rule, "rcpt.refused.address")
    if isinstance(destination, Remote):
        return _refuse(replies.RELAY_THIRD_DOMAIN, None, "rcpt.refused.relay")
    mailbox = await directory.lookup(session, destination.address)
    if mailbox is None:
        return _refuse(replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown")
    if not mailbox.active:
        return _refuse(replies.DISABLED_MAILBOX, None, "rcpt.refused.disabled")
    if isinstance(destination, PatientAddress):
        if remote_patient:
            return _refuse(replies.PATIENT_TO_PATIENT, "R1", "rcpt.refused.patient_to_patient")
        return await _to_patient(session, destination, mailbox.id, "remote-to-patient")
    if mailbox.kind == "PAT":
        return _refuse(replies.UNKNOWN_MAILBOX, None, "rcpt.refused.unknown")
    if remote_patient:
        return await _from_remote_patient(session, config, sender, mailbox.id, destination.address)
    return Decision(replies.RCPT_OK, None, "rcpt.accepted.relayed",
                    Target(destination.address, mailbox.id, "remote-to-pro"))
