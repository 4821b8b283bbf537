"""The one-hop SQLite reader (gateway/store/sqlite_reads.py): a short read is answered on the calling thread, a
long one is interrupted at the budget and answered, the same, by a reader thread; a read that must not be tried
in place goes to a thread at once; a lock held by a writer never makes the event loop wait."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from gateway.store import sqlite_reads
from gateway.store.sqlite_reads import SqliteReader

COUNT_TO = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) SELECT count(*) FROM n"


@pytest.fixture
def database(wal_database: str) -> str:
    connection = sqlite3.connect(wal_database)
    connection.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(100)])
    connection.commit()
    connection.close()
    return wal_database


def _counting(upto: int, threads: list[str]) -> sqlite_reads.SyncWork[int]:
    def work(connection: sqlite3.Connection) -> int:
        threads.append(threading.current_thread().name)
        return int(connection.execute(COUNT_TO, (upto,)).fetchone()[0])
    return work


async def test_a_short_read_is_answered_on_the_calling_thread(database: str) -> None:
    threads: list[str] = []
    assert await SqliteReader(database).run(_counting(10, threads)) == 10
    assert threads == [threading.current_thread().name]


async def test_a_read_over_the_budget_is_interrupted_and_answered_by_a_reader_thread(database: str) -> None:
    threads: list[str] = []
    started = time.perf_counter()
    assert await SqliteReader(database).run(_counting(3_000_000, threads)) == 3_000_000
    assert time.perf_counter() - started > sqlite_reads.INLINE_BUDGET  # it did not fit the budget
    assert threads[0] == threading.current_thread().name and len(threads) == 2
    assert threads[1].startswith("imap-read")


async def test_a_read_not_to_be_tried_in_place_goes_to_a_reader_thread(database: str) -> None:
    threads: list[str] = []
    assert await SqliteReader(database).run(_counting(10, threads), inline=False) == 10
    assert len(threads) == 1 and threads[0].startswith("imap-read")


async def test_a_read_that_would_wait_for_a_lock_waits_on_a_reader_thread(database: str) -> None:
    writer = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA locking_mode=EXCLUSIVE")  # a writer holding the file: readers must wait
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO t VALUES (100)")
    threads: list[str] = []

    def work(connection: sqlite3.Connection) -> int:
        threads.append(threading.current_thread().name)
        return int(connection.execute("SELECT count(*) FROM t").fetchone()[0])

    def unlock() -> None:
        writer.execute("COMMIT")
        writer.close()

    release = threading.Timer(0.2, unlock)
    release.start()
    started = time.perf_counter()
    assert await SqliteReader(database).run(work) == 101
    release.join()
    assert threads[-1].startswith("imap-read")  # answered by a thread that could wait for the lock
    assert time.perf_counter() - started >= 0.2
