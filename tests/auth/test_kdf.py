"""Argon2id verification on the hashing thread's kept memory (gateway/auth/kdf.py): the same answers as
argon2-cffi for every parameter set, no fresh pages per hash, malformed or oversized hashes refused without
allocating, and the pool's threads (with their memory) retired once logins stop."""

from __future__ import annotations

import asyncio
import resource
import threading
import time

import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import hashing, kdf
from gateway.auth.hashing import Argon2Params


@pytest.mark.parametrize(("memory", "time_cost", "lanes"), [(8, 1, 1), (64, 3, 2), (1024, 1, 4), (19456, 2, 1)])
def test_kept_memory_verification_agrees_with_argon2_cffi(memory: int, time_cost: int, lanes: int) -> None:
    stored = PasswordHasher(time_cost=time_cost, memory_cost=memory, parallelism=lanes).hash("pässwörd")
    assert kdf.verify(stored, "pässwörd") is True
    assert kdf.verify(stored, "passwörd") is False
    assert hashing.verify_sync(stored, "pässwörd") and not hashing.verify_sync(stored, "")


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
])
def test_a_hash_this_module_does_not_read_is_left_to_argon2_cffi(stored: str) -> None:
    assert kdf.verify(stored, "x") is None
    assert hashing.verify_sync(stored, "x") is False


def test_a_thread_hashing_again_reuses_its_memory_instead_of_faulting_in_fresh_pages() -> None:
    stored = hashing.hash_sync("secret")  # the default 19 MiB: ~4,900 pages if taken afresh
    faults: list[int] = []

    def run() -> None:
        kdf.verify(stored, "secret")  # the first hash takes the buffer
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(3):
            assert kdf.verify(stored, "secret")
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
        faults.append(kdf.kept_bytes())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert faults[0] < 1000, faults  # three hashes without their 3 x 4,864 pages
    assert faults[1] == 19456 * 1024


async def test_the_pool_retires_its_threads_once_no_hash_has_run_for_a_while(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "IDLE_RETIRE", 0.05)
    stored = hashing.hash_sync("secret", Argon2Params(memory_kib=64, time_cost=1))
    assert await hashing.verify(stored, "secret")
    assert hashing.started()
    deadline = time.monotonic() + 30
    while hashing.started() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not hashing.started()
    assert await hashing.verify(stored, "secret")  # a later login starts a new pool
    hashing.shutdown()
