"""The sessions, change signalling and UID cache every view of this process shares.

Reads use the read sessionmaker (on SQLite they never wait for the writer lock); writes go through the group
committer when one is given (concurrent IMAP writers share a commit and its fsync) or through a transaction of
their own. Either way a write marks the folders it touched, sends ``pg_notify`` in the transaction and wakes this
process's waiters after the commit, exactly as SMTP delivery does. Every database failure becomes
:class:`~gateway.imap.view.errors.StoreUnavailable` after the transaction was rolled back.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.imap.view.errors import StoreUnavailable, unavailable_on_failure
from gateway.store.changes import ChangeHub, notify_database, take_changed
from gateway.store.committer import GroupCommitter
from gateway.store.sqlite_reads import SqliteReader, SyncWork, sqlite_file
from gateway.store.sqlite_writes import SqliteWriter, TxWork, engine_hooks

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]

#: Values per ``IN (...)`` list or ranges per OR of BETWEENs: well under SQLite's and asyncpg's parameter limits.
CHUNK = 500
#: Folders with fewer messages are read in full at each SELECT; larger ones are kept in the UID cache.
CACHE_MIN_MESSAGES = 2000
#: UIDs kept in the per-process cache, all folders together (8 bytes each: 16 MB).
CACHE_MAX_MESSAGES = 2_000_000
#: How long a finished change read is handed to later sessions asking the same question (seconds); a change
#: published in this process meanwhile makes the next question read again.
FEED_REUSE = 0.05



def chunks(values: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def new_uids(values: Iterable[int] = ()) -> array[int]:
    """A UID array: unsigned 64-bit, 8 bytes a message, copied and searched at C speed."""
    return array("Q", values)


class UidCache:
    """UID arrays of recently selected large folders with the MODSEQ they reflect, least recently used first out.

    A SELECT of a cached folder reads only what changed since that MODSEQ (the (folder_id, modseq) index);
    each session gets its own copy of the array.
    """

    def __init__(self, max_messages: int = CACHE_MAX_MESSAGES) -> None:
        self.max_messages = max_messages
        self._entries: dict[int, tuple[int, array[int]]] = {}

    def get(self, folder_id: int) -> tuple[int, array[int]] | None:
        entry = self._entries.pop(folder_id, None)
        if entry is None:
            return None
        self._entries[folder_id] = entry
        return entry[0], array("Q", entry[1])

    def put(self, folder_id: int, modseq: int, uids: array[int]) -> None:
        self._entries.pop(folder_id, None)
        if len(uids) < CACHE_MIN_MESSAGES or len(uids) > self.max_messages:
            return
        self._entries[folder_id] = (modseq, array("Q", uids))
        total = sum(len(entry) for _, entry in self._entries.values())
        while total > self.max_messages:
            total -= len(self._entries.pop(next(iter(self._entries)))[1])

    def drop(self, folder_id: int) -> None:
        self._entries.pop(folder_id, None)


class ChangeFeed:
    """One read per folder and MODSEQ step, shared by every view of this process that asks for it.

    When one delivery wakes a thousand IDLE sessions of a folder, they all ask "what changed after MODSEQ n":
    the first question starts the read, the others wait for the same answer and apply it to their own UID
    array (RFC 9051 7.5: each session still decides what its client is told). A read started before a change
    was published in this process is never handed to a question asked after it (a session's own STORE or
    EXPUNGE is always seen by its next refresh); a finished read is reused for :data:`FEED_REUSE` seconds at
    most, which only matters for writes of other processes, seen late anyway.
    """

    def __init__(self, hub: ChangeHub) -> None:
        self._hub = hub
        #: folder id -> (the hub's event for it, {since: (read, finished at or None)}).
        self._folders: dict[int, tuple[asyncio.Event, dict[int, list[Any]]]] = {}
        #: Reads started (a figure for tests and the bench: fan-out shares them).
        self.reads = 0

    async def get(self, folder_id: int, since: int, read: Callable[[], Awaitable[T]]) -> T:
        """The answer of ``read()`` for ``(folder_id, since)``, shared with the sessions asking the same."""
        folder = self._folders.get(folder_id)
        if folder is None:
            folder = self._folders[folder_id] = (self._hub.watch(folder_id), {})
        changed, entries = folder
        if changed.is_set():  # published since these reads started: none of them may answer
            changed.clear()
            entries.clear()
        entry = entries.get(since)
        now = time.monotonic()
        if entry is None or (entry[1] is not None and now - entry[1] > FEED_REUSE):
            task: asyncio.Task[T] = asyncio.ensure_future(read())
            entry = entries[since] = [task, None]
            self.reads += 1
            task.add_done_callback(functools.partial(self._finished, folder_id, since, entry))
        return cast(T, await asyncio.shield(entry[0]))

    def _finished(self, folder_id: int, since: int, entry: list[Any], task: asyncio.Task[Any]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone (a client's DONE, a disconnect)
        entry[1] = time.monotonic()
        asyncio.get_running_loop().call_later(FEED_REUSE, self._expire, folder_id, since, entry)

    def _expire(self, folder_id: int, since: int, entry: list[Any]) -> None:
        folder = self._folders.get(folder_id)
        if folder is None:
            return
        changed, entries = folder
        if entries.get(since) is entry:
            del entries[since]
        if not entries:
            self._hub.unwatch(folder_id, changed)
            del self._folders[folder_id]


class RecentClaim:
    """A folder's ``\\Recent`` claim in progress: the lock its sessions take in turn, and the highest UID claimed."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.top = 0


K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A bounded map, least recently used out first. What is derived from a stored message never changes (its
    bytes never do), so decoded anatomies and rendered envelopes are kept for all the sessions of a store."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


class ViewStore:
    """What the views of one process share: read and write sessions, the change hub and the UID cache."""

    def __init__(self, writes: async_sessionmaker[AsyncSession], reads: async_sessionmaker[AsyncSession] | None = None,
                 hub: ChangeHub | None = None, committer: GroupCommitter | None = None) -> None:
        self.writes = writes
        self.reads = reads or writes
        self.hub = hub or ChangeHub()
        self.committer = committer
        self.uid_cache = UidCache()
        self.feed = ChangeFeed(self.hub)
        self._recent_claims: weakref.WeakValueDictionary[int, RecentClaim] = weakref.WeakValueDictionary()
        #: Decoded anatomies by message id (FETCH ENVELOPE / BODYSTRUCTURE / sections of the messages shown).
        self.anatomies: Lru[int, Any] = Lru(2048)
        #: ENVELOPE responses by (message id, UTF-8 allowed).
        self.envelopes: Lru[tuple[int, bool], bytes] = Lru(8192)
        #: Folder ids by (account, name) as last opened: where to look in the UID cache before the first read.
        self.folder_ids: dict[tuple[int, str], int] = {}
        path = sqlite_file(self.reads)
        #: One-hop reads on SQLite (None on PostgreSQL: its reads stay on the sessions).
        self.sqlite = SqliteReader.shared(path) if path is not None else None
        #: One-hop, group-committed writes on SQLite (None on PostgreSQL: its writes use the committer).
        self.sqlite_writer = SqliteWriter(path, engine_hooks(self.writes), self.hub, name="imap-write") \
            if path is not None and sqlite_file(self.writes) == path else None

    def recent_claim(self, folder_id: int) -> RecentClaim:
        """The ``\\Recent`` claim of a folder that sessions are making right now (RFC 3501 2.3.2): the sessions
        woken together by a delivery queue behind the first one, which alone asks the database. It lives only
        while some session holds it, so nothing here outlives the moment (a database restored under the process
        cannot be contradicted by it)."""
        claim = self._recent_claims.get(folder_id)
        if claim is None:
            claim = self._recent_claims[folder_id] = RecentClaim()
        return claim

    async def read(self, work: Work[T], action: str = "reading") -> T:
        """Run ``work`` in a read session (a consistent snapshot on both databases)."""
        async with unavailable_on_failure(action):
            async with self.reads() as session, session.begin():
                return await work(session)

    async def read_fast(self, sync: SyncWork[T], work: Work[T], action: str = "reading", *,
                        inline: bool = True) -> T:
        """``sync`` in one hop by the SQLite reader (in place when short, see :class:`SqliteReader`) when the store
        is a SQLite file, else ``work`` in a read session; both must give the same answer (the SQLite one is the
        hot path, the session one PostgreSQL's). ``inline`` False: a read too large to try in place."""
        if self.sqlite is None:
            return await self.read(work, action)
        try:
            return await self.sqlite.run(sync, inline=inline)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"The mail store is unavailable ({action}); please try again later.") from exc

    async def write_fast(self, sync: TxWork[T], work: Work[T], action: str = "writing", *,
                         synced: bool = True) -> T:
        """``sync`` by the SQLite writer (one hop, group-committed) when the store is a SQLite file, else ``work``
        through :meth:`write`; both must have the same effect. ``synced`` False: state about messages (flags,
        expunges, ``\\Recent``) whose commit need not wait for the disk (:class:`SqliteWriter`)."""
        if self.sqlite_writer is None:
            return await self.write(work, action)
        async with unavailable_on_failure(action):
            return await self.sqlite_writer.run(sync, synced=synced)

    async def write(self, work: Work[T], action: str = "writing") -> T:
        """Run ``work`` in one write transaction; its result once committed. ``work`` may run twice (alone, after a
        shared group commit failed), so it keeps its results local."""
        async with unavailable_on_failure(action):
            if self.committer is not None and self.committer.running:
                return cast(T, await self.committer.run(work))
            async with self.writes() as session:
                async with session.begin():
                    result = await work(session)
                    await notify_database(session)
                self.hub.publish(take_changed(session))
                return result
