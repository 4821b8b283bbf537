"""Long-running workers of a gateway process (committer, filing worker, upstream connectors...).

One place for starting a worker's task and cancelling it cleanly at shutdown, so each worker only says what
it does in :meth:`Background.main`.
"""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    """A worker whose :meth:`main` coroutine runs as one task from :meth:`start` to :meth:`stop`."""

    name = "worker"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def main(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.main(), name=self.name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
