"""Conversations between a professional mailbox and a patient (R1–R3, R5), and their recorded history.

A conversation is opened (or re-opened) by the professional writing to the patient; it is closed by a
``[FIN]`` message (R2); replies can be blocked and unblocked by the professional (R3). Each change is an
event naming its rule (R5). What a message does is computed as data (:func:`professional_wrote`) and
applied by the store with the message; the administration commands change a conversation directly.

A professional hosted by another operator (relayed mail) has the same conversations, keyed by the remote
address: the row has ``professional_id`` NULL and ``remote_professional`` set (migration relay_0001).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.codes.rules import Rule
from gateway.store.effects import ConversationChange, EventRow, Step
from gateway.store.events import now, record
from gateway.store.models import Conversation, Event

OPEN = "open"
CLOSED = "closed"


async def find(session: AsyncSession, professional_id: int, matricule: str) -> Conversation | None:
    query = select(Conversation).where(Conversation.professional_id == professional_id,
                                       Conversation.matricule == matricule)
    return (await session.execute(query)).scalar_one_or_none()


def professional_wrote(matricule: str, actor: str, *, professional_id: int | None = None,
                       remote_professional: str | None = None, replies: str | None = None,
                       ends_via: str | None = None, events: tuple[EventRow, ...] = ()) -> ConversationChange:
    """What a professional's message to a patient does to their conversation, as data the store applies.

    The professional writing opens it (R1) or re-opens it (R5); ``replies`` ("blocked" or "allowed") forbids or
    allows the patient's replies (R3); ``ends_via`` ("subject" or "header") closes it with ``[FIN]`` (R2). Each
    change that happens is recorded with its rule (R5). The key is our professional's mailbox, or the remote
    professional's address for relayed mail. ``events`` are recorded against
    the conversation once it has its id.
    """
    if (professional_id is None) == (remote_professional is None):
        raise ValueError("a conversation is keyed by our professional's mailbox or by a remote address, not both")
    key: dict[str, object]
    if professional_id is not None:
        key = {"professional_id": professional_id, "matricule": matricule}
        detail: dict[str, object] = {}
    else:
        assert remote_professional is not None
        key = {"remote_professional": remote_professional.lower(), "matricule": matricule}
        detail = {"remote": True}
        actor = remote_professional.lower()

    def event(kind: str, outcome: str, rule: Rule) -> EventRow:
        return EventRow(kind, outcome, rule, actor, professional_id, detail=dict(detail))

    steps = [Step({"state": OPEN}, event("conversation.reopened", OPEN, Rule.R5))]
    if replies is not None:
        blocked = replies == "blocked"
        steps.append(Step({"replies_blocked": blocked}, event(
            "conversation.replies_blocked" if blocked else "conversation.replies_unblocked",
            "blocked" if blocked else "unblocked", Rule.R3)))
    if ends_via is not None:
        steps.append(Step({"state": CLOSED}, event(f"conversation.closed.{ends_via}", CLOSED, Rule.R2)))
    return ConversationChange(key, {"state": OPEN, "replies_blocked": False},
                              event("conversation.opened", OPEN, Rule.R1), tuple(steps), events)


async def _set(session: AsyncSession, conversation: Conversation, actor: str, kind: str, rule: str,
               message_id: int | None, **values: object) -> None:
    await session.execute(update(Conversation).where(Conversation.id == conversation.id)
                          .values(updated_at=now(), **values))
    for key, value in values.items():
        setattr(conversation, key, value)
    outcome = str(values.get("state", "blocked" if values.get("replies_blocked") else "unblocked"))
    await record(session, kind, outcome, rule=rule, actor=actor, mailbox_id=conversation.professional_id,
                 conversation_id=conversation.id, message_id=message_id)


async def close(session: AsyncSession, conversation: Conversation, actor: str, message_id: int | None,
                via: str) -> None:
    """``[FIN]`` (or ``X-MSS-MES: FIN``): the patient can no longer write until the professional does (R2)."""
    if conversation.state != CLOSED:
        await _set(session, conversation, actor, f"conversation.closed.{via}", Rule.R2, message_id, state=CLOSED)


async def set_replies_blocked(session: AsyncSession, conversation: Conversation, blocked: bool, actor: str,
                              message_id: int | None = None) -> None:
    """Forbid or allow the patient's replies (R3)."""
    if conversation.replies_blocked != blocked:
        kind = "conversation.replies_blocked" if blocked else "conversation.replies_unblocked"
        await _set(session, conversation, actor, kind, Rule.R3, message_id, replies_blocked=blocked)


async def history(session: AsyncSession, conversation_id: int) -> list[Event]:
    query = select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
    return list((await session.execute(query)).scalars().all())


async def list_conversations(session: AsyncSession, professional_id: int | None = None) -> list[Conversation]:
    query = select(Conversation).order_by(Conversation.id)
    if professional_id is not None:
        query = query.where(Conversation.professional_id == professional_id)
    return list((await session.execute(query)).scalars().all())
