"""SQLite through aiosqlite with one thread hop per statement instead of four.

aiosqlite runs each call on the connection's own thread and wakes the event loop for each result; SQLAlchemy's
adapter makes four such calls per statement (create the cursor, execute, fetch the rows, close the cursor).
Under load every hop waits for the interpreter lock and a turn of the busy event loop, so a statement that
SQLite answers in microseconds costs milliseconds, and a group commit of a dozen statements holds the writer
for tens of them. Here a cursor's ``execute`` does all four in the connection's thread and keeps the rows, so
fetching and closing cost nothing. Results are therefore never streamed (the gateway reads bounded results).

Writers queue for the write lock on a lock file beside the database (``<file>.writer``, ``flock``) before
``BEGIN IMMEDIATE``, and leave it at COMMIT or ROLLBACK: SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms
between tries, so two worker processes taking turns at the lock lost tens of milliseconds per turn. The wait is
bounded like ``busy_timeout``; a killed process's lock goes with its descriptors.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

_Outcome = tuple[Any, list[Any], int, int | None]
#: How long a writer waits for the lock file, as ``PRAGMA busy_timeout`` (gateway/store/db.py) for SQLite's lock.
WRITER_WAIT = 30.0
#: Between two tries of the lock file: short, so the next writer starts soon after the previous one commits.
WRITER_POLL = 0.0005


class OneHopCursor:
    """What SQLAlchemy's aiosqlite adapter needs of a cursor: each execute is one call on the thread."""

    arraysize = 1

    def __init__(self, connection: OneHopConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneHopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._rows = []

    async def _run(self, call: Callable[[sqlite3.Cursor], object]) -> OneHopCursor:
        raw = self._connection.sqlite

        connection = self._connection

        def work() -> _Outcome:
            locking = connection.writer_lock is not None and _begins_writing(call)
            if locking:
                connection.take_writer_lock()
            cursor = raw().cursor()
            try:
                try:
                    call(cursor)
                except BaseException:
                    if locking:  # BEGIN IMMEDIATE failed: no transaction holds the lock
                        connection.leave_writer_lock()
                    raise
                description = cursor.description
                rows = cursor.fetchall() if description else []
                return description, rows, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()

        self.description, self._rows, self.rowcount, self.lastrowid = await self._connection.on_thread(work)
        return self

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        if parameters is None:
            return await self._run(_Statement(sql, None))
        return await self._run(_Statement(sql, parameters))

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> OneHopCursor:
        rows = list(parameters)
        return await self._run(lambda cursor: cursor.executemany(sql, rows))

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: object) -> None:
        return None

    async def close(self) -> None:
        self._rows = []


class _Statement:
    """One ``execute`` to run on the connection's thread (it says whether it begins a write transaction)."""

    def __init__(self, sql: str, parameters: Any) -> None:
        self.sql, self.parameters = sql, parameters

    def __call__(self, cursor: sqlite3.Cursor) -> object:
        if self.parameters is None:
            return cursor.execute(self.sql)
        return cursor.execute(self.sql, self.parameters)


def _begins_writing(call: object) -> bool:
    return isinstance(call, _Statement) and call.sql.lstrip()[:15].upper() == "BEGIN IMMEDIATE"


class OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection (its thread, functions) with :class:`OneHopCursor` cursors and the writer lock."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int,
                 writer_lock: Path | None = None) -> None:
        super().__init__(connector, iter_chunk_size)
        self.writer_lock = writer_lock
        self._lock_fd: int | None = None
        self._locked = False

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    # --- the writer lock: taken and left on the connection's thread ---------------------------------------
    def take_writer_lock(self) -> None:
        if self._locked or self.writer_lock is None:
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self.writer_lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + WRITER_WAIT
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._locked = True
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(WRITER_POLL)

    def leave_writer_lock(self) -> None:
        if self._locked and self._lock_fd is not None:
            self._locked = False
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _end(self, commit: bool) -> None:
        try:
            if commit:
                self._conn.commit()
            else:
                self._conn.rollback()
        finally:
            if not self._conn.in_transaction:
                self.leave_writer_lock()

    async def commit(self) -> None:
        await self._execute(self._end, True)

    async def rollback(self) -> None:
        await self._execute(self._end, False)

    def stop(self) -> Any:
        """SQLAlchemy's terminate: the lock file is left (and closed) before the connection's thread stops."""
        self._tx.put_nowait((None, self._close_lock))
        return super().stop()

    def _close_lock(self) -> None:
        self.leave_writer_lock()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection; only to be used on the connection's thread."""
        return self._conn

    async def on_thread(self, work: Callable[[], _Outcome]) -> _Outcome:
        result: _Outcome = await self._execute(work)
        return result


def connector(path: Path) -> Callable[[], OneHopConnection]:
    """An ``async_creator`` for :func:`sqlalchemy.ext.asyncio.create_async_engine` opening the file ``path``."""

    def connect() -> OneHopConnection:
        connection = OneHopConnection(partial(sqlite3.connect, str(path)), 64,
                                      path.with_name(path.name + ".writer"))
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        return connection

    return connect
