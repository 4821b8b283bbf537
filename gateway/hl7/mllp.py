"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol): ``<VT> message <FS><CR>``, bounded before anything parses.

The reader is ours rather than the library's ``readblock`` because the library waits for the end block with no
deadline and keeps what it buffered: here a frame is cut at ``max_bytes``, every read waits at most
``read_timeout`` seconds, and a whole frame at most ``frame_timeout``; between frames a connection may stay
quiet ``idle_timeout`` seconds (DPIs keep their MLLP connection open). Bytes outside a frame are dropped.
The framing bytes themselves are the library's constants (python-hl7 ``hl7.mllp``).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import time

from hl7.mllp.streams import CARRIAGE_RETURN, END_BLOCK, START_BLOCK

END = END_BLOCK + CARRIAGE_RETURN
#: Most bytes taken per read: what the stream holds (a document message of a few hundred KiB comes in a few reads).
CHUNK = 1 << 20


class FrameError(Exception):
    """The peer broke the framing (too large, too slow, ended inside a frame); the connection is closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameReader:
    """Reads one MLLP frame at a time from ``reader`` within the caps."""

    def __init__(self, reader: asyncio.StreamReader, *, max_bytes: int, read_timeout: float,
                 frame_timeout: float, idle_timeout: float | None = None) -> None:
        self._reader = reader
        self._max = max_bytes
        self._read_timeout = read_timeout
        self._idle_timeout = idle_timeout if idle_timeout is not None else read_timeout
        self._frame_timeout = frame_timeout
        self._buffer = bytearray()

    async def _more(self, deadline: float | None) -> bytes:
        timeout = self._idle_timeout if deadline is None else self._read_timeout
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.monotonic()))
        try:
            async with asyncio.timeout(timeout):  # no task per read, unlike wait_for on Python 3.11
                return await self._reader.read(CHUNK)
        except TimeoutError:
            if deadline is None:
                raise FrameError("idle") from None
            raise FrameError("timeout" if time.monotonic() < deadline else "frame_timeout") from None

    async def read(self) -> bytes | None:
        """The next frame's content (without the framing), or None when the peer closed between frames."""
        while True:  # find the start block, dropping anything before it
            start = self._buffer.find(START_BLOCK)
            if start >= 0:
                del self._buffer[:start + 1]
                break
            self._buffer.clear()
            data = await self._more(None)
            if not data:
                return None
            self._buffer += data
        deadline = time.monotonic() + self._frame_timeout
        searched = 0
        while True:
            end = self._buffer.find(END, max(0, searched - 1))
            if end >= 0:
                if end > self._max:
                    raise FrameError("too_large")
                with memoryview(self._buffer) as view:  # one copy of the frame, not a slice and a copy
                    frame = bytes(view[:end])
                del self._buffer[:end + len(END)]
                return frame
            searched = len(self._buffer)
            if searched > self._max:
                raise FrameError("too_large")
            data = await self._more(deadline)
            if not data:
                raise FrameError("closed_in_frame")
            self._buffer += data


def frame(message: bytes) -> bytes:
    """``message`` inside an MLLP frame."""
    return START_BLOCK + message + END
