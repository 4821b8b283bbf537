"""The store-side reader of routing facts (one statement per recipient) and the conversation effect it feeds."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, select
from support.store import Store

from gateway.routing.conversations import professional_wrote
from gateway.store import db, effects, recipients
from gateway.store.models import Conversation, Event
from gateway.store.recipients import ConversationFacts, IdentityFacts, MailboxFacts, Wanted

MATRICULE = "279035121518989"
PRO = "dr.house@pro.gateway.test"


def test_facts_of_a_recipient_are_read_in_one_statement(store_url: str) -> None:
    store = Store(store_url)
    pro = store.add_mailbox(PRO)
    store.add_identity()

    async def main() -> tuple[Any, Any, Any, int]:
        engine = db.create_engine(store_url)
        statements: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        try:
            async with db.sessionmaker(engine)() as session, session.begin():
                change = professional_wrote(MATRICULE, PRO, professional_id=pro, replies="blocked")
                await effects.apply(session, [(None, change)])
                await effects.apply(session, [(None, professional_wrote(MATRICULE, PRO, professional_id=pro,
                                                                         ends_via="subject"))])
                statements.clear()
                wanted = await recipients.load(session, Wanted(PRO.upper(), identity=MATRICULE,
                                                               conversation=MATRICULE))
                count = len(statements)
                nothing = await recipients.load(session, Wanted("nobody@pro.gateway.test"))
                kinds = [e.kind for e in (await session.execute(select(Event).order_by(Event.id))).scalars()
                         if e.kind.startswith("conversation.")]
                rows = (await session.execute(select(Conversation))).scalars().all()
                assert len(rows) == 1
                return wanted, nothing, kinds, count
        finally:
            await engine.dispose()

    facts, nothing, kinds, count = asyncio.run(main())
    assert count == 1
    assert facts.mailbox == MailboxFacts(pro, "PER", True)
    assert facts.identity == IdentityFacts("qualifiée", None)
    assert facts.conversation == ConversationFacts(facts.conversation.id, "closed", True)
    assert (nothing.mailbox, nothing.identity, nothing.conversation) == (None, None, None)
    # R1 opened, R3 blocked, then (the second message) R2 closed: reopening an open one records nothing.
    assert kinds == ["conversation.opened", "conversation.replies_blocked", "conversation.closed.subject"]
