"""SQLite through aiosqlite with one thread hop per statement instead of four.

aiosqlite runs each call on the connection's own thread and wakes the event loop for each result; SQLAlchemy's
adapter makes four such calls per statement (create the cursor, execute, fetch the rows, close the cursor).
Under load every hop waits for the interpreter lock and a turn of the busy event loop, so a statement that
SQLite answers in microseconds costs milliseconds, and a group commit of a dozen statements holds the writer
for tens of them. Here a cursor's ``execute`` does all four in the connection's thread and keeps the rows, so
fetching and closing cost nothing. Results are therefore never streamed (the gateway reads bounded results).
The connection also remembers, from its thread, whether a transaction is open: the rollback SQLAlchemy's
pool makes when a connection comes back after a commit (or after an autocommit read) then costs no hop.
And a ``BEGIN`` costs no hop of its own: it is kept and run on the thread just before the transaction's first
statement (SQLite takes a deferred transaction's snapshot at its first read anyway, and an ``IMMEDIATE`` one's
write lock is then taken right before the write it is for); a transaction with no statement opens nothing.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from gateway.store.db import BUSY_TIMEOUT_MS

_Outcome = tuple[Any, list[Any], int, int | None]
T = TypeVar("T")
#: The statements that open a transaction (store/db.py's begin hook), deferred to the next statement's hop.
_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE"})


class Busy:
    """What :meth:`OneHopConnection.run_plain_inline` answers when the write lock is another connection's."""


BUSY = Busy()


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
            sqlite = raw()
            cursor = sqlite.cursor()
            try:
                call(cursor)
                description = cursor.description
                rows = cursor.fetchall() if description else []
                return description, rows, cursor.rowcount, cursor.lastrowid
            finally:
                cursor.close()
                connection.in_transaction = sqlite.in_transaction

        self.description, self._rows, self.rowcount, self.lastrowid = await self._connection.on_thread(work)
        return self

    async def execute(self, sql: str, parameters: Any = None) -> OneHopCursor:
        if not parameters and sql in _BEGINS:  # run on the thread with the next statement
            self._connection.begin_later(sql)
            self.description, self._rows, self.rowcount, self.lastrowid = None, [], -1, None
            return self
        if parameters is None:
            return await self._run(lambda cursor: cursor.execute(sql))
        return await self._run(lambda cursor: cursor.execute(sql, parameters))

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


class OneHopConnection(aiosqlite.Connection):
    """aiosqlite's connection (its thread, commit, rollback, functions) with :class:`OneHopCursor` cursors."""

    #: Whether SQLite has a transaction open, as last seen on the connection's thread (after each statement,
    #: commit and rollback). True until first known, so a rollback is never skipped by mistake.
    in_transaction = True
    #: A BEGIN not run yet: it runs on the thread before the next call there.
    _begin: str | None = None

    def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)

    def begin_later(self, sql: str) -> None:
        self._begin = sql

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Every call on the thread (ours, and the one-hop readers and writers of gateway/imap and gateway/auth)
        runs a kept BEGIN first and notes whether a transaction is open afterwards."""
        begin, self._begin = self._begin, None

        def call() -> Any:
            sqlite = self._conn
            try:
                if begin is not None:
                    sqlite.execute(begin)
                return fn(*args, **kwargs)
            finally:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed by ``fn``
                    self.in_transaction = sqlite.in_transaction

        return await super()._execute(call)

    async def commit(self) -> None:
        """No thread hop for a transaction that ran no statement (its BEGIN was kept, never run)."""
        if self._begin is not None:
            self._begin = None
            if not self.in_transaction:
                return
        await self._execute(self._finish, "commit")

    async def rollback(self) -> None:
        """No thread hop when no transaction is open (the pool's reset after a commit or a read)."""
        self._begin = None
        if self.in_transaction:
            await self._execute(self._finish, "rollback")

    def _finish(self, how: str) -> None:
        sqlite = self._conn
        try:
            if how == "commit":
                sqlite.commit()
            else:
                sqlite.rollback()
        finally:
            self.in_transaction = sqlite.in_transaction

    def run_plain_inline(self, work: Callable[[sqlite3.Connection], T]) -> T | Busy:
        """``work(connection)`` right here, on the event loop's thread, inside the transaction the session opened:
        no hop to the connection's thread and back while the write lock is held (each hop waits for the
        interpreter lock and a turn of the busy loop, which the other writers wait behind). For a batch's few
        statements only: SQLite's CPU work, no sync (the COMMIT, which syncs, still runs on the thread).

        The kept ``BEGIN`` runs first without waiting: when another connection holds the write lock,
        :data:`BUSY` is returned and nothing was run (the caller goes to the thread, where SQLite may wait).
        Safe because a connection serves one session at a time and its thread is idle between its calls."""
        begin, self._begin = self._begin, None
        sqlite = self._conn
        try:
            if begin is not None:
                sqlite.execute("PRAGMA busy_timeout=0")  # never a wait on the event loop
                try:
                    sqlite.execute(begin)
                except sqlite3.OperationalError as exc:
                    if sqlite.in_transaction or exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                        raise
                    self._begin = begin
                    return BUSY
                finally:
                    sqlite.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            return work(sqlite)
        finally:
            self.in_transaction = sqlite.in_transaction

    def sqlite(self) -> sqlite3.Connection:
        """The sqlite3 connection; only to be used on the connection's thread."""
        return self._conn

    async def on_thread(self, work: Callable[[], _Outcome]) -> _Outcome:
        result: _Outcome = await self._execute(work)
        return result

    async def run_plain(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` in one call on the thread, inside the transaction the session opened (its kept
        BEGIN runs first): plain statements without SQLAlchemy's statement and result machinery."""
        result: T = await self._execute(lambda: work(self._conn))
        return result


def connector(path: Path) -> Callable[[], OneHopConnection]:
    """An ``async_creator`` for :func:`sqlalchemy.ext.asyncio.create_async_engine` opening the file ``path``."""

    def connect() -> OneHopConnection:
        connection = OneHopConnection(partial(sqlite3.connect, str(path), check_same_thread=False), 64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own connections
        return connection

    return connect
