"""Long-running workers of a gateway process (committer, filing worker, upstream connectors...).

One place for starting a worker's task and cancelling it cleanly at shutdown, so each worker only says what
it does in :meth:`Background.main`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

_once_workers_here = True


def run_once_workers_here(enabled: bool) -> None:
    """Say whether this process runs the daemon's once-only workers (gateway/process: worker 0 does)."""
    global _once_workers_here
    _once_workers_here = enabled


def once_workers_here() -> bool:
    """Whether once-only work (queues, pruning, refreshes) runs in this process; True for a single process."""
    return _once_workers_here


class Background:
    """A worker whose :meth:`main` coroutine runs as one task from :meth:`start` to :meth:`stop`."""

    name = "worker"
    #: Work the daemon needs done by one process only, however many serve the listeners: :meth:`start`
    #: does nothing in the other worker processes.
    once_per_daemon = False

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def main(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.once_per_daemon and not once_workers_here():
            return
        self._task = asyncio.get_running_loop().create_task(self.main(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (when there is one) and return once it has ended: a stopped worker leaves nothing running."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run_until_interrupted(main: Coroutine[Any, Any, None]) -> int:
    """Run a simulator's serving coroutine until Ctrl-C (which is how one stops it); the exit status, 0."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)
    return 0
