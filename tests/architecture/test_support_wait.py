"""The poll-until helpers of tests/support/wait.py: they return the first truthy value, and fail at the deadline
naming what was awaited.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from support.wait import until, wait_until


def test_wait_until_returns_the_first_truthy_value_set_by_another_thread() -> None:
    box: list[int] = []
    threading.Timer(0.05, box.append, (7,)).start()
    assert wait_until(lambda: list(box), timeout=10, what="the value") == [7]


def test_wait_until_fails_at_the_deadline_naming_what_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the answer \(last value 0\)"):
        wait_until(lambda: 0, timeout=0.05, what="the answer")


async def test_until_awaits_an_async_predicate_set_by_another_task() -> None:
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, done.set)

    async def check() -> bool:
        return done.is_set()

    assert await until(check, timeout=10, what="the event") is True


async def test_until_fails_at_the_deadline_with_a_plain_predicate() -> None:
    with pytest.raises(AssertionError, match="waiting for nothing"):
        await until(lambda: None, timeout=0.05, what="nothing")
