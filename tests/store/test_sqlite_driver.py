"""The one-hop SQLite driver (gateway/store/sqlite_driver.py) behind SQLAlchemy: results, row counts, ids,
executemany, errors and transactions behave as with aiosqlite's own cursors, in one thread call per statement.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.store import db
from gateway.store.sqlite_driver import BUSY, OneHopConnection


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_statements_results_counts_and_ids_through_the_one_hop_driver(tmp_path: Path) -> None:
    async def main() -> None:
        engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.sqlite3'}")
        calls: list[str] = []

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
            calls.append(statement)

        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.driver_connection, OneHopConnection)
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            inserted = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
            assert inserted.lastrowid == 1 and inserted.rowcount == 1
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}, {"v": "d"}])
            returned = await conn.execute(text("INSERT INTO t (v) VALUES ('e'), ('f') RETURNING id"))
            assert sorted(returned.scalars()) == [5, 6]
            updated = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > 2"))
            assert updated.rowcount == 4
            rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!"), (5, "e!"), (6, "f!")]
            assert (await conn.execute(text("SELECT v FROM t WHERE id = 99"))).first() is None
        with pytest.raises(exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        async with engine.begin() as conn:  # a failed transaction left nothing behind, the pool still works
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 6
            with pytest.raises(exc.OperationalError):
                await conn.execute(text("SELECT nope FROM t"))
        await engine.dispose()
        assert any(c.startswith("INSERT INTO t (v) VALUES (?)") for c in calls)

    _run(main())


async def _store_of_one_table(url: str) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """An engine on a new store with one table ``t (v TEXT)``, and its writers' sessions."""
    engine = db.create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT)"))
    return engine, db.sessionmaker(engine)


def test_a_rolled_back_transaction_is_undone_and_a_committed_one_is_durable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'd.sqlite3'}"

    async def main() -> None:
        engine, sessions = await _store_of_one_table(url)
        async with sessions() as session:
            async with session.begin():
                await session.execute(text("INSERT INTO t VALUES ('kept')"))
            transaction = await session.begin()
            await session.execute(text("INSERT INTO t VALUES ('undone')"))
            await transaction.rollback()
        await engine.dispose()
        other = db.create_engine(url)  # a fresh engine (new connections) reads what was committed
        async with other.connect() as conn:
            assert list((await conn.execute(text("SELECT v FROM t"))).scalars()) == ["kept"]
        await other.dispose()

    _run(main())


async def _driver(session: AsyncSession) -> OneHopConnection:
    driver = (await (await session.connection()).get_raw_connection()).driver_connection
    assert isinstance(driver, OneHopConnection)
    return driver


def test_plain_statements_inline_run_in_the_transaction_and_never_wait_for_another_writer(tmp_path: Path) -> None:
    """``run_plain_inline`` (the group commit's batch, on the event loop's thread): its statements are the
    session's transaction; when another connection holds the write lock it runs nothing and says BUSY at once
    (a wait there would stall every session of the process), and the same work then waits on the thread."""
    path = tmp_path / "d.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"

    def insert(value: str) -> Callable[[sqlite3.Connection], int]:
        return lambda connection: connection.execute("INSERT INTO t VALUES (?)", (value,)).lastrowid or 0

    async def main() -> None:
        engine, sessions = await _store_of_one_table(url)
        async with sessions() as session:
            async with session.begin():
                driver = await _driver(session)
                assert driver.run_plain_inline(insert("inline")) == 1
            transaction = await session.begin()
            driver = await _driver(session)
            assert driver.run_plain_inline(insert("undone")) == 2
            await transaction.rollback()

        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        async with sessions() as session:
            async with session.begin():
                driver = await _driver(session)
                assert driver.run_plain_inline(insert("waited")) is BUSY
                waiting = asyncio.ensure_future(driver.run_plain(insert("waited")))
                other.execute("COMMIT")
                assert await waiting == 2
                timeout = await driver.run_plain(lambda c: c.execute("PRAGMA busy_timeout").fetchone()[0])
                assert timeout == db.BUSY_TIMEOUT_MS  # the thread's statements wait for other writers again
        other.close()
        await engine.dispose()
        check = sqlite3.connect(path)
        assert [r[0] for r in check.execute("SELECT v FROM t ORDER BY rowid")] == ["inline", "waited"]
        check.close()

    _run(main())
