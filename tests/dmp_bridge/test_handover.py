"""A message's deposits decided before the write transaction and written inside it, then handed to the outbox of
the same process, which claims them by id at once (no poll, no scan); on SQLite and PostgreSQL (R12, R15, R18)."""

# ruff: noqa: F811  (the outbox tests' fixtures, imported, are the parameters of these tests)
from __future__ import annotations

import asyncio
import time

from dmp_bridge.dmp_support import BIOLOGIST, DmpPKI, endpoint, policy, sample
from dmp_bridge.test_outbox import (  # noqa: F401  (fixtures)
    PDF_CDA,
    Sessions,
    _job,
    _letter_with_annexes,
    _mail,
    _setup,
    sessions,
)
from sqlalchemy import func, select

from gateway.dmp_bridge import outbox
from gateway.dmp_bridge.bridge import decide_message, record_decisions
from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.outbox import DmpDeposit, trail_row
from gateway.dmp_bridge.outbox_worker import OutboxWorker
from gateway.dmp_bridge.simulator import Simulator
from gateway.dmp_bridge.soap import DmpClient
from gateway.store.models import Event


async def _counts(sessions: Sessions) -> tuple[int, int]:
    async with sessions() as session:
        return ((await session.execute(select(func.count()).select_from(DmpDeposit))).scalar_one(),
                (await session.execute(select(func.count()).select_from(Event)
                                       .where(Event.kind.startswith("dmp.")))).scalar_one())


async def test_r15_decided_outside_the_transaction_the_letter_and_its_annexes_are_written_linked_in_it(
        sessions: Sessions) -> None:
    raw = _letter_with_annexes(b"%PDF-1.4 annex one", b"%PDF-1.4 annex two")
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    async with sessions() as reading:
        decisions = await decide_message(reading, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                         sender_mailbox_id=mailbox_id)
    assert len(decisions) == 3 and await _counts(sessions) == (0, 0)  # deciding reads, writes nothing
    async with sessions() as session, session.begin():
        considered = await record_decisions(session, decisions, closing=[trail_row(
            "dmp.considered", "done", rule="R12", message_id=message_id, documents=len(decisions))])
    assert all(c.job_id is not None for c in considered)
    async with sessions() as session:
        jobs = list((await session.execute(select(DmpDeposit).order_by(DmpDeposit.id))).scalars())
        kinds = [e.kind for e in (await session.execute(select(Event).order_by(Event.id))).scalars()
                 if e.kind.startswith("dmp.")]
    assert [j.id for j in jobs] == [c.job_id for c in considered]
    assert len({j.submission_uid for j in jobs}) == 1 and {j.state for j in jobs} == {outbox.PENDING}
    assert kinds.count("dmp.rule") == 18 and kinds.count("dmp.deposit.queued") == 3
    assert kinds[-2:] == ["dmp.deposit.linked", "dmp.considered"]  # the link and the caller's rows close the trail


async def test_r18_written_twice_the_same_decisions_queue_nothing_more(sessions: Sessions) -> None:
    raw = _mail(sample(PDF_CDA), BIOLOGIST.mailbox)
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    async with sessions() as reading:
        decisions = await decide_message(reading, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(),
                                         sender_mailbox_id=mailbox_id)
    for _ in range(2):  # e.g. two workers that decided the same message before either committed
        async with sessions() as session, session.begin():
            results = await record_decisions(session, decisions)
    assert [r.job_id for r in results] == [None]
    async with sessions() as session:
        assert len(list((await session.execute(select(DmpDeposit))).scalars())) == 1
        [duplicate] = (await session.execute(select(Event).where(Event.kind == "dmp.deposit.duplicate"))).scalars()
    assert duplicate.detail["state"] == outbox.PENDING


async def test_r12_deposits_handed_to_the_outbox_are_claimed_by_id_without_waiting_for_its_poll(
        sessions: Sessions, dmp_pki: DmpPKI, simulator: Simulator) -> None:
    raw = _letter_with_annexes(b"%PDF-1.4 annex one", b"%PDF-1.4 annex two")
    mailbox_id, message_id = await _setup(sessions, raw=raw)
    client = DmpClient(endpoint(dmp_pki, simulator.url), dmp_pki.signer)
    worker = OutboxWorker(sessions, Depositor(client, dmp_pki.signer, policy()), policy(),
                          poll_interval=600.0)  # no hub, a 600 s poll: only the hand-over can start them
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait_for(worker.idle.wait(), 60)  # asleep on its poll, found nothing due
        async with sessions() as session, session.begin():
            considered = await record_decisions(session, await decide_message(
                session, message_id, raw, BIOLOGIST.mailbox, [], policy=policy(), sender_mailbox_id=mailbox_id))
        ids = [c.job_id for c in considered if c.job_id is not None]
        assert len(ids) == 3
        worker.take(ids)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and {(await _job(sessions, i)).state for i in ids} != {outbox.ACCEPTED}:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await client.close()
    jobs = [await _job(sessions, i) for i in ids]
    assert [j.state for j in jobs] == [outbox.ACCEPTED] * 3 and [j.attempts for j in jobs] == [1, 1, 1]
    assert simulator.requests == 1  # R15: the three were claimed together and sent as one submission set
    assert {d.submission_set for d in simulator.documents.values()} == {jobs[0].submission_uid}
