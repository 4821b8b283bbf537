"""Writers of a SQLite store take turns on the lock file beside it (gateway/auth/turn.py): two turns exclude each
other even in one process, the next waiter starts as soon as the lock is free, and a waiter cancelled while
waiting never keeps the turn."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from gateway.store import db
from gateway.store.turn import Turn, turn_for


async def test_turns_of_one_store_exclude_each_other_and_hand_over_at_release(tmp_path: Path) -> None:
    path = str(tmp_path / "store.sqlite3")
    first, second = Turn(path), Turn(path)
    first.acquire()
    entered = asyncio.Event()

    async def waiter() -> None:
        async with second.hold():
            entered.set()

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    done, _ = await asyncio.wait([task], timeout=0.3)
    assert not done and not entered.is_set()  # the first writer holds the turn
    first.release()
    await asyncio.wait_for(task, 10)
    assert entered.is_set()


async def test_turn_cancelled_while_waiting_is_given_back(tmp_path: Path) -> None:
    path = str(tmp_path / "store.sqlite3")
    holder, cancelled, later = Turn(path), Turn(path), Turn(path)
    holder.acquire()

    async def wait_for_turn() -> None:
        async with cancelled.hold():
            raise AssertionError("never reached: cancelled while waiting")

    task = asyncio.create_task(wait_for_turn())
    await asyncio.sleep(0.1)
    task.cancel()
    holder.release()
    acquired = threading.Event()

    def take() -> None:
        later.acquire()
        acquired.set()
        later.release()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    await asyncio.to_thread(acquired.wait, 10)
    assert acquired.is_set()  # the cancelled waiter got the turn and gave it back


async def test_only_a_sqlite_store_file_has_turns(tmp_path: Path) -> None:
    sqlite = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.sqlite3'}")
    postgres = db.create_engine("postgresql+asyncpg://gateway@127.0.0.1:9/none")
    turn = turn_for(db.sessionmaker(sqlite))
    assert turn is not None and turn.path == str(tmp_path / "store.sqlite3") + "-writer.lock"
    assert turn_for(db.sessionmaker(postgres)) is None
    await sqlite.dispose()
    await postgres.dispose()
