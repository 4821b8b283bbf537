"""Turns at SQLite's single write lock, taken on a lock file beside the store, so a waiting writer starts the
moment the previous one commits.

SQLite's own wait (``busy_timeout``) polls: a writer that finds the lock taken sleeps 1, 2, 5 ... up to 100 ms
between tries, and while writers that hand the lock to each other promptly keep it busy, a polling one can wait
for seconds (a login's throttle row behind a stream of IMAP flag changes). Writers that queue here on
``flock`` are woken by the kernel as soon as the lock is free, in every process sharing the file. Writers that
do not (the store's own group committer) still get the lock through ``busy_timeout``, as before.

A :class:`Turn` owns one open file description: two turns exclude each other even in one process, so each
writer (the IMAP view's writer thread, the login throttle) holds its own.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import weakref
from collections.abc import AsyncIterator
from typing import Any

from gateway.store.sqlite_reads import sqlite_file

#: The lock file's name beside the store file.
SUFFIX = "-writer.lock"


class Turn:
    """One writer's place in the queue for the store file ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path + SUFFIX
        self._fd = -1
        self._pid = 0
        self._closer: weakref.finalize[Any, Any] | None = None
        self._local: asyncio.Lock | None = None

    def _descriptor(self) -> int:
        if self._fd < 0 or self._pid != os.getpid():  # a forked process opens its own
            if self._closer is not None:
                self._closer.detach()  # the parent's descriptor is the parent's to close
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
            self._closer = weakref.finalize(self, _close, self._fd)  # the descriptor goes with the turn
        return self._fd

    def acquire(self) -> None:
        """Block until this writer's turn (from a thread: the caller's thread waits)."""
        fcntl.flock(self._descriptor(), fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._descriptor(), fcntl.LOCK_UN)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """The turn for the block, waited for on a thread; a waiter cancelled meanwhile gives it back at once."""
        if self._local is None:
            self._local = asyncio.Lock()
        async with self._local:  # this writer's coroutines in turn; the flock orders it with the others
            waiting = asyncio.ensure_future(asyncio.to_thread(self.acquire))
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                waiting.add_done_callback(lambda done: self.release() if not done.cancelled()
                                          and done.exception() is None else None)
                raise
            try:
                yield
            finally:
                self.release()


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def turn_for(sessions: Any) -> Turn | None:
    """A new turn for the SQLite file ``sessions`` write, or None when there is none to queue for."""
    path = sqlite_file(sessions)
    return Turn(path) if path is not None else None
