"""WAL checkpoints on a thread of their own, not inside a committing connection.

SQLite's automatic checkpoint runs in the connection whose COMMIT pushed the write-ahead log past the
threshold, right after that commit: it copies the log's pages into the main file and fsyncs it, tens of
milliseconds during which that writer (and the SMTP transactions of its batch, still without their 250) waits,
and while the group committer holds its turn at the write lock the other processes' writers wait too. Here
the store's connections raise the threshold to :data:`gateway.store.db.AUTOCHECKPOINT_PAGES` (a backstop only:
a process that runs no checkpointer, such as a command, still keeps its log bounded) and one process of the
daemon runs a ``PASSIVE`` checkpoint every :data:`INTERVAL` seconds from its own connection on a thread: it
never takes the write lock nor waits for readers or writers, so commits go on meanwhile.

The checkpointing connection has the store's pragmas (``synchronous=FULL``): the main file is synced before the
log can be reused, so a commit on disk stays on disk (durability as before).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import sqlite3

import structlog

from gateway.store.db import sqlite_pragmas
from gateway.tasks import Background

#: Seconds between two background checkpoints.
INTERVAL = 1.0
log = structlog.get_logger("gateway.store")


class Checkpointer(Background):
    """One process of the daemon checkpoints the SQLite file ``path`` every :data:`INTERVAL` seconds."""

    name = "wal-checkpoint"
    once_per_daemon = True

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        super().__init__()
        self.path = path
        self._interval = interval
        self._connection: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(connection, None)
            self._connection = connection
        return self._connection

    def checkpoint(self) -> tuple[int, int, int]:
        """One PASSIVE checkpoint (blocking: call it on a thread): SQLite's ``(busy, log frames, checkpointed)``."""
        row = self._open().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def main(self) -> None:
        running: asyncio.Future[tuple[int, int, int]] | None = None
        try:
            while True:
                await asyncio.sleep(self._interval)  # a period, not a wait for something to happen
                running = asyncio.ensure_future(asyncio.to_thread(self.checkpoint))
                try:
                    busy, frames, done = await asyncio.shield(running)
                except sqlite3.Error as exc:  # the next period tries again; the backstop threshold still holds
                    log.warning("wal_checkpoint", outcome="failed", reason=type(exc).__name__)
                    continue
                if frames:
                    log.debug("wal_checkpoint", frames=frames, checkpointed=done, busy=bool(busy))
        finally:
            if running is not None and not running.done():  # stopped mid-checkpoint: close once it is over
                running.add_done_callback(lambda _: self._close())
            else:
                self._close()
