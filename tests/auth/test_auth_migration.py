"""Migration auth_0001 creates exactly the table gateway.auth.models describes (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import gateway.auth.models  # noqa: F401  (registers auth_failures)
from gateway.store import db
from gateway.store.models import Base


async def _differences(url: str) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    await db.migrate(url)
    engine = db.create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
    finally:
        await engine.dispose()


def test_auth_migration_matches_the_model(store_url: str) -> None:
    diff = [d for d in asyncio.run(_differences(store_url)) if "auth_failures" in repr(d)]
    assert diff == []
