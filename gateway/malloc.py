"""The serving processes' heap (glibc): freed memory goes back to the system, without a page fault per use.

Two costs pull against each other. Memory freed after a burst (the bodies and literals of many concurrent
FETCHes, clients that stop reading) must go back to the system, or the process stays tens of MiB larger for good.
But a block that glibc maps on its own (``mmap``) is returned to the system when freed, and the next one is
mapped afresh: every 4 KiB page of it costs a page fault when first written. With blocks of 64 KiB and more
mapped that way, an HL7 message of 176 KiB (the frame, the CDA, its XDM zip, two mails, their anatomy) took
~950 page faults, a third of the message's CPU in the kernel.

So blocks up to :data:`MAPPED_BLOCK` come from the heap, where freed memory is reused at once, and the heap is
handed back to the system by :func:`keep_trimmed`: every few seconds ``malloc_trim(0)`` releases the free pages
of every arena, those inside the heap included (glibc >= 2.8), which the automatic trim at the heap's top does
not reach. Only blocks of several MiB (a 20 MiB body, a big literal) are mapped alone. Other C libraries are
left alone.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from typing import Any

#: glibc ``mallopt`` parameters.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks of this size and more are mapped alone and returned to the system as soon as they are freed.
MAPPED_BLOCK = 4 * 1024 * 1024
#: Free memory at the heap's top that ``free`` may keep for the next allocations (returned by the periodic trim).
KEPT_TOP = 8 * 1024 * 1024
#: Seconds between two trims of a serving process's heap.
TRIM_INTERVAL = 5.0

_libc: Any = None
_tuned = False


def _glibc() -> Any:
    """glibc's ``mallopt`` and ``malloc_trim``, or None with another C library."""
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            _libc = libc
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def tune_heap() -> None:
    """Fix glibc's thresholds for a serving process (once): fixed values also turn off glibc's own adjustment,
    which would otherwise move the mapping threshold up to 32 MiB after the first large block is freed."""
    global _tuned
    libc = _glibc()
    if _tuned or libc is None:
        return
    _tuned = True
    libc.mallopt(_M_MMAP_THRESHOLD, MAPPED_BLOCK)
    libc.mallopt(_M_TRIM_THRESHOLD, KEPT_TOP)


def trim() -> bool:
    """Return the free pages of every arena to the system; True when some were returned."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


async def keep_trimmed(interval: float = TRIM_INTERVAL) -> None:
    """Trim the heap every ``interval`` seconds, on a thread (``malloc_trim`` walks the arenas with their locks,
    not the interpreter's), until cancelled."""
    if _glibc() is None:
        return
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(trim)
