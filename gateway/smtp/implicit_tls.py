"""Implicit TLS for submissions (port 465, RFC 8314 3.3): the handshake done here, then the connection handed to
the SMTP session, which records the TLS session the way STARTTLS would (gateway.smtp.protocol).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from asyncio import sslproto
from typing import Any

import structlog

log = structlog.get_logger("gateway.smtp")


class ImplicitTLS(asyncio.Protocol):
    """Port 465 (RFC 8314 3.3): the TLS handshake is ours, then the connection is handed to SMTP.

    asyncio's own TLS server says nothing when a handshake fails (a client that trusts no CA, a scanner):
    here that failure is one ``smtp.tls`` JSON event with the client address, and the connection is closed.
    A connection closed before sending a byte (a port probe) is not a handshake: it is logged at debug.
    Bytes decrypted before SMTP takes over are kept for it.
    """

    def __init__(self, session: Any, context: Any, listener: str, handshake_timeout: float) -> None:
        self._session = session
        self._context = context
        self._listener = listener
        self._timeout = handshake_timeout
        self._transport: asyncio.Transport | None = None
        self._tls: Any = None
        self._early = bytearray()
        self._task: asyncio.Task[None] | None = None

    @property
    def _client(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._tls is not None:  # decrypted, before SMTP took over
            self._early += data
            return
        assert self._transport is not None
        self._transport.pause_reading()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._tls = sslproto.SSLProtocol(loop, self, self._context, waiter, server_side=True,
                                         ssl_handshake_timeout=max(1, int(self._timeout)), call_connection_made=False)
        self._transport.set_protocol(self._tls)
        self._tls.connection_made(self._transport)
        view = memoryview(data)
        while view:  # the first bytes, already read, go to the TLS layer as if it had read them
            buffer = self._tls.get_buffer(len(view))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            self._tls.buffer_updated(size)
            view = view[size:]
        self._transport.resume_reading()
        self._task = loop.create_task(self._handshake(waiter))

    def eof_received(self) -> bool:
        if self._tls is None:
            log.debug("smtp.connection", outcome="closed_before_tls", listener=self._listener, client=self._client)
        return False

    async def _handshake(self, waiter: asyncio.Future[None]) -> None:
        client = self._client
        try:
            await waiter
        except (OSError, TimeoutError, ConnectionError) as error:
            log.info("smtp.tls", outcome="failed", listener=self._listener, client=client,
                     reason=str(getattr(error, "reason", None) or type(error).__name__))
            if self._transport is not None:
                self._transport.close()
            return
        tls = self._tls._get_app_transport()  # as aiosmtpd's STARTTLS reaches it
        if tls.is_closing():
            return
        smtp = self._session()
        tls.set_protocol(smtp)
        smtp.connection_made(tls)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            smtp.data_received(early)
