"""A lean SMTP submission client for the benchmarks: STARTTLS, AUTH PLAIN, then PIPELINING (RFC 2920).

aiosmtplib waits for each reply before the next command and costs its process ~1 ms a message; an MTA's client
(Postfix's smtp(8)) sends MAIL, RCPT and DATA in one write and reads their replies together, and QUIT right
after the message's end. This client does the same over asyncio streams, so that what a bench measures on two
shared cores is the server, and it drives the gateway and Postfix alike. It checks every reply's code: a
refused command raises.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import base64
import ssl


class ReplyError(RuntimeError):
    """A reply with another code than the one the client expected."""


class PipelinedClient:
    """One SMTP session on 127.0.0.1:``port``; :meth:`open` logs in, :meth:`send` submits one message."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, context: ssl.SSLContext, user: str, password: str) -> PipelinedClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        client = cls(reader, writer)
        await client.expect(b"220")
        writer.write(b"EHLO bench.test\r\nSTARTTLS\r\n")  # STARTTLS may end a pipelined group (RFC 2920 3.1)
        await client.expect(b"250")
        await client.expect(b"220")
        await writer.start_tls(context, server_hostname="localhost")
        token = base64.b64encode(f"\0{user}\0{password}".encode())
        writer.write(b"EHLO bench.test\r\nAUTH PLAIN " + token + b"\r\n")
        await client.expect(b"250")
        await client.expect(b"235")
        return client

    async def expect(self, code: bytes) -> None:
        """Read one (possibly multi-line) reply; raise unless it has ``code``."""
        while True:
            line = await self.reader.readline()
            if not line.startswith(code):
                raise ReplyError(f"expected {code.decode()}, got {line[:200]!r}")
            if line[3:4] != b"-":
                return

    async def send(self, sender: str, recipient: str, message: bytes, *, quit_after: bool = False) -> None:
        """MAIL, RCPT and DATA in one write, then the message and its end (with QUIT when ``quit_after``)."""
        self.writer.write(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode())
        await self.expect(b"250")
        await self.expect(b"250")
        await self.expect(b"354")
        stuffed = message.replace(b"\r\n.", b"\r\n..")
        ending = b"" if stuffed.endswith(b"\r\n") else b"\r\n"
        self.writer.write(stuffed + ending + (b".\r\nQUIT\r\n" if quit_after else b".\r\n"))
        await self.expect(b"250")
        if quit_after:
            await self.expect(b"221")

    async def close(self) -> None:
        """QUIT (when the session is still open) and close."""
        if not self.writer.is_closing():
            self.writer.write(b"QUIT\r\n")
            try:
                await self.expect(b"221")
            except (ReplyError, ConnectionError, ssl.SSLError):
                pass
        self.writer.close()
