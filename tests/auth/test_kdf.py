"""Argon2id verification through libsodium (gateway/auth/kdf.py): the same answers as argon2-cffi for every
parameter set it takes, other hashes left to argon2-cffi, malformed or oversized hashes refused without
allocating, and no memory kept once a burst of logins is over."""

from __future__ import annotations

import asyncio

import psutil
import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import hashing, kdf
from gateway.auth.hashing import DEFAULT_PARAMS, Argon2Params


@pytest.mark.parametrize(("memory", "time_cost"), [(8, 1), (1024, 3), (7168, 5), (19456, 2)])
def test_libsodium_agrees_with_argon2_cffi_on_one_lane_hashes(memory: int, time_cost: int) -> None:
    stored = PasswordHasher(time_cost=time_cost, memory_cost=memory, parallelism=1).hash("pässwörd")
    assert kdf.verify(stored, "pässwörd") is True
    assert kdf.verify(stored, "passwörd") is False
    assert hashing.verify_sync(stored, "pässwörd") and not hashing.verify_sync(stored, "")


@pytest.mark.parametrize(("memory", "lanes"), [(64, 2), (1024, 4)])
def test_several_lanes_are_verified_by_argon2_cffi(memory: int, lanes: int) -> None:
    stored = PasswordHasher(time_cost=1, memory_cost=memory, parallelism=lanes).hash("secret")
    assert kdf.verify(stored, "secret") is None
    assert hashing.verify_sync(stored, "secret") and not hashing.verify_sync(stored, "Secret")


def test_the_default_parameters_are_the_ones_libsodium_verifies() -> None:
    stored = hashing.hash_sync("secret")
    assert f"$m={DEFAULT_PARAMS.memory_kib},t={DEFAULT_PARAMS.time_cost},p=1$" in stored
    assert kdf.verify(stored, "secret") is True


@settings(max_examples=25, deadline=None)
@given(password=st.text(max_size=40), guess=st.text(max_size=40))
def test_any_password_is_recognised_and_any_other_refused(password: str, guess: str) -> None:
    stored = hashing.hash_sync(password, Argon2Params(memory_kib=8, time_cost=1))
    assert kdf.verify(stored, password) is True
    assert kdf.verify(stored, guess) is (guess == password)


@pytest.mark.parametrize("stored", [
    "", "garbage", "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",  # another variant: argon2-cffi's to read
    "$argon2id$v=16$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",  # 95 GiB: never allocated
    "$argon2id$v=19$m=8,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    "$argon2id$v=19$m=8,t=1,p=1$!!$aGFzaGhhc2g", "$argon2id$v=19$m=8,t=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    "$argon2id$v=19$m=8,t=1,p=1$" + "c2FsdHNhbHQ" * 7 + "$" + "aGFzaGhhc2g" * 7,  # longer than libsodium reads
])
def test_a_hash_this_module_does_not_read_is_left_to_argon2_cffi(stored: str) -> None:
    assert kdf.verify(stored, "x") is None
    assert hashing.verify_sync(stored, "x") is False


async def test_a_burst_of_hashes_leaves_no_memory_behind() -> None:
    stored = hashing.hash_sync("secret")  # the default memory cost, 7 MiB a hash
    await hashing.verify(stored, "secret")  # the pool and the bindings are loaded
    before = psutil.Process().memory_info().rss
    answers = await asyncio.gather(*(hashing.verify(stored, guess) for guess in ["secret", "wrong"] * 8))
    grown = psutil.Process().memory_info().rss - before
    assert answers == [True, False] * 8
    assert grown < 6 * 1024 * 1024, grown  # less than one hash's memory cost kept
    hashing.shutdown()
