"""One connection's byte stream: TLS upgrade, COMPRESS=DEFLATE, read timeouts and flow-controlled writes.

Writes are corked: a command's untagged lines and its tagged answer collect in one buffer that goes out as
one TLS record (and one compressed block) when the session next waits for the client, or when it reaches
:data:`FLUSH_AT`. Every flush is followed by ``drain()``: a client that reads slowly holds the FETCH producer
back at the transport's write-buffer limit instead of making the server buffer a whole answer (RFC 9051 5.5).

An idle connection holds as little as it can: the output buffer is dropped once sent, and before each wait
for the client the TLS layer's memory BIOs give back what the last burst grew them to
(:func:`gateway.tls_buffers.release_idle_bios`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from typing import Any

from gateway.imap.engine.compress import Deflate
from gateway.tls_buffers import release_idle_bios

#: Bytes asked of the socket per read.
READ_CHUNK = 64 * 1024
#: Transport write-buffer high-water mark: above it ``drain()`` waits for the client.
WRITE_HIGH = 256 * 1024
#: Corked output sent without waiting for the end of the command once it reaches this size.
FLUSH_AT = 64 * 1024


class Closed(Exception):
    """The client went away (EOF, reset, TLS failure, undecodable compressed stream)."""


class TimedOut(Exception):
    """Nothing arrived within the autologout time."""


class Channel:
    """Reads and writes of one IMAP connection."""

    __slots__ = ("_out", "_out_size", "client", "deflate", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.deflate: Deflate | None = None
        self._out: list[bytes] = []
        self._out_size = 0
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
        """The next bytes from the client, decompressed; raises :class:`Closed` or :class:`TimedOut`.

        What was written so far goes out first: the client may be waiting for it before it sends more."""
        if self._out:
            await self.flush()
        deflate = self.deflate
        if deflate is not None and deflate.pending:
            try:
                return deflate.decompress(b"")
            except zlib.error:
                raise Closed() from None
        while True:
            if not getattr(self.reader, "_buffer", b""):  # about to wait: an idle connection keeps no burst
                release_idle_bios(self.writer.transport)
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
        """Add ``data`` to the output; sent at the next read or :meth:`flush`, or now if the buffer is full."""
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= FLUSH_AT:
            await self.flush()

    def _take(self) -> bytes:
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        return self.deflate.compress(data) if self.deflate is not None else data

    async def flush(self) -> None:
        """Send the corked output and wait until the transport's buffer is under its limit."""
        if not self._out:
            return
        data = self._take()
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, ssl.SSLError, OSError, RuntimeError):
            raise Closed() from None

    def write_nowait(self, data: bytes) -> None:
        """Queue the corked output and ``data`` without waiting (a BYE on the way out)."""
        self._out.append(data)
        data = self._take()
        if not self.writer.is_closing():
            self.writer.write(data)

    async def start_tls(self, context: ssl.SSLContext) -> None:
        await self.flush()  # the OK that invited the handshake goes out in clear (RFC 9051 6.2.1)
        try:
            await asyncio.wait_for(self.writer.start_tls(context), 30.0)
        except (ConnectionError, ssl.SSLError, OSError, TimeoutError):
            raise Closed() from None

    def start_compress(self) -> None:
        """The corked output (the tagged OK) is queued uncompressed; everything after it is compressed (RFC 4978 3)."""
        if self._out and not self.writer.is_closing():
            self.writer.write(self._take())
        self.deflate = Deflate()

    async def close(self) -> None:
        writer = self.writer
        try:
            if self._out and not writer.is_closing():
                writer.write(self._take())
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
