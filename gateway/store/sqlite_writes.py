"""One-hop writes of a SQLite store: the statements of a write run together on the writer's own thread and
connection, inside a ``BEGIN IMMEDIATE`` shared by every write waiting (one commit, one fsync for all), instead
of a session, a pool checkout and a thread hop per statement. The IMAP view's flag changes, expunges and appends
and the login throttle's rows go through it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.store.changes import ChangeHub
from gateway.store.turn import Turn

T = TypeVar("T")


def engine_hooks(sessions: async_sessionmaker[AsyncSession]) -> list[Callable[[Any, Any], None]]:
    """The engine's own ``connect`` listeners (its pragmas: WAL, ``synchronous=FULL``, foreign keys, busy timeout;
    and whatever a deployment or a test adds), to run on one-hop connections too; SQLAlchemy's internal
    ones are left out."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        return []
    return [hook for hook in bind.sync_engine.pool.dispatch.connect
            if not str(getattr(hook, "__module__", "")).startswith("sqlalchemy")]


def sql_time(value: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite ``DATETIME`` stores it (its fields as they are, microseconds always)."""
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:"
            f"{value.second:02d}.{value.microsecond:06d}")


class WriteTx:
    """What a one-hop write sees on the writer's thread: the connection (inside ``BEGIN IMMEDIATE``), and what
    it records for after the commit: the folders it changed (the hub's wake-ups) and its events (log lines)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.changed: set[int] = set()
        self.events: list[dict[str, Any]] = []

    def mark(self, folder_id: int) -> None:
        self.changed.add(folder_id)

    def record(self, kind: str, outcome: str, *, rule: str | None = None, mailbox_id: int | None = None,
               **detail: Any) -> None:
        """:func:`gateway.store.events.record` on this connection: the same row, logged after the commit."""
        import json

        at = datetime.now(UTC)
        self.connection.execute(
            "INSERT INTO events (at, kind, rule, outcome, actor, mailbox_id, message_id, conversation_id, "
            "identity_id, detail) VALUES (?, ?, ?, ?, NULL, ?, NULL, NULL, NULL, ?)",
            (sql_time(at), kind, rule, outcome, mailbox_id, json.dumps(detail)))
        self.events.append(dict(at=at, kind=kind, rule=rule, outcome=outcome, actor=None, mailbox_id=mailbox_id,
                                message_id=None, conversation_id=None, identity_id=None, detail=detail))


TxWork = Callable[[WriteTx], T]
#: Most one-hop writes sharing one transaction (and its fsync).
WRITER_BATCH = 128


class SqliteWriter:
    """One-hop writes on SQLite, group-committed on one thread: every write waiting when the thread is free runs
    in one ``BEGIN IMMEDIATE`` transaction and one commit, in one hop for all of them (a write that fails sinks
    the batch, which is then run one write per transaction, as the store's group committer does). ``hub`` hears
    of the folders a batch changed (:meth:`WriteTx.mark`) after its commit.

    Writers of the processes sharing the file take turns on a lock file beside it (:mod:`gateway.store.turn`:
    ``flock`` wakes the next one as soon as it is released; SQLite's busy handler polls). The connection gets
    the engine's connect hooks, so its durability (``synchronous=FULL``) is the store's.

    A write may say it need not wait for the disk (``synced=False``: a flag change, an expunge, a ``\\Recent``
    claim — state about messages, never a message): a batch of only such writes commits with
    ``synchronous=NORMAL``, without the WAL's fsync (~4 ms on a virtual disk). It is committed all the same —
    visible to every reader, kept through a crash of the process (kill -9) — and reaches the disk with the next
    commit that syncs (any message written) or the next checkpoint; only a power loss right after it can take
    it back, the database staying consistent. That is Dovecot's ``mail_fsync = optimized``. A batch with one
    synced write syncs, so a message is never acknowledged before it is on disk.
    """

    def __init__(self, path: str, hooks: Sequence[Callable[[Any, Any], None]], hub: ChangeHub | None = None,
                 name: str = "sqlite-write") -> None:
        self.name = name
        self.path = path
        self._hooks = list(hooks)
        self._hub = hub
        self._pending: list[tuple[TxWork[Any], asyncio.Future[Any], bool]] = []
        self._synced = True  # the connection's synchronous setting: FULL (True) or NORMAL
        self._draining = False
        self._connection: sqlite3.Connection | None = None
        self._turn = Turn(path)
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def _open(self) -> sqlite3.Connection:
        import os

        if self._connection is None or self._pid != os.getpid():
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                         cached_statements=256)
            for hook in self._hooks:
                hook(connection, None)
            connection.isolation_level = None  # transactions are ours (BEGIN IMMEDIATE below)
            self._connection = connection
            self._pid = os.getpid()
        return self._connection

    def _one(self, connection: sqlite3.Connection, works: Sequence[TxWork[Any]]) -> list[tuple[Any, WriteTx]]:
        connection.execute("BEGIN IMMEDIATE")
        try:
            done = []
            for work in works:
                tx = WriteTx(connection)
                done.append((work(tx), tx))
            connection.execute("COMMIT")
            return done
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _batch(self, works: Sequence[TxWork[Any]], synced: bool = True) -> list[tuple[bool, Any, WriteTx | None]]:
        """On the writer's thread: ``(ok, result or exception, tx)`` per work; the commit waits for the disk when
        ``synced``."""
        connection = self._open()
        if synced != self._synced:
            connection.execute(f"PRAGMA synchronous={'FULL' if synced else 'NORMAL'}")
            self._synced = synced
        self._turn.acquire()
        try:
            try:
                return [(True, result, tx) for result, tx in self._one(connection, works)]
            except Exception as exc:
                if len(works) == 1:
                    return [(False, exc, None)]
            outcomes: list[tuple[bool, Any, WriteTx | None]] = []
            for work in works:
                try:
                    ((result, tx),) = self._one(connection, [work])
                    outcomes.append((True, result, tx))
                except Exception as exc:
                    outcomes.append((False, exc, None))
            return outcomes
        finally:
            self._turn.release()

    async def run(self, work: TxWork[T], *, synced: bool = True) -> T:
        """``work``'s result once committed (on disk too unless ``synced`` is False, see the class)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future, synced))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _executor(self) -> ThreadPoolExecutor:
        import os

        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self.name)
        return self._pool

    async def _drain(self) -> None:
        from gateway.store.events import log_event

        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = [(w, f, synced) for w, f, synced in self._pending[:WRITER_BATCH] if not f.done()]
                del self._pending[:WRITER_BATCH]
                if not batch:
                    continue
                try:
                    outcomes = await loop.run_in_executor(self._executor(), self._batch, [w for w, _, _ in batch],
                                                          any(synced for _, _, synced in batch))
                except Exception as exc:  # opening the connection or the lock file failed
                    outcomes = [(False, exc, None)] * len(batch)
                changed: set[int] = set()
                for ok, _, tx in outcomes:
                    if ok and tx is not None:
                        changed |= tx.changed
                        for row in tx.events:
                            log_event(row)
                if changed and self._hub is not None:
                    self._hub.publish(changed)
                for (_, future, _), (ok, value, _) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._draining = False
