"""Account authentication against the store, the one path both SMTP and IMAP log in through.

A password login goes: the mailbox's id, current hash and active flag read in one small query → a hit of the
verified-credential cache (:mod:`.cache`) only checks the throttle's ceilings; the same credentials arriving while
a miss of theirs is being verified wait for that answer (one hash for a reconnecting crowd); a miss reserves a
throttle slot (:mod:`.throttle`; refused without hashing past a ceiling) and verifies with Argon2id on a hashing
thread (:mod:`.hashing`) → the slot kept as a failure or released → a hash made with other parameters than
``[auth] argon2_*`` rewritten. Log lines carry the client address and the mailbox id, never the user name (an
address may hold an INS matricule).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import enum
import functools
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.auth import hashing
from gateway.auth.anvil import Anvil
from gateway.auth.cache import CredentialCache
from gateway.auth.hashing import Argon2Params
from gateway.auth.methods import allows
from gateway.auth.passwords import verify_password
from gateway.auth.throttle import ACCOUNT_MAX, Block, LoginThrottle
from gateway.config import AuthSettings, Limits
from gateway.ops import metrics
from gateway.store.models import Mailbox
from gateway.store.sqlite_reads import SqliteReader, sqlite_file

log = structlog.get_logger("gateway.auth")

_CREDENTIALS_SQL = ("SELECT id, address, kind, matricule, password_hash, active, auth_methods FROM mailboxes "
                    "WHERE address = ?")
#: The throttle's failures from one client address: (account, count, oldest), as :meth:`LoginThrottle.counts`.
Failures = list[tuple[str, int, datetime]]


class Credentials(NamedTuple):
    """What a login reads of its mailbox."""

    id: int
    address: str
    kind: str
    matricule: str | None
    password_hash: str | None
    active: bool
    auth_methods: str | None


@dataclass(frozen=True)
class Account:
    """An authenticated mailbox, as the protocol sessions carry it."""

    id: int
    address: str
    kind: str
    matricule: str | None

    @property
    def is_patient(self) -> bool:
        return self.kind == "PAT"


class LoginOutcome(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    THROTTLED = "throttled"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    account: Account | None = None
    #: THROTTLED: seconds until a slot frees (for a "try again later" reply).
    retry_after: float = 0.0


def account_of(mailbox: Mailbox) -> Account:
    return Account(mailbox.id, mailbox.address, mailbox.kind, mailbox.matricule)


def normalise_username(username: str) -> str:
    """Account names compare as mailbox addresses do: trimmed, lower case, bounded."""
    return username.strip().lower()[:ACCOUNT_MAX]


def _writer_of(reads: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Write sessions on the engine of ``reads`` (those from :func:`gateway.store.db.read_sessionmaker` never
    take SQLite's write lock, so they must not write)."""
    from gateway.store.db import READ_ONLY

    bind = reads.kw.get("bind")
    if isinstance(bind, AsyncEngine):
        return async_sessionmaker(bind.execution_options(**{READ_ONLY: False}), expire_on_commit=False)
    return reads


class Authenticator:
    """Checks credentials and certificate bindings; throttles failures; holds the connection limits (``anvil``).

    ``sessions`` reads the store; ``writes`` (derived from it when not given) records failures and rehashes.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], throttle: LoginThrottle | None = None, *,
                 writes: async_sessionmaker[AsyncSession] | None = None, settings: AuthSettings | None = None,
                 limits: Limits | None = None, anvil: Anvil | None = None) -> None:
        limits = limits or Limits()
        settings = settings or AuthSettings()
        self._sessions = sessions
        self._writes = writes or _writer_of(sessions)
        path = sqlite_file(sessions)
        self._sqlite = SqliteReader.shared(path) if path is not None else None
        self.throttle = throttle or LoginThrottle(limits.failed_logins, limits.failed_login_window,
                                                  limits.failed_logins_per_address)
        self.params = Argon2Params(settings.argon2_memory_kib, settings.argon2_time_cost,
                                   settings.argon2_parallelism)
        self.cache = CredentialCache(settings.cache_ttl, settings.cache_size)
        #: Cache misses being verified, by cache key: the same credentials arriving meanwhile (a client opening
        #: several connections, clients reconnecting after a restart) wait for that one answer instead of
        #: hashing again; when it was wrong, each goes its own way (its own slot, its own hash).
        self._verifying: dict[bytes, asyncio.Future[bool]] = {}
        self.anvil = anvil or Anvil.from_limits(limits)
        #: Pro Santé Connect logins (SASL OAUTHBEARER / XOAUTH2), when ``[psc]`` is configured (gateway/psc).
        self.psc: Any = None

    @classmethod
    def from_config(cls, config: Any, reads: async_sessionmaker[AsyncSession],
                    writes: async_sessionmaker[AsyncSession] | None = None) -> Authenticator:
        """The daemon's authenticator: ``[limits]`` ceilings and ``[auth]`` settings of ``config``."""
        limits: Limits = config.limits
        throttle = LoginThrottle(limits.failed_logins, limits.failed_login_window, limits.failed_logins_per_address)
        return cls(reads, throttle, writes=writes, settings=config.auth, limits=limits)

    def apply(self, config: Any) -> None:
        """A reloaded configuration: new ceilings, limits, Argon2 parameters and cache settings from now on
        (counts, open connections and cached logins are kept)."""
        limits: Limits = config.limits
        settings: AuthSettings = config.auth
        self.throttle.limit, self.throttle.window = limits.failed_logins, limits.failed_login_window
        self.throttle.per_address = limits.failed_logins_per_address
        self.anvil.connections_per_address = limits.connections_per_address
        self.anvil.connection_rate_per_address = limits.connection_rate_per_address
        self.anvil.messages_per_minute = limits.messages_per_minute
        self.anvil.recipients_per_minute = limits.recipients_per_minute
        self.params = Argon2Params(settings.argon2_memory_kib, settings.argon2_time_cost,
                                   settings.argon2_parallelism)
        self.cache.ttl, self.cache.max_entries = settings.cache_ttl, settings.cache_size

    async def start(self) -> None:
        """Start the hashing workers now rather than at the first login (see :func:`gateway.auth.hashing.start`)."""
        await hashing.start()

    async def close(self) -> None:
        """Stop the hashing workers (daemon stop)."""
        await asyncio.to_thread(hashing.shutdown)

    async def _mailbox(self, **where: str) -> Mailbox | None:
        async with self._sessions() as session:
            query = select(Mailbox).filter_by(active=True, **where)
            return (await session.execute(query)).scalar_one_or_none()

    async def _credentials(self, address: str, client: str) -> tuple[Credentials | None, Failures | None]:
        """The mailbox's id, kind, matricule, current hash, active flag and methods, and on SQLite also the
        throttle's failures from ``client`` (all a cached login reads): one hop to the process's SQLite reader
        threads, one indexed query elsewhere (the failures are then read only if the login turns out cached)."""
        if self._sqlite is not None:
            return await self._sqlite.run(functools.partial(self._credentials_sqlite, address=address,
                                                            client=client))
        async with self._sessions() as session:
            query = select(Mailbox.id, Mailbox.address, Mailbox.kind, Mailbox.matricule, Mailbox.password_hash,
                           Mailbox.active, Mailbox.auth_methods).where(Mailbox.address == address)
            row = (await session.execute(query)).one_or_none()
            return (Credentials(*row) if row is not None else None), None

    def _credentials_sqlite(self, connection: sqlite3.Connection, *, address: str,
                            client: str) -> tuple[Credentials | None, Failures]:
        row = connection.execute(_CREDENTIALS_SQL, (address,)).fetchone()
        failures = self.throttle.counts_sqlite(connection, client, datetime.now(UTC))
        if row is None:
            return None, failures
        return Credentials(row[0], row[1], row[2], row[3], row[4], bool(row[5]), row[6]), failures

    async def login(self, username: str, password: str, client: str, protocol: str, *,
                    mechanism: str = "PLAIN") -> LoginResult:
        """Verify a password login from ``client`` (an IP address); never raises for wrong credentials."""
        result = await self._login(username, password, client, protocol)
        metrics.login(protocol, mechanism, result.outcome.value)
        return result

    async def _login(self, username: str, password: str, client: str, protocol: str) -> LoginResult:
        name = normalise_username(username)
        row, failures = await self._credentials(name, client)
        stored = row.password_hash if row is not None and row.active and allows(row.auth_methods, "password") \
            else None  # a mailbox may require PSC or a certificate
        key = self.cache.key(name, password)
        cached = row is not None and stored is not None and self.cache.lookup(key, row.id, stored)
        leader: asyncio.Future[bool] | None = None
        if row is not None and stored is not None and not cached and self.cache.enabled:
            first = self._verifying.get(key)
            if first is not None and await asyncio.shield(first):  # the same login is being verified: its answer
                cached = self.cache.lookup(key, row.id, stored)
            elif first is None:
                leader = self._verifying[key] = asyncio.get_running_loop().create_future()
        try:
            return await self._decide(name, password, client, protocol, row, stored, failures, key, cached)
        finally:
            if leader is not None:
                del self._verifying[key]
                if not leader.done():
                    leader.set_result(False)

    async def _decide(self, name: str, password: str, client: str, protocol: str, row: Credentials | None,
                      stored: str | None, failures: Failures | None, key: bytes, cached: bool) -> LoginResult:
        mailbox_id = row.id if row is not None else None
        if cached and failures is not None:  # no hash to pay for: the ceilings were read with the row
            slot = self.throttle.judge(failures, client, name)
        elif cached:
            slot = await self.throttle.check(self._sessions, client, name)
        else:
            slot = await self.throttle.reserve(self._writes, client, name)
        if isinstance(slot, Block):
            log.warning("login", protocol=protocol, outcome="throttled", client=client, mailbox_id=mailbox_id,
                        scope=slot.scope, failures=slot.failures, retry_after=round(slot.retry_after))
            return LoginResult(LoginOutcome.THROTTLED, retry_after=slot.retry_after)
        try:
            ok = cached or await verify_password(stored, password, self.params)
        except BaseException:
            self.throttle.release(slot, self._writes)
            raise
        if not ok:
            await self.throttle.failure(self._writes, slot)
            reason = "no_mailbox" if row is None else "disabled" if not row.active else \
                "method_not_allowed" if not allows(row.auth_methods, "password") else "password"
            log.info("login", protocol=protocol, outcome="invalid", client=client, mailbox_id=mailbox_id,
                     reason=reason)
            return LoginResult(LoginOutcome.INVALID)
        assert row is not None and stored is not None  # a password was right: the mailbox has one
        await self.throttle.success(self._writes, slot)
        if not cached:
            self.cache.store(key, row.id, stored)
            first = self._verifying.get(key)
            if first is not None and not first.done():
                first.set_result(True)  # the same logins waiting are now cache hits
            if hashing.needs_rehash(stored, self.params):
                await self._rehash(row.id, stored, name, password, client)
        log.info("login", protocol=protocol, outcome="ok", client=client, mailbox_id=row.id, cached=cached)
        return LoginResult(LoginOutcome.OK, Account(row.id, row.address, row.kind, row.matricule))

    async def _rehash(self, mailbox_id: int, old: str, name: str, password: str, client: str) -> None:
        """Rewrite a hash made with other Argon2 parameters; only if nobody changed it meanwhile."""
        from gateway.store.events import record

        try:
            new = await hashing.hash_password(password, self.params)
            async with self._writes() as session, session.begin():
                result = await session.execute(
                    update(Mailbox).where(Mailbox.id == mailbox_id, Mailbox.password_hash == old)
                    .values(password_hash=new))
                changed = bool(getattr(result, "rowcount", 0))
                if changed:
                    await record(session, "mailbox.password", "rehashed", mailbox_id=mailbox_id,
                                 memory_kib=self.params.memory_kib, time_cost=self.params.time_cost,
                                 parallelism=self.params.parallelism)
        except SQLAlchemyError as exc:  # the login stands; the next one tries again
            log.warning("password_rehash", outcome="failed", client=client, mailbox_id=mailbox_id,
                        error=type(exc).__name__)
            return
        if changed:
            self.cache.store(self.cache.key(name, password), mailbox_id, new)

    def forget(self, mailbox_id: int) -> None:
        """Drop the cached logins of a mailbox whose password changed or that was disabled in this process."""
        self.cache.forget_mailbox(mailbox_id)

    async def login_certificate(self, fingerprint: str, authzid: str, protocol: str, *,
                                client: str | None = None) -> Account | None:
        """SASL EXTERNAL: the mailbox bound to the client certificate's SHA-256 fingerprint."""
        mailbox = await self._mailbox(certificate_fingerprint=fingerprint.lower())
        if mailbox is None or (authzid and authzid.lower() != mailbox.address) \
                or not allows(mailbox.auth_methods, "certificate"):
            log.info("login", protocol=protocol, mechanism="EXTERNAL", outcome="invalid", client=client,
                     mailbox_id=mailbox.id if mailbox else None)
            metrics.login(protocol, "EXTERNAL", "invalid")
            return None
        log.info("login", protocol=protocol, mechanism="EXTERNAL", outcome="ok", client=client,
                 mailbox_id=mailbox.id)
        metrics.login(protocol, "EXTERNAL", "ok")
        return account_of(mailbox)
