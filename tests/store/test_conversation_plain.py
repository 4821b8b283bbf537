"""SQLite's acceptance path applies conversation changes with plain statements on the connection's thread
(gateway.store.effects.apply_conversation_plain): the conversations and events it leaves are those the
SQLAlchemy path (gateway.store.effects.apply, PostgreSQL's) leaves, for every change of R1, R2, R3 and R5.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.routing.conversations import professional_wrote
from gateway.store import db, effects, mailstore
from gateway.store.effects import ConversationChange, EventRow
from gateway.store.events import now
from gateway.store.models import Conversation, Event

EXTRA = (EventRow("message.to_patient", "accepted", None, "dr@pro.gateway.test", None, detail={"n": 1}),)


def _changes(professional_id: int) -> list[ConversationChange]:
    """Open, write again (nothing changes), block replies, close with [FIN], re-open and allow replies, for
    our professional and for a remote one; two patients."""
    ours = {"professional_id": professional_id}
    return [
        professional_wrote("1840575123456AB", "dr@pro.gateway.test", **ours),  # type: ignore[arg-type]
        professional_wrote("1840575123456AB", "dr@pro.gateway.test", events=EXTRA, **ours),  # type: ignore[arg-type]
        professional_wrote("1840575123456AB", "dr@pro.gateway.test", replies="blocked", **ours),  # type: ignore[arg-type]
        professional_wrote("1840575123456AB", "dr@pro.gateway.test", ends_via="subject", **ours),  # type: ignore[arg-type]
        professional_wrote("1840575123456AB", "dr@pro.gateway.test", replies="allowed", **ours),  # type: ignore[arg-type]
        professional_wrote("2920175123456CD", "dr@pro.gateway.test", replies="blocked", ends_via="header",
                           **ours),  # type: ignore[arg-type]
        professional_wrote("2920175123456CD", "", remote_professional="Dr.Loin@Autre-Operateur.test"),
        professional_wrote("2920175123456CD", "", remote_professional="dr.loin@autre-operateur.test",
                           ends_via="subject"),
    ]


async def _outcome(url: str, plain: bool) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    await db.migrate(url)
    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            professional_id = await mailstore.create_mailbox(session, "dr@pro.gateway.test", "PER")
            for change in _changes(professional_id):
                if plain:
                    connection = await (await session.connection()).get_raw_connection()
                    driver: Any = connection.driver_connection
                    at = now()
                    await driver.run_plain(lambda sqlite, c=change, t=at: effects.apply_conversation_plain(
                        sqlite, c, None, t))
                else:
                    await effects.apply(session, [(None, change)])
        async with db.sessionmaker(engine)() as session:
            conversations = (await session.execute(select(
                Conversation.id, Conversation.professional_id, Conversation.remote_professional,
                Conversation.matricule, Conversation.state, Conversation.replies_blocked)
                .order_by(Conversation.id))).all()
            events = (await session.execute(select(
                Event.kind, Event.outcome, Event.rule, Event.actor, Event.mailbox_id, Event.message_id,
                Event.conversation_id, Event.detail).where(Event.kind.like("conversation.%") | (Event.kind ==
                                                                                               "message.to_patient"))
                .order_by(Event.id))).all()
            return [tuple(r) for r in conversations], [tuple(r) for r in events]
    finally:
        await engine.dispose()


def test_plain_conversation_changes_leave_the_rows_and_events_of_the_sqlalchemy_path(tmp_path: Path) -> None:
    through_sqlalchemy = asyncio.run(_outcome(f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite3'}", plain=False))
    through_plain = asyncio.run(_outcome(f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}", plain=True))
    assert through_plain == through_sqlalchemy
    conversations, events = through_plain
    assert [(c[3], c[4], c[5]) for c in conversations] == [
        ("1840575123456AB", "open", False), ("2920175123456CD", "closed", True), ("2920175123456CD", "closed", False)]
    kinds = [e[0] for e in events]
    assert kinds.count("conversation.opened") == 3 and kinds.count("conversation.reopened") == 1
    assert "conversation.replies_unblocked" in kinds and "message.to_patient" in kinds
