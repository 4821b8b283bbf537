"""Polling with a deadline: the one way tests wait for something another process or task does.

No test sleeps a fixed time to let something happen; it polls a condition and fails, naming what it waited
for and the last value seen, when the deadline passes. ``until`` in async tests, ``wait_until`` elsewhere.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Between two looks at the condition. Most conditions query the store another process is writing: looking
#: more often only loads it (on SQLite, a busy reader can make the writer under test retry).
INTERVAL = 0.1


async def until(predicate: Callable[[], Awaitable[T] | T], timeout: float = 30.0, what: str = "the condition",
                interval: float = INTERVAL) -> T:
    """Await ``predicate()`` (a plain or an async callable) until it gives something truthy, and return it;
    fail with ``what`` and the last value after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value {_last(value)})")
        await asyncio.sleep(interval)


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, what: str = "the condition",
               interval: float = INTERVAL) -> T:
    """Call ``predicate()`` until it gives something truthy, and return it; fail with ``what`` and the last
    value after ``timeout`` seconds (for tests that drive other processes from plain threads)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value {_last(value)})")
        time.sleep(interval)


def _last(value: Any) -> str:
    """The last value seen, short enough for an assertion message."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
