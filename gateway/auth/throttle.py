"""Failed-login throttling, counted before the password is hashed and shared through the store.

Two ceilings, both over the sliding window ``[limits] failed_login_window``:

- ``failed_logins`` per (client address, account name): one person's typos block that person's account from
  that address, not everybody behind the same NAT address;
- ``failed_logins_per_address`` per client address alone, higher: a guesser trying many accounts from one
  address is stopped too.

A login that needs a hash first *reserves* a slot: in one write transaction, the attempts of the window (table
``auth_failures``) are counted and, under both ceilings, a *pending* row for this attempt is inserted; over a
ceiling of confirmed failures the login is refused at once, without hashing. When only attempts still being
checked fill the ceiling, the login waits for them (at most :data:`RESERVE_PATIENCE`): parallel logins with the
right password (a mail client opening several connections) are served one after the other instead of being
refused, and parallel guesses never get more than the ceiling's hashes. The transaction is serialised per
client address across every process and
instance sharing the store (SQLite's write lock, taken at BEGIN; a PostgreSQL advisory lock on the address), so
100 parallel wrong passwords give exactly ``failed_logins`` answers "invalid" and the rest "throttled", however
many gateway processes share them. The row stays as the failure when the password was wrong; it is deleted, with
that account's earlier failures from that address, when it was right. A login answered from the credential
cache needs no hash and no slot: it only reads the ceilings (:meth:`~LoginThrottle.check`).

:class:`LoginThrottle` also keeps the per-process, per-address counter that certificate logins (SASL EXTERNAL,
:mod:`gateway.trust.certificates`) use through :meth:`blocked`, :meth:`failed` and :meth:`succeeded`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import sqlite3
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth.models import AuthFailure
from gateway.store.sqlite_reads import sqlite_file
from gateway.store.sqlite_writes import SqliteWriter, WriteTx, engine_hooks, sql_time

#: Bound of the account name kept with a failure (the mailbox address column's size).
ACCOUNT_MAX = 320
#: Every this many reservations, rows older than the window are deleted for every address.
_PRUNE_EVERY = 256
#: Seconds a login waits for the attempts being checked that fill a ceiling, before it is refused.
RESERVE_PATIENCE = 10.0
#: A pending attempt older than this belongs to a process that died while hashing: it counts as a failure.
PENDING_STALE = 30.0
#: Seconds between two looks at the store while waiting (attempts of other processes end without a local signal).
_WAIT_STEP = 0.05


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _advisory_key(client: str) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``, the same in every process."""
    return int.from_bytes(hashlib.sha256(b"gateway.auth_failures:" + client.encode()).digest()[:8], "big",
                          signed=True)


@dataclass(frozen=True)
class _Crowded:
    """Only attempts still being checked fill a ceiling: wait for them (``block`` if the wait runs out)."""

    block: Block


@dataclass(frozen=True)
class Block:
    """A login refused before its password was checked."""

    scope: str  # "account": this account from this address; "address": this address for every account
    failures: int
    retry_after: float


@dataclass
class Reservation:
    """A login allowed to have its password checked; must end with :meth:`LoginThrottle.failure`,
    :meth:`LoginThrottle.success` or :meth:`LoginThrottle.release`."""

    client: str
    account: str
    #: Attempts of this pair in the window besides this one (a success deletes them only if there are some).
    pair_failures: int
    #: The attempt's row in ``auth_failures`` (None for a cache hit, which has no row).
    row_id: int | None = None
    done: bool = field(default=False)


class LoginThrottle:
    """Failed-login ceilings per (address, account) and per address; see the module docstring."""

    def __init__(self, limit: int, window: float, per_address: int | None = None) -> None:
        self.limit = limit
        self.window = window
        self.per_address = per_address if per_address is not None else max(30, limit)
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: Counter[str] = Counter()
        self._reserved = 0
        self._cleanups: set[asyncio.Task[None]] = set()
        self._settled = asyncio.Event()  # set whenever an attempt of this process ends
        #: One-hop writers by write sessionmaker (None: not a SQLite file).
        self._writers: dict[int, SqliteWriter | None] = {}
        # Per-process counter for certificate logins (SASL EXTERNAL).
        self._failures: dict[str, deque[float]] = {}

    # --- password logins, counted in the store ------------------------------------------------------------------
    class _Locked:
        """This process's queue per address, so waiting logins do not each hold a store connection."""

        def __init__(self, throttle: LoginThrottle, client: str) -> None:
            self.throttle, self.client = throttle, client

        async def __aenter__(self) -> None:
            t = self.throttle
            t._lock_users[self.client] += 1
            self.lock = t._locks.setdefault(self.client, asyncio.Lock())
            await self.lock.acquire()

        async def __aexit__(self, *exc: object) -> None:
            t = self.throttle
            self.lock.release()
            t._lock_users[self.client] -= 1
            if t._lock_users[self.client] <= 0:
                del t._lock_users[self.client]
                t._locks.pop(self.client, None)

    def _locked(self, client: str) -> LoginThrottle._Locked:
        return LoginThrottle._Locked(self, client)

    def _writer(self, writes: async_sessionmaker[AsyncSession]) -> SqliteWriter | None:
        """On a SQLite file, this process's one-hop writer of the throttle's rows (group-committed, taking turns
        with the other writers on the store's lock file, so a login's row is not starved by writers that hand
        SQLite's lock to each other); None elsewhere (the rows go through the sessions). The rows are attempts,
        not mail: their commits do not wait for the disk (``synced=False``, see :class:`SqliteWriter`): a crash of
        the process keeps them, a power loss could forget the last few seconds' failures."""
        key = id(writes)
        if key not in self._writers:
            path = sqlite_file(writes)
            self._writers[key] = SqliteWriter(path, engine_hooks(writes), name="throttle-write") \
                if path is not None else None
        return self._writers[key]

    async def counts(self, session: AsyncSession, client: str,
                     with_pending: bool = False) -> list[tuple[str, int, datetime]]:
        """Failures from ``client`` within the window: (account, count, oldest) per account; with ``with_pending``
        the attempts being checked count too (stale ones always do)."""
        now = _now()
        cutoff = now - timedelta(seconds=self.window)
        query = (select(AuthFailure.account, func.count(), func.min(AuthFailure.failed_at))
                 .where(AuthFailure.client == client, AuthFailure.failed_at > cutoff)
                 .group_by(AuthFailure.account))
        if not with_pending:
            query = query.where((AuthFailure.pending == false())
                                | (AuthFailure.failed_at < now - timedelta(seconds=PENDING_STALE)))
        return [(a, int(n), _aware(oldest)) for a, n, oldest in (await session.execute(query)).all()]

    def _retry_after(self, oldest: datetime | None) -> float:
        if oldest is None:
            return 1.0
        return max(1.0, (oldest + timedelta(seconds=self.window) - _now()).total_seconds())

    def _judge(self, rows: list[tuple[str, int, datetime]], account: str) -> Block | int:
        """The block, or the pair's attempts in the window."""
        pair, pair_oldest = next(((n, oldest) for a, n, oldest in rows if a == account), (0, None))
        if pair >= self.limit:
            return Block("account", pair, self._retry_after(pair_oldest))
        total = sum(n for _, n, _ in rows)
        if total >= self.per_address:
            return Block("address", total, self._retry_after(min(oldest for _, _, oldest in rows)))
        return pair

    async def check(self, reads: async_sessionmaker[AsyncSession], client: str,
                    account: str) -> Reservation | Block:
        """For a login that needs no hash (a cached one): the ceilings, read only; nothing is reserved."""
        async with reads() as session:
            return self.judge(await self.counts(session, client), client, account)

    def judge(self, rows: list[tuple[str, int, datetime]], client: str, account: str) -> Reservation | Block:
        """:meth:`check` on failures already read (:meth:`counts` or :meth:`counts_sqlite` of ``client``)."""
        account = account[:ACCOUNT_MAX]
        verdict = self._judge(rows, account)
        return verdict if isinstance(verdict, Block) else Reservation(client, account, verdict)

    async def reserve(self, writes: async_sessionmaker[AsyncSession], client: str,
                      account: str) -> Reservation | Block:
        """A slot to check one password (its pending row inserted), or why not; before any hashing."""
        account = account[:ACCOUNT_MAX]
        deadline = time.monotonic() + RESERVE_PATIENCE
        while True:
            self._settled.clear()
            async with self._locked(client):
                now = _now()
                self._reserved += 1
                prune = self._reserved % _PRUNE_EVERY == 0
                writer = self._writer(writes)
                if writer is not None:
                    outcome = await writer.run(functools.partial(self._reserve_tx, client=client,
                                                                 account=account, now=now, prune=prune),
                                               synced=False)
                else:
                    async with writes() as session, session.begin():
                        outcome = await self._reserve_session(session, client, account, now, prune)
                if not isinstance(outcome, _Crowded):
                    return outcome
                if time.monotonic() >= deadline:
                    return outcome.block
            with contextlib.suppress(TimeoutError):  # an attempt here ended, or look again for other processes'
                await asyncio.wait_for(self._settled.wait(), _WAIT_STEP)

    async def _reserve_session(self, session: AsyncSession, client: str, account: str, now: datetime,
                               prune: bool) -> Reservation | Block | _Crowded:
        """:meth:`reserve`'s transaction body through the session (PostgreSQL, under the address's lock)."""
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(select(func.pg_advisory_xact_lock(_advisory_key(client))))
        if prune:
            await session.execute(delete(AuthFailure).where(
                AuthFailure.failed_at <= now - timedelta(seconds=self.window)))
        verdict = self._judge(await self.counts(session, client), account)
        if isinstance(verdict, Block):
            return verdict
        crowded = self._judge(await self.counts(session, client, with_pending=True), account)
        if isinstance(crowded, Block):
            return _Crowded(crowded)
        row = AuthFailure(client=client, account=account, failed_at=now, pending=True)
        session.add(row)
        await session.flush()
        return Reservation(client, account, verdict, row.id)

    def counts_sqlite(self, connection: sqlite3.Connection, client: str, now: datetime,
                      with_pending: bool = False) -> list[tuple[str, int, datetime]]:
        """:meth:`counts` in plain SQL (the same statement, dates as SQLAlchemy writes them on SQLite)."""
        sql = ("SELECT account, count(*), min(failed_at) FROM auth_failures WHERE client = ? AND failed_at > ?")
        params: list[Any] = [client, sql_time(now - timedelta(seconds=self.window))]
        if not with_pending:
            sql += " AND (pending = 0 OR failed_at < ?)"
            params.append(sql_time(now - timedelta(seconds=PENDING_STALE)))
        rows = connection.execute(sql + " GROUP BY account", params).fetchall()
        return [(a, int(n), _aware(datetime.fromisoformat(oldest))) for a, n, oldest in rows]

    def _reserve_tx(self, tx: WriteTx, **kwargs: Any) -> Reservation | Block | _Crowded:
        return self._reserve_sqlite(tx.connection, **kwargs)

    def _reserve_sqlite(self, connection: sqlite3.Connection, *, client: str, account: str, now: datetime,
                        prune: bool) -> Reservation | Block | _Crowded:
        """:meth:`reserve`'s transaction body on SQLite, in one hop on the writer's connection."""
        if prune:
            connection.execute("DELETE FROM auth_failures WHERE failed_at <= ?",
                               (sql_time(now - timedelta(seconds=self.window)),))
        verdict = self._judge(self.counts_sqlite(connection, client, now, False), account)
        if isinstance(verdict, Block):
            return verdict
        crowded = self._judge(self.counts_sqlite(connection, client, now, True), account)
        if isinstance(crowded, Block):
            return _Crowded(crowded)
        cursor = connection.execute("INSERT INTO auth_failures (client, account, failed_at, pending) "
                                    "VALUES (?, ?, ?, 1)", (client, account, sql_time(now)))
        return Reservation(client, account, verdict, cursor.lastrowid)

    def release(self, reservation: Reservation, writes: async_sessionmaker[AsyncSession] | None = None) -> None:
        """The check did not happen (cancelled, store error): the attempt's row is deleted in the background."""
        if reservation.done:
            return
        reservation.done = True
        if reservation.row_id is None or writes is None:
            return

        row_id = reservation.row_id

        async def forget() -> None:
            writer = self._writer(writes)
            if writer is not None:
                await writer.run(lambda tx: tx.connection.execute("DELETE FROM auth_failures WHERE id = ?",
                                                                  (row_id,)), synced=False)
            else:
                async with writes() as session, session.begin():
                    await session.execute(delete(AuthFailure).where(AuthFailure.id == row_id))
            self._settled.set()
        task = asyncio.get_running_loop().create_task(forget())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def failure(self, writes: async_sessionmaker[AsyncSession], reservation: Reservation) -> None:
        """The password was wrong: the attempt's row stays, as the failure."""
        reservation.done = True
        row_id = reservation.row_id
        writer = self._writer(writes)
        if row_id is not None and writer is not None:
            await writer.run(lambda tx: tx.connection.execute("UPDATE auth_failures SET pending = 0 WHERE id = ?",
                                                              (row_id,)), synced=False)
        elif row_id is not None:
            async with writes() as session, session.begin():
                await session.execute(update(AuthFailure).where(AuthFailure.id == row_id).values(pending=False))
        self._settled.set()

    async def success(self, writes: async_sessionmaker[AsyncSession], reservation: Reservation) -> None:
        """The password was right: this attempt and this account's failures from this address are forgotten."""
        if reservation.done:
            return
        reservation.done = True
        client, account, row_id = reservation.client, reservation.account, reservation.row_id
        writer = self._writer(writes)
        if (reservation.pair_failures or row_id is not None) and writer is not None:  # other attempts checked stay
            await writer.run(lambda tx: tx.connection.execute(
                "DELETE FROM auth_failures WHERE client = ? AND account = ? AND (pending = 0 OR id IS ?)",
                (client, account, row_id)), synced=False)
        elif reservation.pair_failures or row_id is not None:
            async with writes() as session, session.begin():
                await session.execute(delete(AuthFailure).where(
                    AuthFailure.client == client, AuthFailure.account == account,
                    (AuthFailure.pending == false()) | (AuthFailure.id == row_id)))
        self._settled.set()

    # --- administration (``gateway throttle``) ----------------------------------------------------------------------
    async def list_blocks(self, session: AsyncSession) -> list[dict[str, Any]]:
        """Every (address, account) with failures in the window, and whether it is blocked now."""
        cutoff = _now() - timedelta(seconds=self.window)
        query = (select(AuthFailure.client, AuthFailure.account, func.count(), func.min(AuthFailure.failed_at),
                        func.max(AuthFailure.failed_at))
                 .where(AuthFailure.failed_at > cutoff)
                 .group_by(AuthFailure.client, AuthFailure.account)
                 .order_by(AuthFailure.client, AuthFailure.account))
        rows = (await session.execute(query)).all()
        per_address = Counter[str]()
        for client, _, n, _, _ in rows:
            per_address[client] += int(n)
        listed = []
        for client, account, n, oldest, newest in rows:
            oldest = _aware(oldest)
            blocked = "account" if n >= self.limit else "address" if per_address[client] >= self.per_address else ""
            listed.append({
                "client": client, "account": account, "failures": int(n),
                "address_failures": per_address[client], "last_failure": _aware(newest).isoformat(),
                "blocked": blocked,
                "until": (oldest + timedelta(seconds=self.window)).isoformat() if blocked else "",
            })
        return listed

    @staticmethod
    async def clear(session: AsyncSession, client: str, account: str | None = None) -> int:
        """Forget the failures of ``client`` (only those for ``account`` when given); how many were deleted."""
        where = [AuthFailure.client == client]
        if account is not None:
            where.append(AuthFailure.account == account.strip().lower()[:ACCOUNT_MAX])
        result = await session.execute(delete(AuthFailure).where(*where))
        return int(getattr(result, "rowcount", 0) or 0)

    # --- certificate logins: per process, per address ----------------------------------------------------------
    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
        return failures

    def blocked(self, address: str) -> bool:
        return len(self._recent(address, time.monotonic())) >= self.limit

    def retry_after(self, address: str) -> float:
        failures = self._recent(address, time.monotonic())
        return max(0.0, failures[0] + self.window - time.monotonic()) if failures else 0.0

    def failed(self, address: str) -> None:
        now = time.monotonic()
        self._recent(address, now)
        self._failures.setdefault(address, deque()).append(now)
        if len(self._failures) > 100_000:  # bound memory under a spray from many addresses
            oldest = min(self._failures, key=lambda a: self._failures[a][-1])
            del self._failures[oldest]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
