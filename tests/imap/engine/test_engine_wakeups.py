"""IDLE fan-out: the folder's relay wakes every session, after the publishing code has run on, in batches."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.imap import changes
from gateway.imap.changes import FolderWatcher
from gateway.store import db
from gateway.store.changes import ChangeHub


def watcher_for(tmp_path: Path) -> tuple[FolderWatcher, ChangeHub]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.sqlite3'}"
    hub = ChangeHub()
    return FolderWatcher(hub, db.read_sessionmaker(db.create_engine(url)), url), hub


def test_publish_wakes_every_watcher_of_the_folder_only_after_the_publisher_ran_on(tmp_path: Path):
    async def main() -> None:
        watcher, hub = watcher_for(tmp_path)
        count = 3 * changes.WAKE_BATCH + 5
        events = [watcher.watch(7, 1) for _ in range(count)]
        other = watcher.watch(8, 1)
        hub.publish([7])
        assert not any(e.is_set() for e in events)  # the publisher (an SMTP 250) goes first
        async with asyncio.timeout(10):
            await asyncio.gather(*(e.wait() for e in events))
        assert not other.is_set()

    asyncio.run(main())


def test_wake_ups_are_spread_over_turns_of_the_loop(tmp_path: Path):
    async def main() -> None:
        watcher, hub = watcher_for(tmp_path)
        events = [watcher.watch(7) for _ in range(2 * changes.WAKE_BATCH)]
        hub.publish([7])
        async with asyncio.timeout(10):
            await events[0].wait()  # resumes in the turn after the first batch was woken
        woken = sum(e.is_set() for e in events)
        assert woken == changes.WAKE_BATCH  # the second batch waits for the next turn
        async with asyncio.timeout(10):
            await asyncio.gather(*(e.wait() for e in events))

    asyncio.run(main())


def test_last_unwatch_releases_the_folder_and_a_pending_wake_up(tmp_path: Path):
    async def main() -> None:
        watcher, hub = watcher_for(tmp_path)
        first, second = watcher.watch(7), watcher.watch(7)
        watcher.unwatch(7, first)
        hub.publish([7])
        async with asyncio.timeout(10):
            await second.wait()
        assert not first.is_set()
        watcher.unwatch(7, second)
        assert hub._waiters.get(7) is None
        hub.publish([7])  # nobody left: nothing scheduled, nothing raised
        await asyncio.sleep(2 * changes.WAKE_DELAY)

    asyncio.run(main())


def test_wakeup_behaves_as_an_event_for_one_or_several_waiters():
    async def main() -> None:
        wakeup = changes.Wakeup()
        assert not wakeup.is_set()
        first = asyncio.ensure_future(wakeup.wait())
        second = asyncio.ensure_future(wakeup.wait())
        gone = asyncio.ensure_future(wakeup.wait())
        await asyncio.sleep(0)
        gone.cancel()  # a client's DONE: its waiter leaves without being woken
        await asyncio.sleep(0)
        wakeup.set()
        assert await asyncio.wait_for(asyncio.gather(first, second), 10) == [True, True]
        assert gone.cancelled() and wakeup.is_set()
        assert await wakeup.wait()  # set: returns at once
        wakeup.clear()
        late = asyncio.ensure_future(wakeup.wait())
        await asyncio.sleep(0)
        assert not late.done()
        wakeup.set()
        assert await asyncio.wait_for(late, 10)

    asyncio.run(main())
