"""Conversations with a professional hosted by another operator (relayed mail), keyed by the remote address.

The rules are those of :mod:`gateway.routing.conversations` (R1–R3, R5): a remote professional writing to our
patient opens (or re-opens) the conversation, ``[FIN]`` closes it, and our patient may answer only while it is
open. The conversation row has ``professional_id`` NULL and ``remote_professional`` set (migration relay_0001);
its changes are :func:`conversations.professional_wrote` keyed by the remote address.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import Conversation


async def find(session: AsyncSession, remote_address: str, matricule: str) -> Conversation | None:
    query = select(Conversation).where(Conversation.remote_professional == remote_address.lower(),
                                       Conversation.matricule == matricule)
    return (await session.execute(query)).scalar_one_or_none()
