"""Argon2id hashing in worker processes, so every core serves logins and the event loop never runs the KDF.

An Argon2id verification takes tens of milliseconds of one core. Threads would keep it on one core (the
bindings hold the GIL for part of the work, and the process's heap grows by the hash's memory cost per
concurrent hash); a :class:`~concurrent.futures.ProcessPoolExecutor` with one worker per core spreads logins over
the machine. The pool is created once per process, on first use (or by :func:`start`), and shut down by
:func:`shutdown` when the daemon stops. A broken pool (a worker killed) is replaced at the next call.

Parameters are settings (``[auth] argon2_*``); the default is OWASP's recommendation for Argon2id (19 MiB,
2 passes, 1 lane). Hashes made with other parameters are reported by :func:`needs_rehash` so the caller can
rewrite them after a successful login.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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
#: How often a hashing process checks that the daemon process that started it is alive (seconds).
ORPHAN_CHECK = 1.0
_HASHERS: dict[Argon2Params, PasswordHasher] = {}


def _hasher(params: Argon2Params) -> PasswordHasher:
    hasher = _HASHERS.get(params)
    if hasher is None:
        hasher = _HASHERS[params] = params.hasher()
    return hasher


# --- what runs in a worker (plain functions: they are pickled by name) -----------------------------------------
def hash_sync(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    """Hash ``password`` in the calling process (administration commands, tests)."""
    return _hasher(params).hash(password)


def verify_sync(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored``; the parameters are read from the hash itself."""
    try:
        return _hasher(DEFAULT_PARAMS).verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _ready() -> int:
    return os.getpid()


def _init_worker(daemon: int) -> None:
    """In each hashing process: the hash's memory goes back to the system after each login, and the process
    ends with the daemon process that started it, even one killed with SIGKILL (it would otherwise wait on
    the pool's queue for ever, holding its memory)."""
    return_large_buffers()
    threading.Thread(target=_end_with, args=(daemon,), name="end-with-daemon", daemon=True).start()


def _end_with(daemon: int) -> None:
    while os.getppid() == daemon:
        time.sleep(ORPHAN_CHECK)
    os._exit(0)


def needs_rehash(stored: str, params: Argon2Params) -> bool:
    """Whether ``stored`` was made with other parameters (or another variant) than ``params``."""
    try:
        return _hasher(params).check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


# --- the per-process pool --------------------------------------------------------------------------------------
_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
#: Work sent to the pool by this process ("verify", "hash"): what the credential cache saves shows here.
counts: Counter[str] = Counter()


def _context() -> multiprocessing.context.BaseContext:
    # fork is cheap (the workers share the parent's pages) and the pool is started before the listeners; where
    # it does not exist, spawn.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


#: Daemon processes sharing this machine's cores for hashing (see :func:`share_cores`).
_sharers = 1


def share_cores(processes: int) -> None:
    """Say how many daemon processes hash on this machine, so that together they start one hashing process
    per core instead of one per core each (twice the memory and no more speed with two daemon workers)."""
    global _sharers
    _sharers = max(1, processes)


def workers() -> int:
    """This process's share of the cores it may run on, at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // _sharers)


_POOL_PID = 0


def _pool() -> ProcessPoolExecutor:
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():  # a forked daemon worker does not own its parent's pool
            _POOL = ProcessPoolExecutor(max_workers=workers(), mp_context=_context(), initializer=_init_worker,
                                        initargs=(os.getpid(),))
            _POOL_PID = os.getpid()
        return _POOL


def _discard(pool: ProcessPoolExecutor) -> None:
    global _POOL
    with _POOL_LOCK:
        if _POOL is pool:
            _POOL = None
    pool.shutdown(wait=False, cancel_futures=True)


async def _run(function: object, *args: object) -> object:
    """Run ``function(*args)`` in the pool; one retry on a fresh pool when a worker died."""
    loop = asyncio.get_running_loop()
    for attempt in (1, 2):
        pool = _pool()
        try:
            return await loop.run_in_executor(pool, function, *args)  # type: ignore[arg-type]
        except BrokenProcessPool:
            _discard(pool)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def start() -> None:
    """Start the workers now (at daemon start, before listeners and store threads), not at the first login."""
    pool = _pool()
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(workers())))


async def verify(stored: str, password: str) -> bool:
    """Check ``password`` against ``stored`` in a worker process."""
    counts["verify"] += 1
    return bool(await _run(verify_sync, stored, password))


async def hash_password(password: str, params: Argon2Params = DEFAULT_PARAMS) -> str:
    """Hash ``password`` with ``params`` in a worker process."""
    counts["hash"] += 1
    return str(await _run(hash_sync, password, params))


def shutdown() -> None:
    """Stop the workers (daemon stop); a later call starts a new pool."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None and _POOL_PID == os.getpid():
        pool.shutdown(wait=True, cancel_futures=True)


def started() -> bool:
    return _POOL is not None
