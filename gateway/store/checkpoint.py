"""WAL checkpoints on a thread of their own, not inside a committing connection.

SQLite's automatic checkpoint runs in the connection whose COMMIT pushed the write-ahead log past the
threshold, right after that commit: it copies the log's pages into the main file and fsyncs it, tens of
milliseconds during which that writer (and the SMTP transactions of its batch, still without their 250) waits,
and while the group committer holds its turn at the write lock the other processes' writers wait too. Here
the store's connections raise the threshold to :data:`gateway.store.db.AUTOCHECKPOINT_PAGES` (a backstop only:
a process that runs no checkpointer, such as a command, still keeps its log bounded) and one process of the
daemon runs ``PASSIVE`` checkpoints from its own connection on a thread: they never take the write lock nor
wait for readers or writers, so commits go on meanwhile.

While commits keep coming, a checkpoint runs every :data:`BUSY_INTERVAL` seconds (:func:`next_wait`): each one
copies and syncs only what a tenth of a second wrote. The sync of the main file shares the disk with the commits'
syncs of the log, and one a second had tens of MB to write under a stream of large messages (HL7 messages
with two mails of 200 KB, ~60 MB/s on a disk that writes ~290 MB/s): every commit waited behind it, and the
HL7 listener's AA took 220–300 ms once a second (p99 224–257 ms against p50 16–20). Every 0.1 s, p99 is 91–93 ms
at the same rate, and SMTP's 1 KiB messages lose nothing. An idle store is looked at less and less often, down to
once every :data:`IDLE_INTERVAL` seconds.

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

#: Seconds between two checkpoints while the log grows.
BUSY_INTERVAL = 0.1
#: The longest wait between two checkpoints, reached by doubling while nothing is committed.
IDLE_INTERVAL = 1.0
log = structlog.get_logger("gateway.store")


#: What ``PRAGMA wal_checkpoint`` answers: (busy, frames in the log, frames checkpointed).
Outcome = tuple[int, int, int]


def next_wait(wait: float, outcome: Outcome, previous: Outcome | None) -> float:
    """The wait before the next checkpoint: :data:`BUSY_INTERVAL` when the log changed since the last one (or the
    checkpoint could not finish), else twice ``wait``, up to :data:`IDLE_INTERVAL`."""
    if outcome[0] or outcome != previous:
        return BUSY_INTERVAL
    return min(IDLE_INTERVAL, wait * 2)


class Checkpointer(Background):
    """One process of the daemon checkpoints the SQLite file ``path``, more often while commits come
    (:func:`next_wait`)."""

    name = "wal-checkpoint"
    once_per_daemon = True

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._connection: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(connection, None)
            self._connection = connection
        return self._connection

    def checkpoint(self) -> Outcome:
        """One PASSIVE checkpoint (blocking: call it on a thread): SQLite's ``(busy, log frames, checkpointed)``."""
        row = self._open().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def main(self) -> None:
        running: asyncio.Future[Outcome] | None = None
        wait, previous = IDLE_INTERVAL, None
        try:
            while True:
                await asyncio.sleep(wait)  # a period, not a wait for something to happen
                running = asyncio.ensure_future(asyncio.to_thread(self.checkpoint))
                try:
                    outcome = await asyncio.shield(running)
                except sqlite3.Error as exc:  # the next period tries again; the backstop threshold still holds
                    log.warning("wal_checkpoint", outcome="failed", reason=type(exc).__name__)
                    continue
                busy, frames, done = outcome
                if frames and outcome != previous:
                    log.debug("wal_checkpoint", frames=frames, checkpointed=done, busy=bool(busy))
                wait, previous = next_wait(wait, outcome, previous), outcome
        finally:
            if running is not None and not running.done():  # stopped mid-checkpoint: close once it is over
                running.add_done_callback(lambda _: self._close())
            else:
                self._close()
