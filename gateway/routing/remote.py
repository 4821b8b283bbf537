"""Conversations with a professional hosted by another operator (relayed mail), keyed by the remote address.

The rules are those of :mod:`gateway.routing.conversations` (R1–R3, R5): a remote professional writing to our
patient opens (or re-opens) the conversation, ``[FIN]`` closes it, and our patient may answer only while it is
open. The conversation row has ``professional_id`` NULL and ``remote_professional`` set (migration relay_0001);
closing and blocking reuse :func:`conversations.close` and :func:`conversations.set_replies_blocked`.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.routing.conversations import OPEN
from gateway.store.events import now, record
from gateway.store.models import Conversation


async def find(session: AsyncSession, remote_address: str, matricule: str) -> Conversation | None:
    query = select(Conversation).where(Conversation.remote_professional == remote_address.lower(),
                                       Conversation.matricule == matricule)
    return (await session.execute(query)).scalar_one_or_none()


async def professional_wrote(session: AsyncSession, remote_address: str, matricule: str,
                             message_id: int) -> Conversation:
    """A remote professional wrote to our patient: the conversation is open from now on (R1, R5)."""
    remote_address = remote_address.lower()
    conversation = await find(session, remote_address, matricule)
    at = now()
    if conversation is None:
        result = await session.execute(insert(Conversation).values(
            professional_id=None, remote_professional=remote_address, matricule=matricule, state=OPEN,
            replies_blocked=False, opened_at=at, updated_at=at).returning(Conversation.id))
        conversation_id = result.scalar_one()
        await record(session, "conversation.opened", OPEN, rule="R1", actor=remote_address,
                     conversation_id=conversation_id, message_id=message_id, remote=True)
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        return conversation
    if conversation.state != OPEN:
        await session.execute(update(Conversation).where(Conversation.id == conversation.id)
                              .values(state=OPEN, updated_at=at))
        conversation.state = OPEN
        await record(session, "conversation.reopened", OPEN, rule="R5", actor=remote_address,
                     conversation_id=conversation.id, message_id=message_id, remote=True)
    return conversation
