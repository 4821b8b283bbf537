"""The SQLite write path of group commit: the writers' turn is taken before the write lock, a BEGIN rides
with the transaction's first statement, the WAL is checkpointed off the committing connections, and a message's
anatomy can be prepared before its transaction.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, text

from gateway.store import db
from gateway.store.anatomy import index_rows, prepare
from gateway.store.changes import ChangeHub
from gateway.store.checkpoint import BUSY_INTERVAL, IDLE_INTERVAL, Checkpointer, next_wait
from gateway.store.committer import GroupCommitter
from gateway.store.turn import Turn


def _locked_by_another(path: Path) -> bool:
    """Whether another connection finds SQLite's write lock taken right now."""
    other = sqlite3.connect(str(path), timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return True
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    return False


def test_a_begin_takes_the_write_lock_with_its_first_statement_and_an_empty_transaction_takes_none(
        tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"

    async def main() -> None:
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        sessions = db.sessionmaker(engine)
        async with sessions() as session, session.begin():
            await session.execute(text("CREATE TABLE t (v TEXT UNIQUE)"))
        async with sessions() as session, session.begin():
            await session.connection()  # begun, no statement yet: nothing is locked
            assert not _locked_by_another(path)
            await session.execute(text("INSERT INTO t VALUES ('a')"))
            assert _locked_by_another(path)  # BEGIN IMMEDIATE ran before the insert, on the same connection
        assert not _locked_by_another(path)
        with pytest.raises(exc.IntegrityError):  # a first statement that fails: rolled back, lock released
            async with sessions() as session, session.begin():
                await session.execute(text("INSERT INTO t VALUES ('a')"))
        assert not _locked_by_another(path)
        async with db.read_sessionmaker(engine)() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1
        await engine.dispose()

    asyncio.run(main())


def test_the_group_committer_waits_for_the_writers_turn_before_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"

    async def main() -> None:
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        sessions = db.sessionmaker(engine)
        async with sessions() as session, session.begin():
            await session.execute(text("CREATE TABLE t (v TEXT)"))
        committer = GroupCommitter(sessions, ChangeHub())
        committer.start()
        other = Turn(str(path))  # another process's writer holding its turn
        other.acquire()

        async def unit(session: Any) -> str:
            await session.execute(text("INSERT INTO t VALUES ('x')"))
            return "stored"

        pending = [asyncio.ensure_future(committer.run(unit)) for _ in range(3)]
        for _ in range(20):
            await asyncio.sleep(0)
        assert not any(p.done() for p in pending)
        assert not _locked_by_another(path)  # the committer queues on the turn, not on SQLite's busy handler
        other.release()
        assert await asyncio.wait_for(asyncio.gather(*pending), 30) == ["stored"] * 3
        async with db.read_sessionmaker(engine)() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 3
        await committer.stop()
        await engine.dispose()

    asyncio.run(main())


def test_the_wal_is_checkpointed_by_the_checkpointer_not_by_commits(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"

    async def main() -> None:
        engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
        sessions = db.sessionmaker(engine)
        async with sessions() as session, session.begin():
            await session.execute(text("CREATE TABLE t (v TEXT)"))
            threshold = (await session.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one()
            assert threshold == db.AUTOCHECKPOINT_PAGES
        for index in range(50):
            async with sessions() as session, session.begin():
                await session.execute(text("INSERT INTO t VALUES (:v)"), {"v": "x" * 2000 + str(index)})
        checkpointer = Checkpointer(str(path))
        busy, frames, done = await asyncio.to_thread(checkpointer.checkpoint)
        assert busy == 0 and frames > 50 and done == frames  # everything committed was still in the log
        async with sessions() as session, session.begin():
            await session.execute(text("INSERT INTO t VALUES ('after')"))
        checkpointer.start()  # the background task runs the same checkpoint and stops cleanly
        await checkpointer.stop()
        async with db.read_sessionmaker(engine)() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar_one() == 51
        await engine.dispose()

    asyncio.run(main())


def test_a_prepared_anatomy_gives_the_rows_of_one_computed_in_the_transaction() -> None:
    raw = (b"From: a@pro.gateway.test\r\nTo: b@pro.gateway.test\r\nSubject: =?utf-8?q?R=C3=A9sultat?=\r\n"
           b"Date: Tue, 01 Dec 2026 10:00:00 +0100\r\nMessage-ID: <1@x>\r\n\r\nBonjour\r\n")
    other = raw.replace(b"Bonjour", b"Au revoir")
    computed = index_rows([(7, raw), (8, other)], defer_over=16 * 1024)
    prepared = index_rows([(7, raw), (8, other)], defer_over=16 * 1024, prepared=[prepare(raw), prepare(raw)])
    # the first was prepared from its bytes; the second's preparation was of other bytes and is not used
    assert prepared.anatomy_rows == computed.anatomy_rows
    assert prepared.text_rows == computed.text_rows
    assert prepared.text_rows[1]["body"] != prepared.text_rows[0]["body"]
    assert prepared.pending == computed.pending and prepared.refused == computed.refused


def test_checkpoints_come_often_while_the_log_grows_and_back_off_when_idle() -> None:
    """Small, frequent checkpoints while commits come (each syncs little of the main file), then doubling waits
    up to the idle interval once the log stops changing; a checkpoint that could not finish is retried soon."""
    first = (0, 120, 120)
    assert next_wait(IDLE_INTERVAL, first, None) == BUSY_INTERVAL
    assert next_wait(BUSY_INTERVAL, (0, 300, 300), first) == BUSY_INTERVAL  # more commits
    assert next_wait(BUSY_INTERVAL, (0, 40, 40), first) == BUSY_INTERVAL  # the log restarted after a commit
    waits, wait = [], BUSY_INTERVAL
    for _ in range(6):  # nothing committed meanwhile: the same outcome each time
        wait = next_wait(wait, first, first)
        waits.append(wait)
    assert waits == [0.2, 0.4, 0.8, IDLE_INTERVAL, IDLE_INTERVAL, IDLE_INTERVAL]
    assert next_wait(IDLE_INTERVAL, (1, -1, -1), (1, -1, -1)) == BUSY_INTERVAL  # busy: not finished, soon again
