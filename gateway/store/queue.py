"""One durable-queue primitive for the store's work tables: claim, lease, retry with backoff, dead letter, release.

A work table (outbound recipients, filing jobs, DMP deposits, ...) becomes a queue through a :class:`Queue`
declaration naming its columns: which one holds the state, the due time, the attempts, the lease owner and the
group key. The columns keep the names each table already has (no migration, no common base class): the
declaration maps them, and the table's own module keeps its meaning.

* **Claim** (:func:`claim`): the due units, in due order, each moved forward by a lease in the caller's write
  transaction. On PostgreSQL the candidates are read ``FOR UPDATE SKIP LOCKED``, so instances sharing the store
  never wait on each other nor take the same row; on SQLite (one writer at a time, ``BEGIN IMMEDIATE``) the same
  guarantee comes from the conditional ``UPDATE`` of the lease on rows still unleased or whose lease ran out,
  whose ``RETURNING`` says which rows this claim holds. A unit whose holder died comes due again when its lease
  runs out (at least once; nothing queued is lost).
* **Groups**: a unit may be a group of rows sharing a key. When the queue says groups go whole (a DMP submission
  set, R15), a group is claimed with every active member or not at all: never while a member is held by a live
  lease elsewhere, and, when the table cannot tell a live lease from a wait, never while a member is not due.
* **Short work** needs no lease: read the due rows, do the work outside any transaction, then record it with
  :func:`finish_due`, which claims and answers in one statement only what is still claimable.
* **Answers** (:func:`finish`, :func:`retry`, :func:`release`) are written only while the claim is current (its
  owner token, or, without an owner column, the lease's end time still in the row), so a claim that lapsed and
  was taken over never overwrites its successor's answer. Retries back off (:class:`Backoff`, :class:`Schedule`)
  and end in the queue's dead-letter state after the configured attempts.

Wake-ups stay with the store's change notification (:mod:`gateway.store.changes`): a transaction that makes work
due marks the queue's pseudo folder, and the waiting worker starts at commit.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, and_, false, select, true, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from gateway.store.changes import mark_changed
from gateway.store.events import now

T = TypeVar("T")

#: Rows looked at per claim before grouping (the due index is read, not the rows' payloads).
SCAN = 200


class Delay(Protocol):
    def delay(self, attempts: int) -> float:
        """Seconds to wait before the attempt after ``attempts`` attempts."""
        ...


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base`` seconds after the first attempt, times ``factor`` each time, at most
    ``ceiling``."""

    base: float = 30.0
    factor: float = 2.0
    ceiling: float = 3600.0

    def delay(self, attempts: int) -> float:
        exponent = min(max(0, attempts - 1), 64)  # bounded: a huge attempt count cannot overflow the float
        return float(min(self.ceiling, self.base * self.factor ** exponent))


@dataclass(frozen=True)
class Schedule:
    """Backoff by a table of delays (``[outbound] retry_schedule``): the n-th retry waits the n-th delay, the last
    one repeating."""

    delays: tuple[float, ...]

    def delay(self, attempts: int) -> float:
        if not self.delays:
            return 0.0
        return float(self.delays[min(max(0, attempts - 1), len(self.delays) - 1)])


@dataclass(frozen=True)
class Retry:
    """How a queue retries: the backoff between attempts and, when bounded, the attempts before the dead letter."""

    backoff: Delay
    max_attempts: int | None = None

    def dead(self, attempts: int) -> bool:
        return self.max_attempts is not None and attempts >= self.max_attempts


@dataclass(frozen=True)
class Queue:
    """A table used as a durable queue, described by its columns (attribute names of the mapped class).

    ``waiting`` are the states a row waits in until its due time; ``leased`` the state a claim moves it to (None:
    it keeps its state and the lease is its due time alone); ``owner`` the column holding the claim's token;
    ``group`` the columns of the group key (none: each row is a unit); ``whole``: a group is claimed whole or not
    at all; ``per_unit``: at most this many rows of a group per claim when groups need not go whole.
    """

    model: type[Any]
    waiting: tuple[str, ...]
    dead: str
    leased: str | None = None
    retry_state: str | None = None
    owner: str | None = None
    group: tuple[str, ...] = ()
    whole: bool = False
    per_unit: int | None = None
    wake: int | None = None
    id: str = "id"
    state: str = "state"
    due: str = "next_attempt_at"
    attempts: str = "attempts"

    def column(self, name: str) -> InstrumentedAttribute[Any]:
        return getattr(self.model, name)  # type: ignore[no-any-return]

    @property
    def active(self) -> tuple[str, ...]:
        """States of a row not finished: waiting, or held by a claim."""
        return self.waiting + ((self.leased,) if self.leased else ())

    def claimable(self, at: datetime) -> ColumnElement[bool]:
        """Due and not held by a live lease: waiting and due, or held by a lease that ran out."""
        return and_(self.column(self.state).in_(self.active), self.column(self.due) <= at)

    def live_lease(self, at: datetime) -> ColumnElement[bool]:
        """Held by a claim whose lease has not run out (false when the table cannot tell a lease from a wait)."""
        due = self.column(self.due) > at
        if self.leased is not None:
            return and_(self.column(self.state) == self.leased, due)
        if self.owner is not None:
            return and_(self.column(self.owner).is_not(None), due)
        return false()

    def held(self, lease: Lease | None) -> ColumnElement[bool]:
        """Rows still held by ``lease`` (any row when None: the answer is a fact that must be recorded)."""
        if lease is None:
            return true()
        if self.owner is not None:
            condition = self.column(self.owner) == lease.token
        else:
            condition = self.column(self.due) == lease.until
        if self.leased is not None:
            return and_(condition, self.column(self.state) == self.leased)
        return and_(condition, self.column(self.state).in_(self.waiting))  # not answered yet


@dataclass(frozen=True)
class Lease:
    """One claim: its token (stored in the owner column when the table has one) and when it runs out."""

    token: str
    until: datetime


@dataclass(frozen=True)
class Unit(Generic[T]):
    """What one claim holds: the rows of one unit (one row, or one group), reloaded after the claim (attempts
    counted), and those whose previous lease had run out (their holder died or stalled)."""

    key: tuple[Any, ...]
    rows: list[T]
    lease: Lease
    reclaimed: frozenset[int] = field(default_factory=frozenset)

    @property
    def ids(self) -> list[int]:
        return [row.id for row in self.rows]  # type: ignore[attr-defined]


def _locking(session: AsyncSession, query: Any) -> Any:
    """``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer at a time and no row locks."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def claim(session: AsyncSession, queue: Queue, *, units: int, lease: float,
                where: Sequence[ColumnElement[bool]] = (), scan: int = SCAN) -> list[Unit[Any]]:
    """Claim up to ``units`` due units for ``lease`` seconds in the caller's write transaction; each row's
    attempts are counted here. ``where`` narrows the candidates (the table's own columns)."""
    if units <= 0:
        return []
    at = now()
    key_columns = [queue.column(name) for name in queue.group]
    id_column, state_column = queue.column(queue.id), queue.column(queue.state)
    candidates = (await session.execute(_locking(session, (
        select(id_column, state_column, *key_columns).where(queue.claimable(at), *where)
        .order_by(queue.column(queue.due), id_column).limit(scan))))).all()
    if not candidates:
        return []
    chosen: dict[tuple[Any, ...], list[int]] = {}
    previous: dict[int, str] = {}
    for row in candidates:
        key = tuple(row[2:]) if key_columns else (row[0],)
        if key not in chosen and len(chosen) >= units:
            continue
        members = chosen.setdefault(key, [])
        if queue.per_unit is None or len(members) < queue.per_unit:
            members.append(row[0])
            previous[row[0]] = row[1]
    if queue.whole and key_columns:
        chosen = await _whole(session, queue, list(chosen), at, previous)
    ids = [i for members in chosen.values() for i in members]
    if not ids:
        return []
    held = Lease(uuid.uuid4().hex, at + timedelta(seconds=lease))
    values: dict[str, Any] = {queue.due: held.until, queue.attempts: queue.column(queue.attempts) + 1}
    if queue.leased is not None:
        values[queue.state] = queue.leased
    if queue.owner is not None:
        values[queue.owner] = held.token
    # The SQLite equivalent of the row locks: only rows still claimable (or, for a whole group, still active and
    # not under a live lease) take the lease; RETURNING says which this claim now holds.
    still = (and_(state_column.in_(queue.active), ~queue.live_lease(at)) if queue.whole and key_columns
             else queue.claimable(at))
    taken = set((await session.execute(
        update(queue.model).where(id_column.in_(ids), still).values(values).returning(id_column)
        .execution_options(synchronize_session=False))).scalars().all())
    loaded = {row.id: row for row in (await session.execute(
        select(queue.model).where(id_column.in_(taken)).execution_options(populate_existing=True))).scalars()}
    result: list[Unit[Any]] = []
    for key, members in chosen.items():
        rows = [loaded[i] for i in members if i in loaded]
        if queue.whole and len(rows) != len(members):  # cannot happen under the writer lock or the row locks
            raise RuntimeError("a group was claimed in part")
        if rows:
            reclaimed = frozenset(i for i in members if i in loaded and previous.get(i) == queue.leased)
            result.append(Unit(key, rows, held, reclaimed))
    return result


async def _whole(session: AsyncSession, queue: Queue, keys: list[tuple[Any, ...]], at: datetime,
                 previous: dict[int, str]) -> dict[tuple[Any, ...], list[int]]:
    """Every active member of the groups ``keys``, locked for this claim, leaving out the groups that cannot be
    taken whole: a member locked by a concurrent claim, under a live lease, or (when the table cannot tell a lease
    from a wait) not due yet."""
    key_columns = [queue.column(name) for name in queue.group]
    id_column, state_column = queue.column(queue.id), queue.column(queue.state)
    owner_column = queue.column(queue.owner) if queue.owner is not None else state_column
    in_keys = (key_columns[0].in_([k[0] for k in keys]) if len(key_columns) == 1
               else tuple_(*key_columns).in_(keys))
    key_of = {row[0]: tuple(row[1:]) for row in (await session.execute(
        select(id_column, *key_columns).where(state_column.in_(queue.active), in_keys))).all()}
    # Read again under the lock: what a concurrent claim or answer committed meanwhile is what counts.
    locked = (await session.execute(_locking(session, (
        select(id_column, state_column, queue.column(queue.due), owner_column, *key_columns)
        .where(id_column.in_(list(key_of))).order_by(queue.column(queue.due), id_column))))).all()
    seen = {row[0] for row in locked}
    busy = {key for i, key in key_of.items() if i not in seen}  # locked by a concurrent claim: the group waits
    members: dict[tuple[Any, ...], list[int]] = {k: [] for k in keys}
    for row in locked:
        key = tuple(row[4:])
        if row[1] not in queue.active:
            continue  # answered meanwhile: no longer part of what is sent
        later = _aware(row[2], at) > at
        if queue.leased is not None:
            held_elsewhere = later and row[1] == queue.leased
        elif queue.owner is not None:
            held_elsewhere = later and row[3] is not None
        else:  # a lease and a wait look alike: a member not due may be in flight
            held_elsewhere = later
        if held_elsewhere:
            busy.add(key)
        members.setdefault(key, []).append(row[0])
        previous.setdefault(row[0], row[1])
    return {k: v for k, v in members.items() if k not in busy and v}


def _aware(value: datetime, like: datetime) -> datetime:
    """SQLite returns naive datetimes (stored as UTC); PostgreSQL returns aware ones."""
    return value if value.tzinfo is not None else value.replace(tzinfo=like.tzinfo)


async def _answer(session: AsyncSession, queue: Queue, lease: Lease | None, ids: Iterable[int],
                  values: dict[str, Any]) -> set[int]:
    wanted = list(ids)
    if not wanted:
        return set()
    if queue.owner is not None:
        values = {queue.owner: None, **values}
    id_column = queue.column(queue.id)
    done = await session.execute(
        update(queue.model).where(id_column.in_(wanted), queue.held(lease)).values(values).returning(id_column)
        .execution_options(synchronize_session=False))
    return set(done.scalars().all())


async def finish(session: AsyncSession, queue: Queue, lease: Lease | None, ids: Iterable[int], state: str,
                 **values: Any) -> set[int]:
    """Move the rows still held by ``lease`` to the final ``state`` (done, sent, refused, ...), with the table's
    own columns in ``values``; the ids written (a row taken over after its lease lapsed is left alone)."""
    return await _answer(session, queue, lease, ids, {queue.state: state, **values})


async def finish_due(session: AsyncSession, queue: Queue, ids: Iterable[int], state: str, **values: Any) -> set[int]:
    """Claim and answer in one statement the rows still claimable now, counting the attempt: for work short
    enough to be done before the transaction that records it (read the due rows, do the work, then this), so a
    job costs one write transaction instead of two. A row claimed meanwhile by another worker is left alone;
    the ids written."""
    wanted = list(ids)
    if not wanted:
        return set()
    id_column = queue.column(queue.id)
    done = await session.execute(
        update(queue.model).where(id_column.in_(wanted), queue.claimable(now()))
        .values({queue.state: state, queue.attempts: queue.column(queue.attempts) + 1, **values})
        .returning(id_column).execution_options(synchronize_session=False))
    return set(done.scalars().all())


@dataclass(frozen=True)
class Retried:
    """A retry's outcome: dead-lettered or due again after ``delay`` seconds; the ids written."""

    dead: bool
    delay: float
    ids: set[int]


async def retry(session: AsyncSession, queue: Queue, lease: Lease | None, ids: Iterable[int], *, attempts: int,
                policy: Retry, at: datetime | None = None, count: bool = False, **values: Any) -> Retried:
    """Make the rows still held by ``lease`` due again after the backoff of ``attempts`` (the most among them,
    so rows retried together come due together and are claimed together) counted from ``at`` (now), or
    dead-letter them when ``attempts`` reached the policy's bound. ``count``: this attempt was not counted by a
    claim (work answered with :func:`finish_due`), count it here."""
    if count:
        values = {queue.attempts: queue.column(queue.attempts) + 1, **values}
    if policy.dead(attempts):
        return Retried(True, 0.0, await finish(session, queue, lease, ids, queue.dead, **values))
    delay = policy.backoff.delay(attempts)
    state = queue.retry_state or queue.waiting[0]
    written = await _answer(session, queue, lease, ids, {
        queue.state: state, queue.due: (at or now()) + timedelta(seconds=delay), **values})
    return Retried(False, delay, written)


async def extend(session: AsyncSession, queue: Queue, lease: Lease, ids: Iterable[int], seconds: float) -> Lease | None:
    """Keep rows still held by ``lease`` for ``seconds`` more (a live worker's long delivery is not taken over);
    the new lease, or None when the claim lapsed and was taken over."""
    renewed = Lease(lease.token, now() + timedelta(seconds=seconds))
    wanted = list(ids)
    id_column = queue.column(queue.id)
    done = await session.execute(
        update(queue.model).where(id_column.in_(wanted), queue.held(lease)).values({queue.due: renewed.until})
        .returning(id_column).execution_options(synchronize_session=False))
    return renewed if set(done.scalars().all()) == set(wanted) else None


async def release(session: AsyncSession, queue: Queue, lease: Lease, ids: Iterable[int]) -> set[int]:
    """Give rows back unanswered (the worker is stopping): due now, this attempt not counted."""
    values: dict[str, Any] = {queue.due: now(), queue.attempts: queue.column(queue.attempts) - 1}
    if queue.leased is not None:
        values[queue.state] = queue.waiting[0]
    written = await _answer(session, queue, lease, ids, values)
    if written and queue.wake is not None:
        mark_changed(session, queue.wake)
    return written


async def due_now(session: AsyncSession, queue: Queue, ids: Iterable[int] | None = None) -> int:
    """Make waiting rows (all, or ``ids``) due at once, as an operator asks; how many."""
    query = update(queue.model).where(queue.column(queue.state).in_(queue.waiting)).values({queue.due: now()})
    wanted = list(ids) if ids is not None else []
    if wanted:
        query = query.where(queue.column(queue.id).in_(wanted))
    result = await session.execute(query)
    count = int(getattr(result, "rowcount", 0) or 0)
    if count and queue.wake is not None:
        mark_changed(session, queue.wake)
    return count

