"""Fixtures of the mailbox view tests: a migrated store (SQLite and PostgreSQL) and an account in it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gateway.imap.view.folders import Folders
from gateway.imap.view.store import ViewStore
from gateway.store import db, mailstore


@dataclass
class Account:
    store: ViewStore
    account_id: int
    folders: Folders
    url: str


@pytest.fixture
async def account(store_url: str) -> AsyncIterator[Account]:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    store = ViewStore(db.sessionmaker(engine), db.read_sessionmaker(engine))

    async def work(session: object) -> int:
        return await mailstore.create_mailbox(session, "alice@pro.gateway.test", "PER")  # type: ignore[arg-type]

    account_id = await store.write(work)
    yield Account(store, account_id, Folders(store, account_id), store_url)
    await engine.dispose()
