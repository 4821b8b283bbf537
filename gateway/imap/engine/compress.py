"""COMPRESS=DEFLATE (RFC 4978): raw deflate both ways, bounded inflation.

The inflater never produces more than :data:`INFLATE_CHUNK` bytes per step: a small compressed packet that
expands to gigabytes is consumed chunk by chunk as the command reader asks, never held at once.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import zlib

#: Most plaintext bytes produced from compressed input in one step.
INFLATE_CHUNK = 64 * 1024


class Deflate:
    """One connection's compression state (RFC 4978 section 4: raw deflate, a sync flush per write)."""

    def __init__(self) -> None:
        self._in = zlib.decompressobj(-15)
        self._out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._tail = b""

    def compress(self, data: bytes) -> bytes:
        """``data`` compressed and flushed, so the client can act on it at once."""
        return self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)

    @property
    def pending(self) -> bool:
        """Whether compressed input is still waiting to be inflated."""
        return bool(self._tail)

    def decompress(self, data: bytes) -> bytes:
        """At most :data:`INFLATE_CHUNK` plaintext bytes from what was left plus ``data``; raises ``zlib.error``."""
        source = self._tail + data if self._tail else data
        out = self._in.decompress(source, INFLATE_CHUNK)
        self._tail = self._in.unconsumed_tail
        return out
