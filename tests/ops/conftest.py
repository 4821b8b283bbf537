"""Fixtures of the operations tests: a migrated store (SQLite and PostgreSQL) as a URL."""

from __future__ import annotations

import pytest
from support.store import Store


async def _noop(_session: object) -> None:
    return None


@pytest.fixture
def migrated_url(store_url: str) -> str:
    """The parametrised store, migrated to the newest revision, as an operator leaves it before starting."""
    Store(store_url).run(_noop)
    return store_url


@pytest.fixture
def migrated_sqlite(sqlite_url: str) -> str:
    Store(sqlite_url).run(_noop)
    return sqlite_url
