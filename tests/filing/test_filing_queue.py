"""Filing jobs as a queue (R10): a job held by a live claim elsewhere is left alone and filed once when that
claim's lease lapses; a job that keeps failing backs off, then ends ``failed`` and traced, its message kept."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from filing.test_wake import RESULTS, _config, lab_report
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.store import Store

from gateway.filing import worker as filing_worker
from gateway.filing.worker import FilingWorker
from gateway.routing.headers import MAX_HEADER_BYTES
from gateway.store import db
from gateway.store import queue as q
from gateway.store.changes import ChangeHub
from gateway.store.jobs import DONE, FAILED, PENDING, FilingJob
from gateway.store.mailstore import StoredMessage, store_message
from gateway.store.models import Event, Message

Sessions = async_sessionmaker[AsyncSession]


def _run(url: str, work: Callable[[Sessions], Awaitable[None]]) -> None:
    """``work`` on the store's sessions, in an event loop of its own (the Store helper runs its own)."""
    async def main() -> None:
        engine = db.create_engine(url)
        try:
            await work(db.sessionmaker(engine))
        finally:
            await engine.dispose()
    asyncio.run(main())


async def _job(sessions: Sessions, mailbox_id: int, raw: bytes) -> int:
    """A message delivered to the filing mailbox and its pending job, as the acceptance planner leaves them."""
    async with sessions() as session, session.begin():
        message_id = await store_message(session, StoredMessage(
            raw=raw, mail_from="lab@pro.gateway.test", rcpt_to=[RESULTS], sender_mailbox_id=None,
            message_id_header=None, subject="CR", header_from="lab@pro.gateway.test"))
        at = datetime.now(UTC)
        job = FilingJob(kind="file", message_id=message_id, mailbox_id=mailbox_id, state=PENDING, attempts=0,
                        next_attempt_at=at, created_at=at)
        session.add(job)
        await session.flush()
        return job.id


async def _events(sessions: Sessions, kind: str) -> list[str]:
    async with sessions() as session:
        return list((await session.execute(select(Event.outcome).where(Event.kind == kind))).scalars())


async def _lapse(sessions: Sessions, job_id: int) -> None:
    async with sessions() as session, session.begin():
        await session.execute(update(FilingJob).where(FilingJob.id == job_id)
                              .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))


def test_r10_a_job_held_elsewhere_waits_and_is_filed_once_when_that_lease_lapses(
        store_url: str, tmp_path: Path) -> None:
    store = Store(store_url)
    results = store.add_mailbox(RESULTS, "ORG")
    store.add_identity()
    _run(store_url, lambda sessions: _held_elsewhere(sessions, results, store_url, tmp_path))


async def _held_elsewhere(sessions: Sessions, results: int, store_url: str, tmp_path: Path) -> None:
    job_id = await _job(sessions, results, lab_report())
    worker = FilingWorker(_config(tmp_path, store_url), sessions, sessions, ChangeHub())
    async with sessions() as session, session.begin():  # another instance claims it and is still alive
        [elsewhere] = await q.claim(session, filing_worker.QUEUE, units=1, lease=3600)
    assert await worker.run_once() is False and await _events(sessions, "filing.done") == []
    await _lapse(sessions, job_id)  # that instance died: its lease runs out
    assert await worker.run_once() is True
    assert await _events(sessions, "filing.done") == ["filed"]
    async with sessions() as session, session.begin():  # the dead claim, come back, can no longer answer
        assert await q.finish(session, filing_worker.QUEUE, elsewhere.lease, [job_id], DONE) == set()
        job = await session.get(FilingJob, job_id)
        assert job is not None and (job.state, job.attempts) == (DONE, 2)
    assert await worker.run_once() is False


def test_r10_a_job_that_keeps_failing_backs_off_then_is_failed_and_traced(store_url: str, tmp_path: Path) -> None:
    results = Store(store_url).add_mailbox(RESULTS, "ORG")
    _run(store_url, lambda sessions: _keeps_failing(sessions, results, store_url, tmp_path))


async def _keeps_failing(sessions: Sessions, results: int, store_url: str, tmp_path: Path) -> None:
    # a header section over the reader's bound: the acknowledgement (R6) cannot be read, the job fails each time
    raw = b"X-Padding: " + b"a" * MAX_HEADER_BYTES + b"\r\nSubject: CR\r\n\r\nCompte rendu\r\n"
    job_id = await _job(sessions, results, raw)
    worker = FilingWorker(_config(tmp_path, store_url), sessions, sessions, ChangeHub())
    waits = []
    for attempt in range(1, filing_worker.MAX_ATTEMPTS + 1):
        before = datetime.now(UTC)
        assert await worker.run_once() is True
        async with sessions() as session:
            job = await session.get(FilingJob, job_id)
        assert job is not None and job.attempts == attempt and job.last_error
        if attempt < filing_worker.MAX_ATTEMPTS:
            assert job.state == PENDING
            waits.append((job.next_attempt_at.replace(tzinfo=UTC) - before).total_seconds())
            await _lapse(sessions, job_id)  # the backoff, skipped
        else:
            assert job.state == FAILED
    assert [round(w) for w in waits] == [2, 4, 8, 16]
    assert await worker.run_once() is False
    assert await _events(sessions, "filing.failed") == ["failed"]
    async with sessions() as session:  # nothing is lost: the message stays
        assert (await session.execute(select(Message.id).where(Message.raw == raw))).first() is not None
