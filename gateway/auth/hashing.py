"""Argon2id hashing on threads beside the event loop, so every core serves logins and the loop never runs the KDF.

An Argon2id verification takes tens of milliseconds of one core. The bindings (cffi) release the GIL while the
C code runs, so hashes on a small thread pool run in parallel with each other and with the event loop; each daemon
worker process has its pool, and together they take one thread per core (:func:`share_cores`). Threads rather
than hashing processes: a forked hashing process grew to ~40 MB of its own (its parent's pages copied as they were
touched), per daemon worker. Each hashing thread keeps its hash's memory (19 MiB by default) from one hash to
the next (:mod:`.kdf`: no page faults per hash), and the pool's threads end, giving that memory back, once no hash
has run for :data:`IDLE_RETIRE` seconds, so a burst of logins leaves no lasting growth. The pool is created on
first use (or by :func:`start`), again after it retired, and shut down by :func:`shutdown` when the daemon stops.

Parameters are settings (``[auth] argon2_*``); the default is OWASP's recommendation for Argon2id (19 MiB,
2 passes, 1 lane). Hashes made with other parameters are reported by :func:`needs_rehash` so the caller can
rewrite them after a successful login.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.auth import kdf
from gateway.malloc import return_large_buffers


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters (RFC 9106 section 3.1); the defaults are OWASP's recommendation."""

    memory_kib: int = 19456
    time_cost: int = 2
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
        kept = kdf.verify(stored, password)  # the thread's kept memory: no fresh pages per hash
        return kept if kept is not None else _hasher(DEFAULT_PARAMS).verify(stored, password)
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
#: Seconds without a hash after which the pool's threads end, and the memory each keeps (:mod:`.kdf`) with them.
IDLE_RETIRE = 1.0
#: Hashes submitted and not finished, the end of the last one, and the loop where a retirement check is due.
_inflight = 0
_last_end = 0.0
_retire_loop: asyncio.AbstractEventLoop | None = None


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
            return_large_buffers()  # each hash's memory cost goes back to the system when it ends
            _POOL = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="argon2")
        return _POOL


async def _run(function: object, *args: object) -> object:
    """Run ``function(*args)`` on a hashing thread."""
    global _inflight, _last_end, _retire_loop
    loop = asyncio.get_running_loop()
    _inflight += 1
    try:
        return await loop.run_in_executor(_pool(), function, *args)  # type: ignore[arg-type]
    finally:
        _inflight -= 1
        _last_end = time.monotonic()
        if _retire_loop is None or _retire_loop.is_closed():
            _retire_loop = loop
            loop.call_later(IDLE_RETIRE, _retire_if_idle, loop)


def _retire_if_idle(loop: asyncio.AbstractEventLoop) -> None:
    """End the pool's threads (and free their kept memory) if no hash ran for :data:`IDLE_RETIRE` seconds;
    otherwise look again when that time is up."""
    global _POOL, _retire_loop
    quiet = time.monotonic() - _last_end
    if _inflight or quiet < IDLE_RETIRE:
        loop.call_later(max(0.01, IDLE_RETIRE - quiet), _retire_if_idle, loop)
        return
    _retire_loop = None
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=False)  # idle threads end now; a later hash starts a new pool


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
