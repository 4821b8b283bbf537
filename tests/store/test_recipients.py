"""The store-side reader of routing facts (one statement per recipient) and the conversation effect it feeds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import DBAPIError
from support.store import Store

from gateway.routing.conversations import professional_wrote
from gateway.store import db, effects, recipients
from gateway.store.models import Conversation, Event, Identity, Mailbox
from gateway.store.recipients import (
    ConversationFacts,
    FactsReader,
    IdentityFacts,
    MailboxFacts,
    RecipientFacts,
    Wanted,
)

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


def test_facts_reader_sees_every_commit_made_after_its_first_read(store_url: str) -> None:
    """The held autocommit connection keeps no snapshot: a mailbox disabled and an identity re-qualified by
    another connection are seen at the next read (R4, and a disabled mailbox refused at the next RCPT)."""
    store = Store(store_url)
    pro = store.add_mailbox(PRO)
    store.add_identity()

    async def main() -> list[RecipientFacts]:
        engine = db.create_engine(store_url)
        reader = FactsReader(engine)
        wanted = Wanted(PRO, identity=MATRICULE)
        seen: list[RecipientFacts] = []
        try:
            async with reader.connection() as connection:
                seen.append(await recipients.load(connection, wanted))
            async with db.sessionmaker(engine)() as session, session.begin():
                await session.execute(update(Mailbox).where(Mailbox.id == pro).values(active=False))
                await session.execute(update(Identity).where(Identity.matricule == MATRICULE)
                                      .values(status="provisoire"))
            async with reader.connection() as connection:
                seen.append(await recipients.load(connection, wanted))
        finally:
            await reader.close()
            await engine.dispose()
        return seen

    before, after = asyncio.run(main())
    assert before.mailbox == MailboxFacts(pro, "PER", True) and before.identity == IdentityFacts("qualifiée", None)
    assert after.mailbox == MailboxFacts(pro, "PER", False)
    assert after.identity == IdentityFacts("provisoire", None)


def test_facts_reader_reconnects_after_a_failed_statement(store_url: str) -> None:
    """A read that fails drops the held connection; the next one opens a fresh connection and succeeds."""
    store = Store(store_url)
    pro = store.add_mailbox(PRO)

    async def main() -> RecipientFacts:
        engine = db.create_engine(store_url)
        reader = FactsReader(engine)
        try:
            with pytest.raises(DBAPIError):
                async with reader.connection() as connection:
                    await connection.execute(text("SELECT * FROM no_such_table"))
            async with reader.connection() as connection:
                return await recipients.load(connection, Wanted(PRO))
        finally:
            await reader.close()
            await engine.dispose()

    assert asyncio.run(main()).mailbox == MailboxFacts(pro, "PER", True)


def test_facts_read_by_the_one_hop_reader_are_those_of_the_statement(store_url: str) -> None:
    """On a SQLite file the reads before a unit take the one-hop reader: for every shape of the query (mailbox,
    identity, a conversation with a local or a remote professional, present or absent) its facts are the
    SQLAlchemy statement's, booleans included."""
    store = Store(store_url)
    pro = store.add_mailbox(PRO)
    store.add_identity()
    remote = "dr.who@other-operator.test"

    async def main() -> tuple[list[RecipientFacts], list[RecipientFacts], bool]:
        engine = db.create_engine(store_url)
        async with db.sessionmaker(engine)() as session, session.begin():
            await effects.apply(session, [(None, professional_wrote(MATRICULE, PRO, professional_id=pro,
                                                                     replies="blocked"))])
            await effects.apply(session, [(None, professional_wrote(MATRICULE, remote, remote_professional=remote))])
        shapes = [Wanted(PRO), Wanted(PRO.upper(), identity=MATRICULE), Wanted(identity=MATRICULE),
                  Wanted(PRO, conversation=MATRICULE), Wanted(PRO, conversation=MATRICULE,
                                                              remote_professional=remote.upper()),
                  Wanted("nobody@pro.gateway.test", identity="1" * 15, conversation="1" * 15), Wanted()]
        reader = FactsReader(engine)
        try:
            async with reader.connection() as facts:
                fast = [await recipients.load(facts, wanted) for wanted in shapes]
                one_hop = facts.sqlite is not None
                slow = [await recipients.load(facts.connection, wanted) for wanted in shapes]
        finally:
            await reader.close()
            await engine.dispose()
        return fast, slow, one_hop

    fast, slow, one_hop = asyncio.run(main())
    assert one_hop is store_url.startswith("sqlite")
    assert fast == slow
    assert fast[0].mailbox == MailboxFacts(pro, "PER", True) and isinstance(fast[0].mailbox.active, bool)
    local, far = fast[3].conversation, fast[4].conversation
    assert local is not None and local.state == "open" and local.replies_blocked is True
    assert far is not None and far.state == "open" and far.replies_blocked is False and far.id != local.id
    assert fast[5] == fast[6] == RecipientFacts()
