"""One-hop reads of a SQLite store: a whole read (several statements in one snapshot) is one call on a reader
thread with its own connection, instead of a session, a pool checkout and a thread hop per statement. The IMAP
view's hot reads and the logins' credential reads go through it.

Most of these reads take tens of microseconds, less than the hop itself: waking a reader thread and then the
event loop again costs two thread wake-ups (on a virtual machine, each an interrupt between cores) and the
interpreter lock changing hands twice. So a read is first tried on the calling (event-loop) thread with a time
budget: SQLite's progress handler interrupts it once :data:`INLINE_BUDGET` has passed, and a lock it would have
to wait for fails at once, and then the read is run again from the start on a reader thread. A read is a pure
function of its snapshot, so running it again gives the answer it would have given; nothing a client sends can
hold the loop longer than the budget.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

T = TypeVar("T")
SyncWork = Callable[[sqlite3.Connection], T]
#: Threads (each with its own SQLite connection) answering hot reads in one hop each.
SQLITE_READERS = 4
#: Page cache of one reader connection, in KiB (as the engine's own connections).
SQLITE_READER_CACHE_KIB = 2048
#: Seconds a read may run on the event loop's thread before it is interrupted and run on a reader thread.
INLINE_BUDGET = 0.002
#: SQLite virtual-machine steps between two looks at the budget.
INLINE_STEPS = 500
_DEFERRED = object()


def sqlite_file(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    """The SQLite file ``sessions`` read, or None (PostgreSQL, an in-memory database, another driver)."""
    bind = sessions.kw.get("bind")
    return engine_file(bind) if isinstance(bind, AsyncEngine) else None


def engine_file(bind: AsyncEngine) -> str | None:
    """The SQLite file of the engine ``bind``, or None (as :func:`sqlite_file`)."""
    if bind.dialect.name != "sqlite":
        return None
    database = bind.url.database
    if not database or database == ":memory:" or database.startswith("file:") or bind.url.query:
        return None
    return database


class SqliteReader:
    """Hot reads on SQLite: a whole read (several statements in one snapshot) is one call on a reader
    thread with its own connection, instead of a session, a pool checkout and a thread hop per statement.

    WAL lets these connections read while the writer commits (readers never wait for it); ``query_only``
    makes sure nothing here can write. Connections are opened lazily, one per thread, in the process that
    reads (after a fork, never before).
    """

    _shared: ClassVar[weakref.WeakValueDictionary[str, SqliteReader]] = weakref.WeakValueDictionary()

    @classmethod
    def shared(cls, path: str) -> SqliteReader:
        """The process's reader of ``path``: the IMAP view and logins share its threads and connections, for as
        long as one of them holds it (then its threads end and their connections close)."""
        reader = cls._shared.get(path)
        if reader is None:
            reader = cls._shared[path] = cls(path)
        return reader

    def __init__(self, path: str, threads: int = SQLITE_READERS) -> None:
        self.path = path
        self._threads = threads
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _open(self, busy_timeout_ms: int) -> sqlite3.Connection:
        """A read-only connection (``query_only``) that waits at most ``busy_timeout_ms`` for a lock."""
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     cached_statements=256)
        connection.execute("PRAGMA query_only=ON")
        connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        connection.execute(f"PRAGMA cache_size=-{SQLITE_READER_CACHE_KIB}")
        return connection

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._open(30000)
        return connection

    def _run(self, work: SyncWork[T]) -> T:
        connection = self._connection()
        if connection.in_transaction:  # a COMMIT that failed last time (I/O error): start clean
            connection.execute("ROLLBACK")
        connection.execute("BEGIN")  # one snapshot for every statement of ``work``
        try:
            return work(connection)
        finally:
            connection.execute("COMMIT")

    def _inline_connection(self) -> tuple[sqlite3.Connection, list[float]]:
        """The calling thread's connection for reads tried in place, with the deadline its progress handler
        watches (a connection of this process: never one opened before a fork)."""
        held: tuple[int, sqlite3.Connection, list[float]] | None = getattr(self._local, "inline", None)
        if held is None or held[0] != os.getpid():
            connection = self._open(0)  # a lock to wait for sends the read to a thread
            deadline = [math.inf]
            connection.set_progress_handler(lambda: time.perf_counter() > deadline[0], INLINE_STEPS)
            held = self._local.inline = (os.getpid(), connection, deadline)
        return held[1], held[2]

    def _try_inline(self, work: SyncWork[T]) -> T | object:
        """``work`` on this thread within :data:`INLINE_BUDGET`, or :data:`_DEFERRED` when it was interrupted
        (or met a lock, or any other operational error: the reader thread then meets it as usual)."""
        try:
            connection, deadline = self._inline_connection()
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            connection.execute("BEGIN")
            deadline[0] = time.perf_counter() + INLINE_BUDGET
            try:
                return work(connection)
            finally:
                deadline[0] = math.inf
                if connection.in_transaction:
                    connection.execute("COMMIT")
        except sqlite3.OperationalError:
            return _DEFERRED

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="imap-read")
                self._pid = os.getpid()
            return self._pool

    async def run(self, work: SyncWork[T], *, inline: bool = True) -> T:
        """``work`` in one snapshot: in place when it fits :data:`INLINE_BUDGET` (``inline``: a read whose size
        alone could exceed it, such as a large body, says False), else on a reader thread."""
        if inline:
            answer = self._try_inline(work)
            if answer is not _DEFERRED:
                return answer  # type: ignore[return-value]
        return await asyncio.get_running_loop().run_in_executor(self._executor(), self._run, work)
