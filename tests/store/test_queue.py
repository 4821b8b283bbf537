"""The durable-queue primitive on SQLite and PostgreSQL: claims never overlap, a lapsed lease is taken over, a
group goes whole or not at all (R15), retries back off to a cap and end in the dead letter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import DateTime, Integer, String, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.store import db
from gateway.store import queue as q


class Base(DeclarativeBase):
    pass


class Job(Base):
    """A work table of the tests' own: the primitive knows nothing of mail, filing or the DMP."""

    __tablename__ = "queue_test_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(10))
    grp: Mapped[str | None] = mapped_column(String(10), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    owner: Mapped[str | None] = mapped_column(String(40), nullable=True)
    note: Mapped[str | None] = mapped_column(String(40), nullable=True)


PLAIN = q.Queue(Job, waiting=("pending",), dead="dead")
#: As the DMP outbox: claimed rows are "sent" under an owner token, groups go whole.
LINKED = q.Queue(Job, waiting=("pending", "retry"), dead="dead", leased="sent", retry_state="retry", owner="owner",
                 group=("grp",), whole=True)
#: Groups that go whole in a table that cannot tell a lease from a wait.
WHOLE_BY_DUE = q.Queue(Job, waiting=("pending",), dead="dead", group=("grp",), whole=True)
#: As the outbound queue: rows of a key go together when due, at most two per claim.
BATCHED = q.Queue(Job, waiting=("pending",), dead="dead", group=("grp",), per_unit=2)

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(store_url: str) -> AsyncIterator[Sessions]:
    engine = db.create_engine(store_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield db.sessionmaker(engine)
    await engine.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


async def _add(sessions: Sessions, count: int, *, grp: str | None = None, state: str = "pending",
               due: datetime | None = None) -> list[int]:
    async with sessions() as session, session.begin():
        at = due or _now() - timedelta(seconds=1)
        ids = []
        for _ in range(count):
            result = await session.execute(insert(Job).values(state=state, grp=grp, attempts=0, next_attempt_at=at)
                                           .returning(Job.id))
            ids.append(result.scalar_one())
        return ids


async def _claim(sessions: Sessions, queue: q.Queue, units: int, lease: float = 60.0) -> list[q.Unit[Job]]:
    async with sessions() as session, session.begin():
        return await q.claim(session, queue, units=units, lease=lease)


async def _rows(sessions: Sessions) -> dict[int, Job]:
    async with sessions() as session:
        return {j.id: j for j in (await session.execute(select(Job))).scalars()}


async def test_two_claimers_racing_never_get_the_same_unit(store_url: str, sessions: Sessions) -> None:
    ids = await _add(sessions, 60)
    other = db.create_engine(store_url)  # a second instance on the same store
    try:
        others = db.sessionmaker(other)

        async def drain(pool: Sessions) -> list[int]:
            got: list[int] = []
            while units := await _claim(pool, PLAIN, 3):
                got += [i for unit in units for i in unit.ids]
            return got

        first, second = await asyncio.gather(drain(sessions), drain(others))
    finally:
        await other.dispose()
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(ids)


async def test_a_claim_in_an_open_transaction_is_not_taken_by_a_concurrent_one(
        store_url: str, sessions: Sessions) -> None:
    await _add(sessions, 6)
    other = db.create_engine(store_url)
    try:
        async with sessions() as session, session.begin():
            mine = await q.claim(session, PLAIN, units=3, lease=60)
            # PostgreSQL skips the locked rows at once; SQLite's second writer waits for this commit
            theirs_task = asyncio.ensure_future(_claim(db.sessionmaker(other), PLAIN, 6))
            await asyncio.sleep(0)  # let it start while this transaction still holds its rows
        theirs = await theirs_task
    finally:
        await other.dispose()
    mine_ids = {i for u in mine for i in u.ids}
    theirs_ids = {i for u in theirs for i in u.ids}
    assert len(mine_ids) == 3 and len(theirs_ids) == 3 and not mine_ids & theirs_ids


async def test_claim_counts_the_attempt_and_leases_the_unit(sessions: Sessions) -> None:
    [job_id] = await _add(sessions, 1)
    [unit] = await _claim(sessions, PLAIN, 5, lease=60)
    assert unit.ids == [job_id] and unit.rows[0].attempts == 1
    assert await _claim(sessions, PLAIN, 5) == []  # leased: not due for anyone else
    row = (await _rows(sessions))[job_id]
    assert row.state == "pending" and row.next_attempt_at.replace(tzinfo=UTC) > _now() + timedelta(seconds=50)


@pytest.mark.parametrize("queue", [PLAIN, LINKED], ids=["lease-in-due-time", "leased-state-and-owner"])
async def test_an_expired_lease_is_reclaimed_and_the_lapsed_claim_cannot_answer(
        sessions: Sessions, queue: q.Queue) -> None:
    [job_id] = await _add(sessions, 1, grp="a")
    [first] = await _claim(sessions, queue, 1)
    async with sessions() as session, session.begin():  # its holder died: the lease runs out
        await session.execute(update(Job).values(next_attempt_at=_now() - timedelta(seconds=1)))
    [second] = await _claim(sessions, queue, 1)
    assert second.ids == [job_id] and second.rows[0].attempts == 2
    if queue.leased is not None:
        assert second.reclaimed == {job_id}
    async with sessions() as session, session.begin():
        assert await q.finish(session, queue, first.lease, [job_id], "done") == set()
        assert await q.finish(session, queue, second.lease, [job_id], "done", note="ok") == {job_id}
    row = (await _rows(sessions))[job_id]
    assert (row.state, row.note, row.owner) == ("done", "ok", None)


async def test_r15_a_group_is_claimed_whole_with_its_members_not_yet_due(sessions: Sessions) -> None:
    group = await _add(sessions, 1, grp="set")
    group += await _add(sessions, 2, grp="set", state="retry", due=_now() + timedelta(hours=1))
    units = await _claim(sessions, LINKED, 1)
    assert [sorted(u.ids) for u in units] == [sorted(group)]
    assert {r.state for r in units[0].rows} == {"sent"} and len({r.owner for r in units[0].rows}) == 1


async def test_r15_a_group_with_a_member_under_a_live_lease_is_not_claimed_in_part(sessions: Sessions) -> None:
    group = await _add(sessions, 2, grp="set")
    [elsewhere] = await _add(sessions, 1, grp="set", state="sent", due=_now() + timedelta(hours=1))
    alone = await _add(sessions, 1, grp="other")
    units = await _claim(sessions, LINKED, 8)
    assert [u.ids for u in units] == [alone]
    async with sessions() as session, session.begin():
        await session.execute(update(Job).where(Job.id == elsewhere)
                              .values(next_attempt_at=_now() - timedelta(seconds=1)))
    [unit] = await _claim(sessions, LINKED, 8)
    assert sorted(unit.ids) == sorted([*group, elsewhere]) and unit.reclaimed == {elsewhere}


async def test_r15_without_a_lease_state_a_group_with_a_member_not_due_waits(sessions: Sessions) -> None:
    await _add(sessions, 1, grp="set")
    [later] = await _add(sessions, 1, grp="set", due=_now() + timedelta(hours=1))
    due = await _add(sessions, 2, grp="other")
    assert [sorted(u.ids) for u in await _claim(sessions, WHOLE_BY_DUE, 8)] == [due]
    async with sessions() as session, session.begin():
        await session.execute(update(Job).where(Job.id == later).values(next_attempt_at=_now()))
    [unit] = await _claim(sessions, WHOLE_BY_DUE, 8)
    assert later in unit.ids and len(unit.ids) == 2


async def test_r15_a_group_with_a_member_locked_by_a_concurrent_claim_is_skipped(
        store_url: str, sessions: Sessions) -> None:
    if db.is_sqlite(store_url):
        pytest.skip("SQLite has one writer at a time: no concurrent claim can hold a row")
    group = await _add(sessions, 3, grp="set")
    alone = await _add(sessions, 1, grp="other")
    async with sessions() as holder, holder.begin():
        await holder.execute(select(Job).where(Job.id == group[1]).with_for_update())
        assert [u.ids for u in await _claim(sessions, LINKED, 8)] == [alone]
    [unit] = await _claim(sessions, LINKED, 8)
    assert sorted(unit.ids) == sorted(group)


async def test_groups_not_whole_take_their_due_rows_in_batches(sessions: Sessions) -> None:
    a = await _add(sessions, 3, grp="a")
    b = await _add(sessions, 1, grp="b")
    await _add(sessions, 1, grp="c")
    units = await _claim(sessions, BATCHED, 2)
    assert [u.key for u in units] == [("a",), ("b",)]
    assert [u.ids for u in units] == [a[:2], b]


def test_backoff_grows_and_caps() -> None:
    backoff = q.Backoff(base=1.0, factor=2.0, ceiling=10.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]
    assert backoff.delay(10_000) == 10.0  # bounded however many attempts
    assert [q.Schedule((60, 300, 900)).delay(n) for n in range(1, 6)] == [60, 300, 900, 900, 900]


async def test_retry_makes_the_unit_due_after_its_backoff(sessions: Sessions) -> None:
    [job_id] = await _add(sessions, 1, grp="a")
    policy = q.Retry(q.Backoff(base=100.0, factor=3.0, ceiling=250.0))
    for attempt, delay in ((1, 100.0), (2, 250.0)):
        [unit] = await _claim(sessions, LINKED, 1)
        assert unit.rows[0].attempts == attempt
        before = _now()
        async with sessions() as session, session.begin():
            retried = await q.retry(session, LINKED, unit.lease, unit.ids, attempts=attempt, policy=policy,
                                    note="transport")
        assert (retried.dead, retried.delay, retried.ids) == (False, delay, {job_id})
        row = (await _rows(sessions))[job_id]
        assert (row.state, row.owner, row.note) == ("retry", None, "transport")
        waits = (row.next_attempt_at.replace(tzinfo=UTC) - before).total_seconds()
        assert delay - 1 < waits < delay + 5
        async with sessions() as session, session.begin():  # the operator's "retry now"
            assert await q.due_now(session, LINKED) == 1


async def test_dead_letter_after_the_configured_attempts(sessions: Sessions) -> None:
    [job_id] = await _add(sessions, 1)
    policy = q.Retry(q.Backoff(base=0.0), max_attempts=3)
    outcomes = []
    while units := await _claim(sessions, PLAIN, 1):
        async with sessions() as session, session.begin():
            outcomes.append((await q.retry(session, PLAIN, units[0].lease, units[0].ids,
                                           attempts=units[0].rows[0].attempts, policy=policy)).dead)
    assert outcomes == [False, False, True]
    row = (await _rows(sessions))[job_id]
    assert (row.state, row.attempts) == ("dead", 3)


async def test_release_gives_the_unit_back_due_now_without_counting_the_attempt(sessions: Sessions) -> None:
    [job_id] = await _add(sessions, 1, grp="a")
    [unit] = await _claim(sessions, LINKED, 1)
    async with sessions() as session, session.begin():
        assert await q.release(session, LINKED, unit.lease, unit.ids) == {job_id}
    row = (await _rows(sessions))[job_id]
    assert (row.state, row.attempts, row.owner) == ("pending", 0, None)
    [again] = await _claim(sessions, LINKED, 1)
    assert again.ids == [job_id]


@pytest.mark.parametrize("queue", [PLAIN, LINKED], ids=["lease-in-due-time", "leased-state-and-owner"])
async def test_a_live_worker_extends_its_lease_and_keeps_the_unit(sessions: Sessions, queue: q.Queue) -> None:
    [job_id] = await _add(sessions, 1, grp="a")
    [unit] = await _claim(sessions, queue, 1, lease=60)
    async with sessions() as session, session.begin():
        renewed = await q.extend(session, queue, unit.lease, unit.ids, 3600)
    assert renewed is not None and renewed.until > unit.lease.until
    async with sessions() as session, session.begin():  # the first lease's end would have passed: still held
        await session.execute(update(Job).where(Job.id == job_id).values(next_attempt_at=renewed.until))
    assert await _claim(sessions, queue, 1) == []
    async with sessions() as session, session.begin():
        assert await q.finish(session, queue, renewed, [job_id], "done") == {job_id}
        assert await q.extend(session, queue, renewed, [job_id], 60) is None  # answered: nothing left to hold
