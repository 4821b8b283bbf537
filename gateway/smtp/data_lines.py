"""The sizes DATA and BDAT are read in, and the line-length check over a whole block (RFC 5321 4.5.3.1.6).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

#: What one read of DATA or BDAT asks the stream for.
BLOCK = 256 * 1024
END_OF_DATA = b"\r\n.\r\n"
#: The longest line accepted, in octets before its LF: 1000 with its CRLF plus a stuffed dot (RFC 5321 4.5.3.1.6).
MAX_LINE = 1000


def has_long_line(data: bytes | bytearray, limit: int = MAX_LINE) -> bool:
    """Whether some line (the bytes between two LFs) is longer than ``limit``, in O(len / limit) steps.

    Any run of more than ``limit`` bytes without LF contains a whole window of a grid of ``(limit + 1) // 2``
    bytes, so only windows with no LF at all are measured exactly (``find``/``rfind``, in C): no work per line.
    """
    step = (limit + 1) // 2
    size = len(data)
    position = 0
    while position + step <= size:
        if data.find(b"\n", position, position + step) >= 0:
            position += step
            continue
        start = data.rfind(b"\n", 0, position) + 1
        end = data.find(b"\n", position + step)
        end = size if end < 0 else end
        if end - start > limit:
            return True
        position = end + 1
    return False
