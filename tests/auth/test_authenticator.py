"""The one login path (gateway.auth.accounts.Authenticator) over a real store: cache, rehash, throttle.

Runs on SQLite and PostgreSQL. Hashes are verified in the real worker processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth import hashing
from gateway.auth.accounts import Authenticator, LoginOutcome
from gateway.auth.hashing import Argon2Params
from gateway.auth.passwords import hash_password
from gateway.auth.throttle import LoginThrottle
from gateway.config import AuthSettings, Limits
from gateway.store import db, mailstore
from gateway.store.models import Event, Mailbox

ALICE = "alice@pro.gateway.test"
BOB = "bob@pro.gateway.test"
CAROL = "carol@pro.gateway.test"
PASSWORD = "correct horse battery"
#: Cheap parameters for the tests' own hashes; the authenticator's settings are what a rehash moves to.
CHEAP = Argon2Params(memory_kib=8192, time_cost=1, parallelism=1)
LIMITS = Limits(failed_logins=3, failed_logins_per_address=5, failed_login_window=600)


@dataclass
class Rig:
    engine: AsyncEngine
    url: str

    def authenticator(self, settings: AuthSettings | None = None, limits: Limits = LIMITS) -> Authenticator:
        return Authenticator(db.read_sessionmaker(self.engine), settings=settings or AuthSettings(
            argon2_memory_kib=CHEAP.memory_kib, argon2_time_cost=CHEAP.time_cost), limits=limits)

    async def add(self, address: str, password: str = PASSWORD, params: Argon2Params = CHEAP) -> int:
        async with db.sessionmaker(self.engine)() as session, session.begin():
            return await mailstore.create_mailbox(session, address, "PER",
                                                  password_hash=hash_password(password, params))

    async def stored_hash(self, mailbox_id: int) -> str:
        async with db.sessionmaker(self.engine)() as session:
            value = await session.scalar(select(Mailbox.password_hash).where(Mailbox.id == mailbox_id))
            assert value is not None
            return value

    async def set(self, mailbox_id: int, **values: object) -> None:
        """What ``gateway mailbox password|disable`` does, from another process's connection."""
        other = db.create_engine(self.url)
        try:
            async with db.sessionmaker(other)() as session, session.begin():
                await session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(**values))
        finally:
            await other.dispose()


@pytest.fixture
async def rig(store_url: str) -> AsyncIterator[Rig]:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    yield Rig(engine, store_url)
    await engine.dispose()


async def test_cached_login_skips_the_hash(rig: Rig) -> None:
    await rig.add(ALICE)
    auth = rig.authenticator()
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK
    verified = hashing.counts["verify"]
    second = await auth.login(ALICE.upper(), PASSWORD, "10.0.0.2", "smtp")
    assert second.outcome is LoginOutcome.OK and second.account is not None and second.account.address == ALICE
    assert hashing.counts["verify"] == verified and auth.cache.hits == 1


async def test_cache_never_accepts_another_password(rig: Rig) -> None:
    await rig.add(ALICE)
    auth = rig.authenticator()
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK
    verified = hashing.counts["verify"]
    assert (await auth.login(ALICE, PASSWORD + "x", "10.0.0.1", "imap")).outcome is LoginOutcome.INVALID
    assert hashing.counts["verify"] == verified + 1


async def test_password_changed_elsewhere_invalidates_the_cached_login(rig: Rig) -> None:
    alice = await rig.add(ALICE)
    auth = rig.authenticator()
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK
    await rig.set(alice, password_hash=hash_password("new password", CHEAP))
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.INVALID
    assert (await auth.login(ALICE, "new password", "10.0.0.1", "imap")).outcome is LoginOutcome.OK


async def test_disabled_mailbox_is_refused_even_with_a_cached_login(rig: Rig) -> None:
    alice = await rig.add(ALICE)
    auth = rig.authenticator()
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "smtp")).outcome is LoginOutcome.OK
    await rig.set(alice, active=False)
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "smtp")).outcome is LoginOutcome.INVALID
    await rig.set(alice, active=True)
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "smtp")).outcome is LoginOutcome.OK


async def test_hash_with_other_parameters_is_rewritten_at_login(rig: Rig) -> None:
    alice = await rig.add(ALICE, params=Argon2Params(memory_kib=9216, time_cost=1, parallelism=1))
    auth = rig.authenticator()  # CHEAP: m=8192, t=1
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK
    stored = await rig.stored_hash(alice)
    assert "$argon2id$" in stored and "m=8192,t=1,p=1" in stored
    assert not hashing.needs_rehash(stored, CHEAP)
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK
    async with db.sessionmaker(rig.engine)() as session:
        kinds = (await session.execute(select(Event.outcome).where(Event.kind == "mailbox.password",
                                                                   Event.mailbox_id == alice))).scalars().all()
    assert kinds == ["rehashed"]  # the second login found the new parameters: nothing to do


async def test_hash_with_current_parameters_is_left_alone(rig: Rig) -> None:
    alice = await rig.add(ALICE)
    before = await rig.stored_hash(alice)
    assert (await rig.authenticator().login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK
    assert await rig.stored_hash(alice) == before


async def test_account_ceiling_blocks_that_account_from_that_address_only(rig: Rig) -> None:
    await rig.add(ALICE)
    await rig.add(BOB)
    auth = rig.authenticator()
    for _ in range(3):
        assert (await auth.login(ALICE, "typo", "10.0.0.1", "imap")).outcome is LoginOutcome.INVALID
    blocked = await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")
    assert blocked.outcome is LoginOutcome.THROTTLED and blocked.retry_after > 500
    assert (await auth.login(BOB, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK  # same NAT address
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.2", "imap")).outcome is LoginOutcome.OK  # another address


async def test_address_ceiling_blocks_every_account_from_the_address(rig: Rig) -> None:
    await rig.add(CAROL)
    auth = rig.authenticator()
    for name in ("a", "b", "c", "d", "e"):  # 5 = failed_logins_per_address, one per account
        assert (await auth.login(f"{name}@pro.gateway.test", "x", "10.0.0.9", "imap")).outcome \
            is LoginOutcome.INVALID
    assert (await auth.login(CAROL, PASSWORD, "10.0.0.9", "imap")).outcome is LoginOutcome.THROTTLED
    assert (await auth.login(CAROL, PASSWORD, "10.0.0.8", "imap")).outcome is LoginOutcome.OK


async def test_success_forgets_that_accounts_failures(rig: Rig) -> None:
    await rig.add(ALICE)
    auth = rig.authenticator()
    for _ in range(2):
        await auth.login(ALICE, "typo", "10.0.0.1", "imap")
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK
    for _ in range(2):
        assert (await auth.login(ALICE, "typo", "10.0.0.1", "imap")).outcome is LoginOutcome.INVALID
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.OK


async def test_parallel_wrong_passwords_are_counted_before_hashing(rig: Rig) -> None:
    await rig.add(ALICE)
    auth = rig.authenticator()
    verified = hashing.counts["verify"]
    results = await asyncio.gather(*(auth.login(ALICE, f"guess {i}", "10.0.0.1", "smtp") for i in range(100)))
    outcomes = [r.outcome for r in results]
    assert outcomes.count(LoginOutcome.INVALID) == 3
    assert outcomes.count(LoginOutcome.THROTTLED) == 97
    assert hashing.counts["verify"] - verified == 3


async def test_parallel_logins_with_the_right_password_all_succeed(rig: Rig) -> None:
    """A mail client opening several connections at once: attempts being checked hold slots, they are not
    failures, so the logins beyond the ceiling wait for them instead of being refused."""
    await rig.add(ALICE)
    auth = rig.authenticator(settings=AuthSettings(argon2_memory_kib=CHEAP.memory_kib,
                                                   argon2_time_cost=CHEAP.time_cost, cache_ttl=0))
    results = await asyncio.gather(*(auth.login(ALICE, PASSWORD, "10.0.0.1", "imap") for _ in range(8)))
    assert [r.outcome for r in results] == [LoginOutcome.OK] * 8
    assert (await auth.login(ALICE, "typo", "10.0.0.1", "imap")).outcome is LoginOutcome.INVALID  # still counted


async def test_the_same_login_arriving_while_it_is_verified_waits_for_that_one_hash(rig: Rig) -> None:
    """Clients reconnecting at once with the same credentials (several connections of one mail client, every
    client after a restart) cost one Argon2id run, not one each; a wrong password is never let in that way."""
    await rig.add(ALICE)
    await rig.add(BOB)
    auth = rig.authenticator()
    verified = hashing.counts["verify"]
    results = await asyncio.gather(*(auth.login(ALICE, PASSWORD, f"10.0.0.{i}", "imap") for i in range(20)),
                                   *(auth.login(BOB, PASSWORD, "10.0.1.1", "imap") for _ in range(5)))
    assert [r.outcome for r in results] == [LoginOutcome.OK] * 25
    assert hashing.counts["verify"] - verified == 2
    wrong = await asyncio.gather(*(auth.login(ALICE, "typo", f"10.0.2.{i}", "imap") for i in range(4)))
    assert [r.outcome for r in wrong] == [LoginOutcome.INVALID] * 4  # each checked, each counted
    assert hashing.counts["verify"] - verified == 6


async def test_wrong_and_right_passwords_in_parallel_count_only_the_wrong_ones(rig: Rig) -> None:
    """Three wrong and three right passwords at once under a ceiling of four: counted as failures, the right ones
    would take it past four and be refused; counted only as attempts being checked, they wait their turn and pass.
    (Under a ceiling of three, the three wrong ones may all be confirmed first: then the account is blocked, as
    it should be, whatever comes next.)"""
    await rig.add(ALICE)
    auth = rig.authenticator(limits=Limits(failed_logins=4, failed_logins_per_address=8, failed_login_window=600))
    attempts = [PASSWORD if i % 2 else f"guess {i}" for i in range(6)]
    results = await asyncio.gather(*(auth.login(ALICE, p, "10.0.0.1", "smtp") for p in attempts))
    assert [r.outcome for r in results] == [LoginOutcome.OK if p == PASSWORD else LoginOutcome.INVALID
                                            for p in attempts]


async def test_failures_are_shared_by_every_instance_on_the_store(rig: Rig) -> None:
    await rig.add(ALICE)
    first, second = rig.authenticator(), rig.authenticator()
    for _ in range(3):
        await first.login(ALICE, "typo", "10.0.0.1", "imap")
    assert (await second.login(ALICE, PASSWORD, "10.0.0.1", "smtp")).outcome is LoginOutcome.THROTTLED


async def test_unknown_account_costs_a_hash_and_is_invalid(rig: Rig) -> None:
    auth = rig.authenticator()
    verified = hashing.counts["verify"]
    result = await auth.login("nobody@pro.gateway.test", PASSWORD, "10.0.0.1", "imap")
    assert result.outcome is LoginOutcome.INVALID and result.account is None
    assert hashing.counts["verify"] == verified + 1


async def test_legacy_constructor_still_builds_an_authenticator(rig: Rig) -> None:
    await rig.add(ALICE)
    auth = Authenticator(db.read_sessionmaker(rig.engine), LoginThrottle(5, 300))
    assert (await auth.login(ALICE, PASSWORD, "127.0.0.1", "imap")).outcome is LoginOutcome.OK
    assert auth.anvil.connections_per_address == Limits().connections_per_address


async def test_a_reloaded_configuration_applies_new_ceilings(rig: Rig) -> None:
    from pathlib import Path

    from gateway.config import Config, Listen, TLSSettings

    await rig.add(ALICE)
    auth = rig.authenticator()
    config = Config("mail.gateway.test", frozenset({"pro.gateway.test"}), "patient.gateway.test", rig.url,
                    TLSSettings(Path("x"), Path("x")), Listen("127.0.0.1", 1),
                    None, None, None, limits=Limits(failed_logins=1, failed_logins_per_address=2,
                                                    connections_per_address=7),
                    auth=AuthSettings(argon2_memory_kib=8192, argon2_time_cost=1, cache_ttl=0))
    auth.apply(config)
    assert (await auth.login(ALICE, "typo", "10.0.0.1", "imap")).outcome is LoginOutcome.INVALID
    assert (await auth.login(ALICE, PASSWORD, "10.0.0.1", "imap")).outcome is LoginOutcome.THROTTLED
    assert auth.anvil.connections_per_address == 7 and not auth.cache.enabled
