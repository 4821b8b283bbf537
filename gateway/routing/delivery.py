"""One accepted submission, as one unit of the store's transaction (maddy's two-phase contract, committed once).

The unit re-checks each recipient's decision inside the transaction, stores the message once, delivers it to
each accepted recipient's INBOX and to the sender's Sent, applies the conversation changes of R1–R3 and
records every decision (R5, R18). The caller says "250" only after the commit that contains all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.accounts import Account
from gateway.config import Config
from gateway.routing import conversations, replies
from gateway.routing.headers import MSS_MES, Summary
from gateway.routing.policy import Decision, Target, decide
from gateway.routing.replies import Reply
from gateway.store.events import record
from gateway.store.mailstore import StoredMessage, deliver, folder_id, store_message


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


async def deliver_submission(
    session: AsyncSession,
    config: Config,
    sender: Account,
    mail_from: str,
    recipients: list[str],
    raw: bytes,
    summary: Summary,
) -> Outcome:
    accepted: list[Target] = []
    refused: list[tuple[str, Decision]] = []
    for address in recipients:
        decision = await decide(session, config, sender, address)
        if decision.target is not None:
            accepted.append(decision.target)
        else:
            refused.append((address, decision))
            await record_refusal(session, sender, decision)
    if not accepted:
        reply = refused[0][1].reply if len(refused) == 1 else replies.ALL_RECIPIENTS_REFUSED
        return Outcome(reply, refused=tuple(refused))

    to_patient = any(t.exchange == "pro-to-patient" for t in accepted)
    body = with_fin_header(raw, summary) if to_patient else raw
    message_id = await store_message(session, StoredMessage(
        raw=body, mail_from=mail_from, rcpt_to=[t.address for t in accepted], sender_mailbox_id=sender.id,
        message_id_header=summary.message_id, subject=summary.subject, header_from=summary.header_from_raw,
    ))
    for target in accepted:
        await deliver(session, message_id, await folder_id(session, target.mailbox_id, "INBOX"))
        await _apply_rules(session, sender, target, summary, message_id)
    await deliver(session, message_id, await folder_id(session, sender.id, "Sent"), flags="\\Seen")
    await record(session, "smtp.message", "accepted", actor=sender.address, mailbox_id=sender.id,
                 message_id=message_id, recipients=len(accepted), refused=len(refused), size=len(body))
    return Outcome(replies.ACCEPTED.with_text(f"Message accepted as {message_id}"), message_id,
                   tuple(t.address for t in accepted), tuple(refused))


async def _apply_rules(session: AsyncSession, sender: Account, target: Target, summary: Summary,
                       message_id: int) -> None:
    if target.exchange == "patient-to-pro":
        await record(session, "message.patient_reply", "delivered", rule="R1", actor=sender.address,
                     mailbox_id=target.mailbox_id, message_id=message_id, conversation_id=target.conversation_id)
        return
    if target.exchange != "pro-to-patient":
        return
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
