"""Opening the store: engines for SQLite (WAL, durable commits) and PostgreSQL, and schema migrations.

SQLite is the embedded default: one file, write-ahead log, ``synchronous=FULL`` so that a commit is on disk
before we say "250", and ``BEGIN IMMEDIATE`` so that two gateway processes on one file queue for the write
lock instead of failing on upgrade. PostgreSQL is for real deployments with several instances.

The daemon never creates its store: :func:`check_store` refuses a ``database.url`` whose SQLite file or
PostgreSQL database does not exist (a typo would otherwise serve an empty store), and turns a server that
cannot be reached into one sentence naming the key. ``gateway init`` and ``gateway migrate --create`` create
the store (:func:`create_database`, then :func:`migrate`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from gateway.config import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "gateway_read_only"
#: Page cache of one SQLite connection, in KiB.
SQLITE_CACHE_KIB = 512
#: ``wal_autocheckpoint`` of the store's connections, in pages (SQLite's default is 1,000, 4 MiB): a backstop,
#: the daemon checkpoints from a thread of its own (gateway/store/checkpoint.py).
AUTOCHECKPOINT_PAGES = 16384


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


#: How long a statement waits for another connection's write lock (``PRAGMA busy_timeout``).
BUSY_TIMEOUT_MS = 30000


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when transactions begin (the driver's implicit BEGIN is deferred
    # and would make two writers deadlock on lock upgrade).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # Each pooled connection keeps its own page cache (2 MiB by default) for as long as it lives: reads of
    # message bodies by many concurrent IMAP sessions would pin tens of MiB. The OS cache serves re-reads.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    # A commit that crosses SQLite's default threshold would checkpoint (copy and fsync the main file) before
    # its transactions' 250s; the daemon's checkpointer does that on its own thread (gateway/store/checkpoint.py).
    cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock up front; readers (see :func:`read_sessionmaker`) take a snapshot only;
    # an autocommit connection (store.recipients.FactsReader) opens none: each statement is its own snapshot.
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for ``url`` with the settings durability needs."""
    if is_sqlite(url):
        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        # Connections are threads with aiosqlite: keep enough open that overflow ones are not created and
        # closed under load (each costs a thread, an open and the pragmas).
        path = sqlite_path(url)
        if path is not None and "?" not in url and "async_creator" not in kwargs:
            # One thread hop per statement (gateway/store/sqlite_driver.py), not aiosqlite's four.
            from gateway.store.sqlite_driver import connector

            kwargs["async_creator"] = connector(path)
        engine = create_async_engine(url, pool_size=32, max_overflow=16, **kwargs)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
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
    """Bring the schema to the newest revision (every branch head); a SQLite file is created if missing.

    A PostgreSQL server that cannot be reached raises :class:`StoreUnavailable` (one sentence).
    """
    from alembic import command

    try:
        command.upgrade(_alembic_config(url), "heads")
    except Exception as exc:
        sentence = _unreachable(url, exc)
        if sentence is None:
            raise
        raise StoreUnavailable(sentence) from None


async def migrate(url: str) -> None:
    await asyncio.to_thread(migrate_sync, url)


# --- does the configured store exist, can it be reached ------------------------------------------------------
#: How long the start waits for the PostgreSQL server to answer before saying it cannot be reached.
CONNECT_TIMEOUT = 10.0
_CREATE_HINT = "create it with 'gateway init' or 'gateway migrate --create'"


class StoreUnavailable(ConfigError):
    """The store ``database.url`` names does not exist or cannot be reached, as one sentence naming the key."""

    def __init__(self, sentence: str, *, missing: bool = False) -> None:
        super().__init__(sentence)
        #: The server answered: the database is not there (``gateway migrate --create`` makes it).
        self.missing = missing


def shown_url(url: str) -> str:
    """``url`` without its password, for sentences and logs."""
    try:
        parsed = make_url(url)
        if parsed.password is None:
            return parsed.render_as_string(hide_password=False)
        return parsed.render_as_string(hide_password=True).replace(":***@", "@", 1)
    except Exception:  # not a URL SQLAlchemy reads: say nothing of it but its scheme
        return url.split(":", 1)[0] + ":..."


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite ``url`` names (None for an in-memory database)."""
    tail = url.split("///", 1)[1] if "///" in url else ""
    tail = tail.split("?", 1)[0]
    return None if tail in ("", ":memory:") else Path(tail)


def _missing_sqlite(url: str) -> str:
    return (f"Configuration key 'database.url' names a SQLite file that does not exist ({sqlite_path(url)}): "
            f"{_CREATE_HINT}.")


def _missing_postgres(url: str) -> str:
    return (f"Configuration key 'database.url' names a PostgreSQL database that does not exist "
            f"({shown_url(url)}): {_CREATE_HINT}.")


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (SQLAlchemy's ``orig``, ``__cause__``, ``__context__``), bounded."""
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(found) < 16:
        item = todo.pop()
        if any(item is seen for seen in found):
            continue
        found.append(item)
        for nxt in (getattr(item, "orig", None), item.__cause__, item.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return found


def _reason(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip().splitlines()[0]
    return text.rstrip(".")


def _unreachable(url: str, exc: BaseException) -> str | None:
    """One sentence for a store that does not exist or cannot be reached, or None for any other failure."""
    if is_sqlite(url):
        return None
    import asyncpg

    shown = shown_url(url)
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            return _missing_postgres(url)
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
            return (f"Configuration key 'database.url' names a PostgreSQL server that refuses the login "
                    f"({shown}: {_reason(cause)}).")
        if isinstance(cause, TimeoutError):
            return (f"Configuration key 'database.url' names a PostgreSQL server that cannot be reached "
                    f"({shown}: no answer within {CONNECT_TIMEOUT:g} seconds).")
        if isinstance(cause, OSError):
            return (f"Configuration key 'database.url' names a PostgreSQL server that cannot be reached "
                    f"({shown}: {_reason(cause)}).")
    return None


def _asyncpg_dsn(url: str, database: str | None = None) -> tuple[str, str]:
    """The plain libpq DSN asyncpg takes for ``url`` (optionally another database) and the database's name."""
    parsed = make_url(url)
    name = parsed.database or "postgres"
    target = parsed.set(drivername="postgresql", database=database or name)
    return target.render_as_string(hide_password=False), name


async def _connect(dsn: str) -> Any:
    import asyncpg

    return await asyncio.wait_for(asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT), CONNECT_TIMEOUT + 1)


async def check_store(url: str) -> None:
    """Raise :class:`StoreUnavailable` unless the store ``url`` names exists and can be reached.

    The daemon calls this before it migrates, so that a mistyped ``database.url`` is refused instead of
    creating an empty store that would serve no account.
    """
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None and not path.is_file():
            raise StoreUnavailable(_missing_sqlite(url), missing=True)
        return
    dsn, _ = _asyncpg_dsn(url)
    try:
        conn = await _connect(dsn)
    except Exception as exc:
        sentence = _unreachable(url, exc)
        if sentence is None:
            raise
        raise StoreUnavailable(sentence, missing=sentence == _missing_postgres(url)) from None
    await conn.close()


async def create_database(url: str) -> bool:
    """Create the SQLite file's folder or the PostgreSQL database ``url`` names if missing; True if created.

    The schema itself is :func:`migrate`'s (which also creates a missing SQLite file).
    """
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is None or path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        return True
    try:
        await check_store(url)
        return False
    except StoreUnavailable as exc:
        if not exc.missing:
            raise
    dsn, name = _asyncpg_dsn(url, database="postgres")
    try:
        conn = await _connect(dsn)
    except Exception as exc:
        sentence = _unreachable(url, exc)
        if sentence is None:
            raise
        raise StoreUnavailable(sentence) from None
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()
    return True
