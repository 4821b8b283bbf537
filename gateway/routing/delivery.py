"""One accepted submission, planned inside the store's transaction (maddy's two-phase contract, committed once).

The recipients were decided at RCPT. Inside the transaction only what can have changed since is checked
again: a patient's reply depends on the conversation still being open and replies allowed (R1–R3). The
result is a :class:`~gateway.store.bulk.Plan`: the message, where to file it (each recipient's INBOX and the
sender's Sent), the events naming each rule, and the conversation effects of R1–R3 and R5. The caller says
"250" only after the commit that contains all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.accounts import Account
from gateway.config import Config
from gateway.filing.jobs import DEPOSIT, wants_deposit, wants_filing
from gateway.filing.jobs import enqueue as enqueue_filing
from gateway.routing import conversations, remote, replies
from gateway.routing.headers import MSS_MES, Summary
from gateway.routing.policy import Decision, DsnRequest, Target, recheck
from gateway.routing.replies import Reply
from gateway.store.bulk import EventRow, Placement, Plan
from gateway.store.changes import mark_changed
from gateway.store.events import now, record
from gateway.store.mailstore import StoredMessage
from gateway.store.models import OutboundRecipient

#: A pseudo folder id marked changed when mail is queued for other operators: wakes the outbound worker at once.
OUTBOUND_WAKE = -1


@dataclass(frozen=True)
class Outcome:
    reply: Reply
    message_id: int | None = None
    delivered: tuple[str, ...] = ()
    refused: tuple[tuple[str, Decision], ...] = ()


def with_fin_header(raw: bytes, summary: Summary) -> bytes:
    """R2: a ``[FIN]`` message to a patient leaves with ``X-MSS-MES: FIN`` so both conventions agree."""
    if summary.fin_in_subject and not summary.fin_header:
        return f"{MSS_MES}: FIN\r\n".encode() + raw
    return raw


async def record_refusal(session: AsyncSession, sender: Account, decision: Decision) -> None:
    await record(session, decision.kind, "refused", rule=decision.rule, actor=sender.address,
                 mailbox_id=sender.id, reply=str(decision.reply))


async def plan_submission(
    session: AsyncSession,
    config: Config,
    sender: Account,
    mail_from: str,
    targets: list[Target],
    raw: bytes,
    summary: Summary,
) -> Plan | Outcome:
    """Plan the storage of a message for the recipients accepted at RCPT, or refuse it."""
    accepted: list[Target] = []
    refused: list[tuple[str, Decision]] = []
    for target in targets:
        decision = await recheck(session, sender, target)
        if decision.target is not None:
            accepted.append(decision.target)
        else:
            refused.append((target.address, decision))
            await record_refusal(session, sender, decision)
    if not accepted:
        reply = refused[0][1].reply if len(refused) == 1 else replies.ALL_RECIPIENTS_REFUSED
        return Outcome(reply, refused=tuple(refused))

    to_patient = [t for t in accepted if t.exchange in ("pro-to-patient", "pro-to-remote-patient")]
    body = with_fin_header(raw, summary) if to_patient else raw
    message = StoredMessage(
        raw=body, mail_from=mail_from, rcpt_to=[t.address for t in accepted], sender_mailbox_id=sender.id,
        message_id_header=summary.message_id, subject=summary.subject, header_from=summary.header_from_raw)
    placements = [Placement(t.mailbox_id, "INBOX") for t in accepted if t.mailbox_id is not None]
    placements.append(Placement(sender.id, "Sent", "\\Seen"))
    events = [EventRow("message.patient_reply", "delivered", "R1", sender.address, t.mailbox_id, t.conversation_id)
              for t in accepted if t.exchange == "patient-to-pro"]
    outgoing = [t for t in accepted if t.mailbox_id is None]  # other operators: queued in this transaction
    events += [EventRow("message.patient_reply", "queued", "R1", sender.address, sender.id, t.conversation_id)
               for t in outgoing if t.exchange == "patient-to-remote"]
    events.append(EventRow("smtp.message", "accepted", None, sender.address, sender.id,
                           detail={"recipients": len(accepted), "refused": len(refused), "size": len(body)}))

    filing = [t.mailbox_id for t in accepted if t.mailbox_id is not None and wants_filing(config, t.address)]
    deposit = wants_deposit(config, sender.is_patient, body)

    async def effects(db: AsyncSession, message_id: int) -> None:
        for target in to_patient:
            await _professional_to_patient(db, sender, target, summary, message_id)
        if outgoing:
            await enqueue_outbound(db, message_id, sender.id, mail_from, outgoing)
        await enqueue_filing(db, message_id, filing)  # R10: documents are read after delivery, exactly once
        if deposit:  # R12: what our professionals send is considered for their patients' DMP
            await enqueue_filing(db, message_id, [sender.id], DEPOSIT)

    def result(message_id: int) -> Outcome:
        return Outcome(replies.ACCEPTED.with_text(f"Message accepted as {message_id}"), message_id,
                       tuple(t.address for t in accepted), tuple(refused))

    return Plan(message, placements, events, effects if to_patient or outgoing or filing or deposit else None, result)


async def _professional_to_patient(session: AsyncSession, sender: Account, target: Target, summary: Summary,
                                   message_id: int) -> None:
    """R1 (the professional opens), R3 (replies blocked or allowed by header), R2 ([FIN] closes), R5 (traced)."""
    assert target.matricule is not None
    conversation = await conversations.professional_wrote(
        session, sender.id, target.matricule, sender.address, message_id)
    await record(session, "message.to_patient", "delivered", rule="R4", actor=sender.address,
                 mailbox_id=sender.id, message_id=message_id, conversation_id=conversation.id)
    if summary.replies is not None:
        await conversations.set_replies_blocked(
            session, conversation, summary.replies == "blocked", sender.address, message_id)
    if summary.ends_conversation:
        via = "subject" if summary.fin_in_subject else "header"
        await conversations.close(session, conversation, sender.address, message_id, via)


# --- Other operators (issue 5): the outbound queue, and mail relayed to us --------------------------------------
async def enqueue_outbound(session: AsyncSession, message_id: int, sender_mailbox_id: int | None, mail_from: str,
                           targets: list[Target]) -> None:
    """Queue each remote recipient, in the transaction that stores the message (accept = durable)."""
    at = now()
    rows = []
    for target in targets:
        dsn = target.dsn or DsnRequest()
        rows.append(dict(
            message_id=message_id, sender_mailbox_id=sender_mailbox_id, mail_from=mail_from,
            recipient=target.address, domain=target.address.rpartition("@")[2], notify=dsn.notify,
            orcpt=dsn.orcpt, ret=dsn.ret, envid=dsn.envid, state="queued", attempts=0, next_attempt_at=at,
            created_at=at))
    await session.execute(insert(OutboundRecipient), rows)
    mark_changed(session, OUTBOUND_WAKE)
    await record(session, "outbound.queued", "queued", actor=mail_from, mailbox_id=sender_mailbox_id,
                 message_id=message_id, recipients=len(rows))


async def record_relay_refusal(session: AsyncSession, peer: str, sender: str | None, decision: Decision) -> None:
    await record(session, decision.kind, "refused", rule=decision.rule, actor=sender or peer,
                 reply=str(decision.reply), peer=peer, relayed=True)


async def plan_relayed(
    session: AsyncSession,
    peer: str,
    mail_from: str,
    targets: list[Target],
    raw: bytes,
    summary: Summary,
) -> Plan | Outcome:
    """Plan the storage of a message relayed by another operator ``peer`` for our recipients accepted at RCPT.

    A remote professional writing to our patient opens the conversation keyed by its address (R1, R5) and may
    block replies (R3) or end it with ``[FIN]`` (R2), exactly as one of ours would.
    """
    if not targets:
        return Outcome(replies.NO_VALID_RECIPIENT)
    to_patient = [t for t in targets if t.exchange == "remote-to-patient"]
    body = with_fin_header(raw, summary) if to_patient else raw
    message = StoredMessage(
        raw=body, mail_from=mail_from, rcpt_to=[t.address for t in targets], sender_mailbox_id=None,
        message_id_header=summary.message_id, subject=summary.subject, header_from=summary.header_from_raw)
    placements = [Placement(t.mailbox_id, "INBOX") for t in targets if t.mailbox_id is not None]
    events = [EventRow("relay.message", "accepted", None, mail_from or peer, None,
                       detail={"peer": peer, "recipients": len(targets), "size": len(body)})]
    events += [EventRow("message.patient_reply", "delivered", "R1", mail_from, t.mailbox_id, t.conversation_id,
                        detail={"peer": peer}) for t in targets if t.exchange == "patient-to-pro"]

    async def effects(db: AsyncSession, message_id: int) -> None:
        for target in to_patient:
            assert target.matricule is not None
            conversation = await remote.professional_wrote(db, mail_from, target.matricule, message_id)
            await record(db, "message.to_patient", "delivered", rule="R4", actor=mail_from,
                         mailbox_id=target.mailbox_id, message_id=message_id, conversation_id=conversation.id,
                         peer=peer)
            if summary.replies is not None:
                await conversations.set_replies_blocked(
                    db, conversation, summary.replies == "blocked", mail_from, message_id)
            if summary.ends_conversation:
                via = "subject" if summary.fin_in_subject else "header"
                await conversations.close(db, conversation, mail_from, message_id, via)

    def result(message_id: int) -> Outcome:
        return Outcome(replies.ACCEPTED.with_text(f"Message accepted as {message_id}"), message_id,
                       tuple(t.address for t in targets))

    return Plan(message, placements, events, effects if to_patient else None, result)
