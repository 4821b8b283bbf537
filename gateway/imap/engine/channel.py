"""One connection's byte stream: TLS upgrade, COMPRESS=DEFLATE, read timeouts and flow-controlled writes.

Every write is followed by ``drain()``: a client that reads slowly holds the FETCH producer back at the
transport's write-buffer limit instead of making the server buffer a whole answer (RFC 9051 5.5).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import ssl
import zlib
from typing import Any

from gateway.imap.engine.compress import Deflate

#: Bytes asked of the socket per read.
READ_CHUNK = 64 * 1024
#: Transport write-buffer high-water mark: above it ``drain()`` waits for the client.
WRITE_HIGH = 256 * 1024


#: glibc ``mallopt`` parameters and the fixed value given to both.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
LARGE_BLOCK = 64 * 1024
_malloc_tuned = False


def return_large_buffers() -> None:
    """Make glibc map every block of 64 KiB or more on its own, so that it goes back to the system when freed.

    glibc otherwise raises its mmap threshold after the first large block is freed: message bodies, literals
    and TLS records of many concurrent FETCHes then come from the heap, and a burst of clients that stop
    reading leaves the process tens of MiB larger for good. A fixed threshold also turns off that adjustment.
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


class Closed(Exception):
    """The client went away (EOF, reset, TLS failure, undecodable compressed stream)."""


class TimedOut(Exception):
    """Nothing arrived within the autologout time."""


class Channel:
    """Reads and writes of one IMAP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return_large_buffers()
        self.reader = reader
        self.writer = writer
        self.deflate: Deflate | None = None
        transport = writer.transport
        if hasattr(transport, "set_write_buffer_limits"):
            transport.set_write_buffer_limits(high=WRITE_HIGH)
        peer = writer.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"

    # --- state ----------------------------------------------------------------------------------------------
    @property
    def ssl_object(self) -> Any:
        return self.writer.get_extra_info("ssl_object")

    @property
    def tls(self) -> bool:
        return self.ssl_object is not None

    @property
    def client_certificate(self) -> bool:
        """Whether the client presented a certificate in the TLS handshake."""
        obj = self.ssl_object
        try:
            return obj is not None and obj.getpeercert(binary_form=True) is not None
        except (ValueError, ssl.SSLError):
            return False

    def buffered(self) -> bool:
        """Bytes already received but not yet consumed (STARTTLS injection check, RFC 9051 11.1)."""
        return bool(getattr(self.reader, "_buffer", b"")) or (self.deflate is not None and self.deflate.pending)

    # --- reading --------------------------------------------------------------------------------------------
    async def read(self, timeout: float) -> bytes:  # noqa: ASYNC109 - the autologout timer of the caller's state
        """The next bytes from the client, decompressed; raises :class:`Closed` or :class:`TimedOut`."""
        deflate = self.deflate
        if deflate is not None and deflate.pending:
            try:
                return deflate.decompress(b"")
            except zlib.error:
                raise Closed() from None
        while True:
            try:
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(READ_CHUNK)
            except TimeoutError:
                raise TimedOut() from None
            except (ConnectionError, ssl.SSLError, OSError):
                raise Closed() from None
            if not data:
                raise Closed()
            if deflate is None:
                return data
            try:
                plain = deflate.decompress(data)
            except zlib.error:
                raise Closed() from None
            if plain:
                return plain

    # --- writing --------------------------------------------------------------------------------------------
    async def write(self, data: bytes) -> None:
        """Send ``data`` and wait until the transport's buffer is under its limit."""
        if self.deflate is not None:
            data = self.deflate.compress(data)
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, ssl.SSLError, OSError, RuntimeError):
            raise Closed() from None

    def write_nowait(self, data: bytes) -> None:
        """Queue ``data`` without waiting (a BYE on the way out)."""
        if self.deflate is not None:
            data = self.deflate.compress(data)
        if not self.writer.is_closing():
            self.writer.write(data)

    async def start_tls(self, context: ssl.SSLContext) -> None:
        try:
            await asyncio.wait_for(self.writer.start_tls(context), 30.0)
        except (ConnectionError, ssl.SSLError, OSError, TimeoutError):
            raise Closed() from None

    def start_compress(self) -> None:
        self.deflate = Deflate()

    async def close(self) -> None:
        writer = self.writer
        try:
            if not writer.is_closing():
                try:
                    async with asyncio.timeout(5):
                        await writer.drain()
                except (TimeoutError, ConnectionError, ssl.SSLError, OSError, RuntimeError):
                    pass
            writer.close()
            async with asyncio.timeout(5):
                await writer.wait_closed()
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError, RuntimeError):
            writer.transport.abort()
