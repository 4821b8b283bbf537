"""The objects a daemon process makes once, kept out of the cycle collector's way.

A serving process holds ~100,000 objects made while it started (modules, the ORM's mappers and compiled
statements, the configuration) that live as long as it does. CPython's full collection walks every tracked
object: ~60–130 ms of the event loop each time, during which no session of that process is served, several times
a minute under load, which is what the slowest replies waited for. Once the process serves, those objects are
frozen (``gc.freeze``): a full collection then walks only what serving made.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what starting left behind, then move every surviving object out of the collector's reach."""
    gc.collect()
    gc.freeze()
