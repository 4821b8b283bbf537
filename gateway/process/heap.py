"""The objects a daemon process makes once, kept out of the cycle collector's way.

A serving process holds ~100,000 objects made while it started (modules, the ORM's mappers and compiled
statements, the configuration) that live as long as it does. CPython's full collection walks every tracked
object: ~60–130 ms of the event loop each time, during which no session of that process is served, several times
a minute under load, which is what the slowest replies waited for. Once the process serves, those objects are
frozen (``gc.freeze``): a full collection then walks only what serving made.

The C heap is tuned and trimmed at the same moment (:mod:`gateway.malloc`): blocks of a message's size come from
the heap without a page fault per use, and what a burst leaves free goes back to the system every few seconds.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import gc

from gateway.malloc import keep_trimmed, tune_heap


def freeze_startup_objects() -> None:
    """Collect what starting left behind, then move every surviving object out of the collector's reach."""
    gc.collect()
    gc.freeze()


def start_serving_heap() -> asyncio.Task[None]:
    """Freeze the start-up objects, tune the C heap and start its periodic trim (the task: cancel it to stop)."""
    freeze_startup_objects()
    tune_heap()
    return asyncio.get_running_loop().create_task(keep_trimmed(), name="heap-trim")
