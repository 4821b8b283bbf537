"""Opening the store: engines for SQLite (WAL, durable commits) and PostgreSQL, and schema migrations.

SQLite is the embedded default: one file, write-ahead log, ``synchronous=FULL`` so that a commit is on disk
before we say "250", and ``BEGIN IMMEDIATE`` so that two gateway processes on one file queue for the write
lock instead of failing on upgrade. PostgreSQL is for real deployments with several instances.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "gateway_read_only"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when transactions begin (the driver's implicit BEGIN is deferred
    # and would make two writers deadlock on lock upgrade).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock up front; readers (see :func:`read_sessionmaker`) take a snapshot only.
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url`` with the settings durability needs."""
    if is_sqlite(url):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        # Connections are threads with aiosqlite: keep enough open that overflow ones are not created and
        # closed under load (each costs a thread, an open and the pragmas).
        engine = create_async_engine(url, pool_size=32, max_overflow=16, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for reading: on SQLite they do not take the write lock, so they never wait for writers."""
    return async_sessionmaker(engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)


def _alembic_config(url: str) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def migrate_sync(url: str) -> None:
    """Bring the schema to the newest revision (every branch head)."""
    from alembic import command

    command.upgrade(_alembic_config(url), "heads")


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)
