"""Migration tests' one set-up: bring a store to a revision, and compare the migrated schema with the models.

A table's migration matches its model when Alembic's autogenerate finds no difference for that table between
the migrated database and ``Base.metadata`` (on SQLite and on PostgreSQL alike: the tests take ``store_url``).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from gateway.store import db
from gateway.store.models import Base


async def upgrade_to(url: str, revision: str) -> None:
    """Run the migrations up to ``revision`` only (to put rows in an older schema before the next ones)."""
    from alembic import command

    await asyncio.to_thread(command.upgrade, db._alembic_config(url), revision)


async def schema_differences(url: str, *, migrate: bool = True) -> list[Any]:
    """Every difference Alembic finds between the store at ``url`` (migrated to the newest revision first)
    and the models registered on ``Base.metadata``."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    if migrate:
        await db.migrate(url)
    engine = db.create_engine(url)
    try:
        async with engine.connect() as connection:
            return list(await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)))
    finally:
        await engine.dispose()


def differences_of(differences: Iterable[Any], tables: Iterable[str]) -> list[Any]:
    """The differences that name one of ``tables`` (the tables a migration under test creates or changes)."""
    quoted = tuple(f"'{table}'" for table in tables)
    return [d for d in differences if any(name in repr(d) for name in quoted)]


def migration_differences(url: str, tables: Iterable[str]) -> list[Any]:
    """From a synchronous test: the differences of ``tables`` after migrating the store at ``url``."""
    return differences_of(asyncio.run(schema_differences(url)), tables)
