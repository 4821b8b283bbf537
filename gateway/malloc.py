"""Large blocks go back to the system when freed (glibc), for processes whose peaks must not stay.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc ``mallopt`` parameters and the fixed value given to both.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
LARGE_BLOCK = 64 * 1024
_malloc_tuned = False


def return_large_buffers() -> None:
    """Make glibc map every block of 64 KiB or more on its own, so that it goes back to the system when freed.

    glibc otherwise raises its mmap threshold after the first large block is freed: message bodies, literals
    and TLS records of many concurrent FETCHes then come from the heap, and a burst of clients that stop
    reading leaves the process tens of MiB larger for good. A fixed threshold also turns off that adjustment.
    Used by the IMAP sessions (bodies, literals) and by the password-hashing threads (argon2-cffi's Argon2id
    memory for new hashes).
    Other C libraries are left alone.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)
    mallopt(_M_TRIM_THRESHOLD, 2 * LARGE_BLOCK)
