"""The sizes DATA and BDAT are read in, and the checks of a message's lines made over the whole block: their
length (RFC 5321 4.5.3.1.6) and their endings (bare CR or LF, RFC 5321 2.3.8), each in a few passes in C.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

#: What one read of DATA or BDAT asks the stream for.
BLOCK = 256 * 1024
END_OF_DATA = b"\r\n.\r\n"
#: What begins both the end of data and a dot-stuffed line (RFC 5321 4.5.2).
LINE_DOT = b"\r\n."
#: The longest line accepted, in octets before its LF: 1000 with its CRLF plus a stuffed dot (RFC 5321 4.5.3.1.6).
MAX_LINE = 1000


class EndOfData:
    """Finds the end of DATA (``CRLF.CRLF``) in a buffer that grows block by block, and notes whether a line before
    it was dot-stuffed (RFC 5321 4.5.2).

    It looks for ``CRLF.``, which begins both: a message without a stuffed line (most of them) then needs no
    unstuffing pass at all, and the scan goes over each byte about once, whatever the blocks' boundaries. After the
    first stuffed line only the end is looked for, so a message of dot lines costs no step per line.
    """

    __slots__ = ("scan", "stuffed")

    def __init__(self) -> None:
        #: Where the next search starts: nothing before it can begin an end not yet seen.
        self.scan = 0
        self.stuffed = False

    def find(self, buffer: bytes | bytearray) -> int:
        """The offset of the end of data in ``buffer``, or -1 while more must be read."""
        while True:
            if self.stuffed:
                end = buffer.find(END_OF_DATA, self.scan)
                if end < 0:
                    self.scan = max(0, len(buffer) - len(END_OF_DATA) + 1)
                return end
            dot = buffer.find(LINE_DOT, self.scan)
            if dot < 0:
                self.scan = max(0, len(buffer) - len(LINE_DOT) + 1)
                return -1
            if len(buffer) < dot + len(END_OF_DATA):  # the end or a stuffed line: the next block tells
                self.scan = dot
                return -1
            if buffer.startswith(END_OF_DATA, dot):
                return dot
            self.stuffed, self.scan = True, dot + 1

    def content(self, buffer: bytearray) -> bytes:
        """The message, unstuffed, from ``buffer`` cut after the CRLF that begins the end, without the CRLF it
        starts with (the DATA line's)."""
        if self.stuffed:
            return bytes(buffer).replace(LINE_DOT, b"\r\n")[2:]  # one pass
        with memoryview(buffer) as view:
            return bytes(view[2:])


def has_bare_line_ending(data: bytes | bytearray) -> bool:
    """Any CR not followed by LF, or LF not preceded by CR (the SMTP smuggling vectors, RFC 5321 2.3.8).

    Every CR starts a CRLF and every LF ends one exactly when the three counts are equal: three passes in C, the
    pair (the slowest to count, ~1 ms per MiB) counted once.
    """
    pairs = data.count(b"\r\n")
    return data.count(b"\n") != pairs or data.count(b"\r") != pairs


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
