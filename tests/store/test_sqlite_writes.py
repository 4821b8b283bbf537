"""The one-hop SQLite writer's durability (gateway/store/sqlite_writes.py): a batch of writes that need not wait
for the disk commits without the WAL's fsync, a batch with one write that must syncs for all of them, and an
unsynced write once acknowledged survives the writing process's kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.store.sqlite_writes import SqliteWriter, WriteTx

ROOT = Path(__file__).resolve().parents[2]
FULL, NORMAL = 2, 1


def _store_pragmas(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")


@pytest.fixture
def database(wal_database: str) -> str:
    return wal_database


def _insert(value: int) -> Any:
    def work(tx: WriteTx) -> int:
        tx.connection.execute("INSERT INTO t VALUES (?)", (value,))
        return int(tx.connection.execute("PRAGMA synchronous").fetchone()[0])
    return work


def _values(path: str) -> list[int]:
    connection = sqlite3.connect(path)
    try:
        return sorted(v for (v,) in connection.execute("SELECT v FROM t"))
    finally:
        connection.close()


async def test_writes_that_need_not_wait_for_the_disk_commit_without_syncing(database: str) -> None:
    writer = SqliteWriter(database, [_store_pragmas])
    assert await asyncio.gather(*(writer.run(_insert(n), synced=False) for n in range(3))) == [NORMAL] * 3
    assert _values(database) == [0, 1, 2]  # committed: every reader sees them
    assert await writer.run(_insert(3)) == FULL  # a message's write syncs again


async def test_one_synced_write_in_a_batch_makes_the_whole_batch_sync(database: str) -> None:
    writer = SqliteWriter(database, [_store_pragmas])
    answers = await asyncio.gather(writer.run(_insert(1), synced=False), writer.run(_insert(2)),
                                   writer.run(_insert(3), synced=False))
    assert answers == [FULL] * 3
    assert _values(database) == [1, 2, 3]


CRASHING = """
import asyncio, os, signal, sys
from gateway.store.sqlite_writes import SqliteWriter
def pragmas(connection, _record):
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
async def main():
    writer = SqliteWriter(sys.argv[1], [pragmas])
    for n in range(20):
        await writer.run(lambda tx, n=n: tx.connection.execute("INSERT INTO t VALUES (?)", (n,)), synced=False)
    print("acknowledged", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
asyncio.run(main())
"""


def test_an_acknowledged_unsynced_write_survives_a_kill_of_its_process(database: str) -> None:
    done = subprocess.run([sys.executable, "-c", CRASHING, database], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL and done.stdout.strip() == "acknowledged", done.stderr
    assert _values(database) == list(range(20))
