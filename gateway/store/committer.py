"""Group commit: many concurrent SMTP transactions share one database commit.

Each SMTP session hands a unit of work (an async function of a session) to :meth:`GroupCommitter.run`
and waits. A single writer task takes every unit waiting, runs them in one transaction and commits once;
only then does each caller get its result and say "250". A unit may return a
:class:`~gateway.store.bulk.Plan` (an accepted message to store), or :class:`~gateway.store.bulk.Plans` (several):
plans of a batch are written together, and the caller gets ``plan.result``. If the shared transaction fails, the
batch is rolled back and each unit is run again alone, so one bad unit cannot sink the others and no unit is
half-stored. Units must therefore touch the database only through the session they are given.

On SQLite the worker processes' committers share one write lock: each takes its turn on the lock file beside
the store (:mod:`gateway.store.turn`, ``flock``) before ``BEGIN IMMEDIATE``, and takes its batch only once it has
the turn. SQLite's busy handler polls (sleeps up to 100 ms between tries, and a writer handing the lock to
another promptly can starve it for seconds); ``flock`` wakes the next writer as soon as the lock is free, and
the units that arrived while the other process committed join this batch instead of waiting for the next.
Each commit logs ``group_commit`` at debug: its size and, in milliseconds, the wait for the turn and a
connection, the statements (on SQLite with ``BEGIN IMMEDIATE``, which rides with the first one) and the COMMIT
(its fsync); ``bench/smtp_ingest.py --commit-stats`` summarises them.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.store import bulk
from gateway.store.bulk import Plan, Plans
from gateway.store.changes import ChangeHub, notify_database, take_changed
from gateway.store.checkpoint import Checkpointer
from gateway.store.recipients import Facts, FactsReader
from gateway.store.sqlite_reads import sqlite_file
from gateway.store.turn import Turn
from gateway.tasks import Background

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]
log = structlog.get_logger("gateway.store")


class _QuickTurn(Turn):
    """A turn taken without a thread hop when the lock file is free and ``quick`` (the first batch after the
    committer was idle); otherwise waited for on a thread as :meth:`Turn.hold` does. Back-to-back batches
    always wait on the thread: a writer of another process already blocked in ``flock`` is then woken and
    served first, instead of losing every race to this one's immediate retry."""

    @contextlib.asynccontextmanager
    async def quick_hold(self, quick: bool) -> AsyncIterator[None]:
        try:
            if not quick:
                raise BlockingIOError
            fcntl.flock(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            async with self.hold():
                yield
            return
        try:
            yield
        finally:
            self.release()


class GroupCommitter(Background):
    name = "group-committer"

    def __init__(self, sessions: async_sessionmaker[AsyncSession], hub: ChangeHub, max_batch: int = 128,
                 reads: async_sessionmaker[AsyncSession] | None = None) -> None:
        super().__init__()
        self._sessions = sessions
        self._reads = reads or sessions
        self._hub = hub
        self._max_batch = max_batch
        self._pending: list[tuple[Work, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._facts: FactsReader | None = None
        path = sqlite_file(sessions)
        self._turn = _QuickTurn(path) if path is not None else None
        #: The WAL's checkpoints, off the committing connections (one process of the daemon runs it).
        self.checkpointer = Checkpointer(path) if path is not None else None

    def reader(self) -> AsyncSession:
        """A session for the checks made before a unit of work (outside the shared transaction)."""
        return self._reads()

    def facts(self) -> AbstractAsyncContextManager[Facts]:
        """The process's autocommit connection for RCPT's recipient facts (store.recipients.FactsReader):
        one statement per read, each seeing the latest commits."""
        if self._facts is None:
            bind = self._reads.kw.get("bind")
            if not isinstance(bind, AsyncEngine):
                raise RuntimeError("the read sessions are not bound to an engine")
            self._facts = FactsReader(bind)
        return self._facts.connection()

    def start(self) -> None:
        super().start()
        if self.checkpointer is not None:
            self.checkpointer.start()

    async def stop(self) -> None:
        await super().stop()
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        facts, self._facts = self._facts, None
        if facts is not None:
            await facts.close()

    async def run(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        """Run ``work`` in a shared transaction; return its result once that transaction is committed."""
        if not self.running:
            raise RuntimeError("the group committer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        self._wake.set()
        return await future

    async def main(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            quick = True
            while self._pending:
                asked = time.perf_counter()
                async with self._turn.quick_hold(quick) if self._turn is not None else contextlib.nullcontext():
                    quick = False
                    # What arrived while the other writer held the lock joins this batch.
                    batch = self._pending[: self._max_batch]
                    del self._pending[: self._max_batch]
                    await self._commit(batch, asked)

    async def _commit(self, batch: list[tuple[Work, asyncio.Future[Any]]], asked: float) -> None:
        live = [(w, f) for w, f in batch if not f.done()]
        if len(live) == 1:
            await self._commit_alone(*live[0], asked=asked)
            return
        try:
            results = await self._transaction([w for w, _ in live], asked)
        except Exception:
            log.warning("group_commit_split", size=len(live))
            for work, future in live:
                await self._commit_alone(work, future)
            return
        for (_, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _commit_alone(self, work: Work, future: asyncio.Future[Any], asked: float | None = None) -> None:
        try:
            (result,) = await self._transaction([work], asked)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)

    async def _transaction(self, works: list[Work], asked: float | None = None) -> list[Any]:
        started = time.perf_counter() if asked is None else asked
        async with self._sessions() as session:
            async with session.begin():
                await session.connection()  # begun; on SQLite BEGIN IMMEDIATE runs with the first statement
                locked = time.perf_counter()
                results = [await work(session) for work in works]
                plans = [plan for r in results for plan in _plans_of(r)]
                if plans:  # accepted messages: stored together, a few statements for the whole batch
                    stored = dict(zip(map(id, plans), await bulk.apply(session, plans), strict=True))
                    results = [_answer(r, stored) for r in results]
                await notify_database(session)
                written = time.perf_counter()
            committed = time.perf_counter()
            self._hub.publish(take_changed(session))
        log.debug("group_commit", size=len(works), wait_ms=round((locked - started) * 1000, 2),
                  statements_ms=round((written - locked) * 1000, 2), commit_ms=round((committed - written) * 1000, 2))
        return results


def _plans_of(result: Any) -> list[Plan]:
    """The messages a unit's result asks to store: its one plan, its several, or none."""
    if isinstance(result, Plan):
        return [result]
    return list(result.plans) if isinstance(result, Plans) else []


def _answer(result: Any, stored: dict[int, int]) -> Any:
    """What the unit's caller receives once its plans are stored (``stored``: new message id by plan)."""
    if isinstance(result, Plan):
        return result.result(stored[id(result)])
    if isinstance(result, Plans):
        return result.result([stored[id(plan)] for plan in result.plans])
    return result
