"""Direct store access for tests: set up accounts and identities, and look at what was stored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.passwords import hash_password
from gateway.ins_matching import identities
from gateway.ins_matching.insi import TEST_PATIENT
from gateway.store import db, mailstore
from gateway.store.models import Delivery, Event, Folder, Mailbox, Message

T = TypeVar("T")


class Store:
    """Synchronous helpers over the gateway's store, for tests that drive the gateway with blocking clients."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._migrated = False

    def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``work`` in a writing transaction (the schema brought up to date by this helper's first call)."""
        return asyncio.run(self._session(work, write=True))

    def read(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``work`` in a reading snapshot: on SQLite it takes no write lock, so a poll made while the gateway
        writes without a pause is answered at once instead of waiting for a turn at the lock."""
        return asyncio.run(self._session(work, write=False))

    async def _session(self, work: Callable[[AsyncSession], Awaitable[T]], *, write: bool) -> T:
        if not self._migrated:  # once per helper: the check costs ~40 ms and the write lock
            await db.migrate(self.url)
            self._migrated = True
        engine = db.create_engine(self.url)
        try:
            sessions = db.sessionmaker(engine) if write else db.read_sessionmaker(engine)
            async with sessions() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    def add_mailbox(self, address: str, kind: str = "PER", password: str = "secret-password",
                    **kwargs: Any) -> int:
        matricule = address.split("@")[0].upper() if kind == "PAT" else None
        return self.run(lambda s: mailstore.create_mailbox(
            s, address, kind, password_hash=hash_password(password), matricule=matricule, **kwargs))

    def add_identity(self, matricule: str = TEST_PATIENT.matricule, *, insi: bool = True, document: bool = True,
                     traits: identities.Traits = TEST_PATIENT.traits, oid: str = TEST_PATIENT.oid) -> int:
        async def work(s: AsyncSession) -> int:
            identity_id = await identities.add_identity(s, matricule, oid, traits, "test", allow_test=True)
            if insi:
                await identities.record_insi(s, identity_id, "found", "test")
            if document:
                await identities.record_document(s, identity_id, "passport", "test")
            return identity_id
        return self.run(work)

    def messages_in(self, address: str, folder: str = "INBOX") -> list[bytes]:
        async def work(s: AsyncSession) -> list[bytes]:
            query = (select(Message.raw).join(Delivery, Delivery.message_id == Message.id)
                     .join(Folder, Folder.id == Delivery.folder_id).join(Mailbox, Mailbox.id == Folder.mailbox_id)
                     .where(Mailbox.address == address.lower(), Folder.name == folder).order_by(Delivery.uid))
            return list((await s.execute(query)).scalars().all())
        return self.read(work)

    def count_messages(self) -> int:
        return self.read(lambda s: _scalar(s, select(func.count()).select_from(Message)))

    def events(self, kind_prefix: str = "") -> list[Event]:
        async def work(s: AsyncSession) -> list[Event]:
            query = select(Event).where(Event.kind.startswith(kind_prefix)).order_by(Event.id)
            return list((await s.execute(query)).scalars().all())
        return self.read(work)


async def _scalar(session: AsyncSession, query: Any) -> Any:
    return (await session.execute(query)).scalar_one()
