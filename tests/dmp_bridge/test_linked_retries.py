"""R15 under DMP faults: the documents of one message are retried, leased and answered as one group, so they end
in one submission set however many times the DMP fails, on SQLite and PostgreSQL."""

# ruff: noqa: F811  (the outbox tests' fixtures, imported, are the parameters of these tests)
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dmp_bridge.dmp_support import BIOLOGIST, policy
from dmp_bridge.test_outbox import (  # noqa: F401  (fixtures)
    Sessions,
    _letter_with_annexes,
    _run_until,
    _setup,
    make_worker,
    sessions,
)
from sqlalchemy import select, update

from gateway.dmp_bridge import outbox
from gateway.dmp_bridge.bridge import consider_message
from gateway.dmp_bridge.outbox import DmpDeposit
from gateway.dmp_bridge.outbox_worker import OutboxWorker
from gateway.dmp_bridge.simulator import Simulator
from gateway.store.models import Event


async def _linked_letter(sessions: Sessions) -> list[DmpDeposit]:
    """A letter (CDA) with two PDF annexes, considered for deposit: three jobs with one link key."""
    raw = _letter_with_annexes(b"%PDF-1.4 annex one", b"%PDF-1.4 annex two")
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    async with sessions() as session, session.begin():
        await consider_message(session, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                               sender_mailbox_id=mailbox_id)
    async with sessions() as session:
        jobs = list((await session.execute(select(DmpDeposit).order_by(DmpDeposit.id))).scalars())
    assert len(jobs) == 3 and len({j.submission_uid for j in jobs}) == 1
    return jobs


async def test_r15_linked_documents_retried_through_dmp_faults_end_in_one_submission_set(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    jobs = await _linked_letter(sessions)
    simulator.inject("unavailable", count=2)
    worker = make_worker(concurrency=4)
    assert await worker.run_once() == 3
    async with sessions() as session:
        retried = list((await session.execute(select(DmpDeposit).order_by(DmpDeposit.id))).scalars())
    assert {j.state for j in retried} == {outbox.RETRY}
    assert len({j.next_attempt_at for j in retried}) == 1  # answered in one transaction: due again together
    await _run_until(worker, sessions, [j.id for j in jobs], {outbox.ACCEPTED})
    assert simulator.requests == 3 and simulator.accepted == 3  # two refused requests, then all three at once
    assert {d.submission_set for d in simulator.documents.values()} == {jobs[0].submission_uid}
    async with sessions() as session:
        retries = list((await session.execute(select(Event).where(Event.kind == "dmp.deposit.retry"))).scalars())
        attempts = list((await session.execute(select(DmpDeposit.attempts))).scalars())
    assert len(retries) == 6 and attempts == [3, 3, 3]


async def test_r15_claim_takes_a_linked_group_whole_even_when_one_member_is_due(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    jobs = await _linked_letter(sessions)
    later = datetime.now(UTC) + timedelta(hours=1)
    async with sessions() as session, session.begin():  # as the retries of separate transactions once left them
        await session.execute(update(DmpDeposit).where(DmpDeposit.id.in_([j.id for j in jobs[1:]]))
                              .values(state=outbox.RETRY, next_attempt_at=later))
    groups = await make_worker(concurrency=1).claim(1)
    assert [sorted(c.id for c in group) for group in groups] == [sorted(j.id for j in jobs)]


async def test_r15_a_group_with_a_member_in_flight_elsewhere_is_not_claimed_in_part(
        sessions: Sessions, simulator: Simulator, make_worker: Callable[..., OutboxWorker]) -> None:
    jobs = await _linked_letter(sessions)
    async with sessions() as session, session.begin():  # another worker holds one member under a live lease
        await session.execute(update(DmpDeposit).where(DmpDeposit.id == jobs[2].id).values(
            state=outbox.SENT, claim_token="elsewhere", next_attempt_at=datetime.now(UTC) + timedelta(hours=1)))
    worker = make_worker()
    assert await worker.claim(8) == []
    async with sessions() as session, session.begin():  # that lease ran out: its worker died
        await session.execute(update(DmpDeposit).where(DmpDeposit.id == jobs[2].id).values(
            next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
    [group] = await worker.claim(8)
    assert sorted(c.id for c in group) == sorted(j.id for j in jobs)
