"""Cross-process wake-ups for IDLE: PostgreSQL LISTEN, and a cheap MODSEQ poll where there is no NOTIFY.

Writers in this process publish to the :class:`~gateway.store.changes.ChangeHub` directly. Writers in other
processes reach us through ``pg_notify('gateway_folders', ids)`` on PostgreSQL (one LISTEN connection per
process feeds the hub), or, on SQLite shared by several processes, through a poll of ``folders.highestmodseq``
for the folders somebody is waiting on: one indexed query per interval for the whole process. On PostgreSQL the
poll also runs, slowly, as a safety net while the LISTEN connection is being re-established.

Sessions do not wait on the hub's event directly: one relay per folder does, and wakes them
:data:`WAKE_DELAY` after the change was published, :data:`WAKE_BATCH` per turn of the event loop. The
transaction that published the change answers its own client first (a delivery's SMTP ``250`` is not queued
behind the updates of the thousand IDLE sessions it wakes), and other connections keep being served while a
large fan-out is under way.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.changes import CHANNEL, ChangeHub
from gateway.store.models import Folder
from gateway.store.sqlite_reads import SqliteReader, sqlite_file

log = structlog.get_logger("gateway.imap")

#: Poll interval when only polling can see other processes' writes (SQLite).
SQLITE_POLL = 0.1
#: Poll interval on PostgreSQL, where NOTIFY does the real work.
POSTGRES_POLL = 5.0
#: Pause before re-opening a lost LISTEN connection.
RELISTEN_DELAY = 1.0
#: Most folder ids in one NOTIFY payload we accept (PostgreSQL caps payloads at 8000 bytes anyway).
MAX_NOTIFY_IDS = 1000
#: Seconds between a folder's change being published and its IDLE sessions being woken.
WAKE_DELAY = 0.01
#: Sessions woken per turn of the event loop.
WAKE_BATCH = 16


class Wakeup:
    """What one IDLE session waits on: :class:`asyncio.Event`'s ``set``/``clear``/``is_set``/``wait`` without
    its deque (an idle session waits alone; a second waiter is kept in a list made when needed)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class _Relay(asyncio.Event):
    """The hub's event for one folder: setting it schedules the wake-up of the sessions that watch the folder."""

    def __init__(self) -> None:
        super().__init__()
        #: The sessions' events in the order they started watching (woken in that order); a dict as ordered set.
        self.events: dict[Wakeup, None] = {}
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None

    def set(self) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(WAKE_DELAY, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._wake_batch(list(self.events))

    def _wake_batch(self, events: list[Wakeup]) -> None:
        for event in events[:WAKE_BATCH]:
            event.set()
        if len(events) > WAKE_BATCH:
            self._loop.call_soon(self._wake_batch, events[WAKE_BATCH:])

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def parse_payload(payload: str) -> list[int]:
    """The folder ids of a ``gateway_folders`` notification; anything malformed is ignored."""
    ids: list[int] = []
    for part in payload.split(",")[:MAX_NOTIFY_IDS]:
        part = part.strip()
        if part.isdigit() and len(part) < 20:
            ids.append(int(part))
    return ids


class FolderWatcher:
    """Tracks which folders IDLE sessions wait on and wakes them when another process changes one."""

    def __init__(self, hub: ChangeHub, reads: async_sessionmaker[AsyncSession], database_url: str) -> None:
        self.hub = hub
        self._reads = reads
        self._url = database_url
        self._postgres = database_url.startswith("postgresql")
        path = sqlite_file(reads)
        #: SQLite's poll is one plain statement on the process's reader threads (ten times a second).
        self._sqlite = SqliteReader.shared(path) if path is not None else None
        self._watched: dict[int, int] = {}
        self._relays: dict[int, _Relay] = {}
        self._seen: dict[int, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    def watch(self, folder_id: int, modseq: int | None = None) -> Wakeup:
        """Wake on changes of ``folder_id`` after ``modseq`` (the MODSEQ the waiting session has seen)."""
        self._watched[folder_id] = self._watched.get(folder_id, 0) + 1
        if modseq is not None:
            self._seen[folder_id] = min(self._seen.get(folder_id, modseq), modseq)
        relay = self._relays.get(folder_id)
        if relay is None:
            relay = self._relays[folder_id] = _Relay()
            self.hub.watch(folder_id, relay)
        event = Wakeup()
        relay.events[event] = None
        return event

    def unwatch(self, folder_id: int, event: Wakeup) -> None:
        relay = self._relays.get(folder_id)
        if relay is not None:
            relay.events.pop(event, None)
            if not relay.events:
                relay.cancel()
                self.hub.unwatch(folder_id, relay)
                del self._relays[folder_id]
        count = self._watched.get(folder_id, 0) - 1
        if count <= 0:
            self._watched.pop(folder_id, None)
            self._seen.pop(folder_id, None)
        else:
            self._watched[folder_id] = count

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._poll(), name="imap-folder-poll"))
        if self._postgres:
            self._tasks.append(asyncio.create_task(self._listen(), name="imap-folder-listen"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), 10.0)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def poll_once(self) -> None:
        """Compare the watched folders' MODSEQ with what we saw last; publish the ones that moved."""
        ids = list(self._watched)
        if not ids:
            return
        ids = ids[:1000]
        if self._sqlite is not None:
            sql = f"SELECT id, highestmodseq FROM folders WHERE id IN ({','.join('?' * len(ids))})"
            rows = await self._sqlite.run(lambda connection: connection.execute(sql, ids).fetchall())
        else:
            async with self._reads() as session:
                rows = list((await session.execute(
                    select(Folder.id, Folder.highestmodseq).where(Folder.id.in_(ids)))).all())
        moved = []
        for folder_id, modseq in rows:
            before = self._seen.get(folder_id)
            if before is not None and before != modseq:
                moved.append(folder_id)
            if folder_id in self._watched:
                self._seen[folder_id] = modseq
        if moved:
            self.hub.publish(moved)

    async def _poll(self) -> None:
        interval = POSTGRES_POLL if self._postgres else SQLITE_POLL
        while True:
            await asyncio.sleep(interval)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be restarting: keep polling
                log.warning("imap_poll_failed", error=type(exc).__name__)

    async def _listen(self) -> None:
        import asyncpg

        dsn = self._url.replace("postgresql+asyncpg://", "postgresql://", 1)

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            self.hub.publish(parse_payload(payload))

        while True:
            conn = None
            try:
                conn = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, on_notify)
                self._listening.set()
                log.info("imap_listening_notify", channel=CHANNEL)
                await lost.wait()
                log.warning("imap_notify_connection_lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("imap_listen_failed", error=type(exc).__name__)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            # Anything changed while we were not listening: let every waiter re-check.
            self.hub.publish(list(self._watched))
            await asyncio.sleep(RELISTEN_DELAY)
