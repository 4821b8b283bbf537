"""Conversations between a professional mailbox and a patient (R1–R3, R5), and their recorded history.

A conversation is opened (or re-opened) by the professional writing to the patient; it is closed by a
``[FIN]`` message (R2); replies can be blocked and unblocked by the professional (R3). Each change is an
event naming its rule (R5).
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.events import now, record
from gateway.store.models import Conversation, Event

OPEN = "open"
CLOSED = "closed"


async def find(session: AsyncSession, professional_id: int, matricule: str) -> Conversation | None:
    query = select(Conversation).where(Conversation.professional_id == professional_id,
                                       Conversation.matricule == matricule)
    return (await session.execute(query)).scalar_one_or_none()


async def professional_wrote(
    session: AsyncSession, professional_id: int, matricule: str, actor: str, message_id: int
) -> Conversation:
    """The professional wrote to the patient: the conversation is open from now on (R1, R5)."""
    conversation = await find(session, professional_id, matricule)
    at = now()
    if conversation is None:
        result = await session.execute(insert(Conversation).values(
            professional_id=professional_id, matricule=matricule, state=OPEN, replies_blocked=False,
            opened_at=at, updated_at=at).returning(Conversation.id))
        conversation_id = result.scalar_one()
        await record(session, "conversation.opened", OPEN, rule="R1", actor=actor, mailbox_id=professional_id,
                     conversation_id=conversation_id, message_id=message_id)
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation
    if conversation.state != OPEN:
        await _set(session, conversation, actor, "conversation.reopened", "R5", message_id, state=OPEN)
    return conversation


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
        await _set(session, conversation, actor, f"conversation.closed.{via}", "R2", message_id, state=CLOSED)


async def set_replies_blocked(session: AsyncSession, conversation: Conversation, blocked: bool, actor: str,
                              message_id: int | None = None) -> None:
    """Forbid or allow the patient's replies (R3)."""
    if conversation.replies_blocked != blocked:
        kind = "conversation.replies_blocked" if blocked else "conversation.replies_unblocked"
        await _set(session, conversation, actor, kind, "R3", message_id, replies_blocked=blocked)


async def history(session: AsyncSession, conversation_id: int) -> list[Event]:
    query = select(Event).where(Event.conversation_id == conversation_id).order_by(Event.id)
    return list((await session.execute(query)).scalars().all())


async def list_conversations(session: AsyncSession, professional_id: int | None = None) -> list[Conversation]:
    query = select(Conversation).order_by(Conversation.id)
    if professional_id is not None:
        query = query.where(Conversation.professional_id == professional_id)
    return list((await session.execute(query)).scalars().all())
