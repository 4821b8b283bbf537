"""Argon2id hashing on threads beside the event loop, so every core serves logins and the loop never runs the KDF.

An Argon2id verification takes milliseconds of one core. The bindings (cffi) release the GIL while the C code
runs, so hashes on a small thread pool run in parallel with each other and with the event loop; each daemon
worker process has its pool, and together they take one thread per core (:func:`share_cores`). Threads rather
than hashing processes: a forked hashing process grew to ~40 MB of its own (its parent's pages copied as they were
touched), per daemon worker. Verification goes through libsodium (:mod:`.kdf`), whose vectorised Argon2 core is
about twice as fast as argon2-cffi's; each hash's memory is mapped for it and unmapped after it, so a burst of
logins leaves no lasting growth. The pool is created on first use (or by :func:`start`) and shut down by
:func:`shutdown` when the daemon stops.

Parameters are settings (``[auth] argon2_*``); the default is one of OWASP's five equivalent Argon2id
configurations, 7 MiB and 5 passes with 1 lane: the same defence as 19 MiB and 2 passes, with a memory cost that
stays in the processor's cache while two hashes run, so a hash costs ~11 ms of a core instead of ~20. Hashes made
with other parameters are reported by :func:`needs_rehash` so the caller can rewrite them after a successful login.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.auth import kdf


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters (RFC 9106 section 3.1); the defaults are one of OWASP's recommended configurations
    (m=7168 KiB, t=5, p=1, equivalent to its m=19456, t=2, p=1)."""

    memory_kib: int = 7168
    time_cost: int = 5
    parallelism: int = 1

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(time_cost=self.time_cost, memory_cost=self.memory_kib, parallelism=self.parallelism)


DEFAULT_PARAMS = Argon2Params()
_HASHERS: dict[Argon2Params, PasswordHasher] = {}


def _hasher(params: Argon2Params) -> PasswordHasher:
    hasher = _HASHERS.get(params)
    if hasher is None:
        hasher = _HASHERS[params] = params.hasher()
    return hasher


# --- what runs on a hashing thread -------------------------------------------------------------------------------
def hash_sync(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    """Hash ``password`` in the calling process (administration commands, tests)."""
    return _hasher(params).hash(password)


def verify_sync(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; the parameters are read from the hash itself."""
    try:
        answer = kdf.verify(stored, password)  # libsodium for the one-lane hashes made here
        return answer if answer is not None else _hasher(DEFAULT_PARAMS).verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str, params: Argon2Params) -> bool:
    """Whether ``stored`` was made with other parameters (or another variant) than ``params``."""
    try:
        return _hasher(params).check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


# --- the per-process pool --------------------------------------------------------------------------------------
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
#: Work sent to the pool by this process ("verify", "hash"): what the credential cache saves shows here.
counts: Counter[str] = Counter()
#: Daemon processes sharing this machine's cores for hashing (see :func:`share_cores`).
_sharers = 1


def share_cores(processes: int) -> None:
    """Say how many daemon processes hash on this machine, so that together they run one hash per core instead
    of one per core each (more threads would only interleave hashes and make each login slower)."""
    global _sharers
    _sharers = max(1, processes)


def workers() -> int:
    """This process's share of the cores it may run on, at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // _sharers)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="argon2")
        return _POOL


async def _run(function: object, *args: object) -> object:
    """Run ``function(*args)`` on a hashing thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), function, *args)  # type: ignore[arg-type]


async def start() -> None:
    """Create the pool now (at daemon start) rather than at the first login, and load the bindings."""
    await _run(_hasher, DEFAULT_PARAMS)


async def verify(stored: str, password: str) -> bool:
    """Check ``password`` against ``stored`` on a hashing thread."""
    counts["verify"] += 1
    return bool(await _run(verify_sync, stored, password))


async def hash_password(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    """Hash ``password`` with ``params`` on a hashing thread."""
    counts["hash"] += 1
    return str(await _run(hash_sync, password, params))


def shutdown() -> None:
    """Stop the workers (daemon stop); a later call starts a new pool."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def started() -> bool:
    return _POOL is not None
