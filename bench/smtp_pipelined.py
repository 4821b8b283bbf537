"""A lean SMTP submission client for the benchmarks: STARTTLS, AUTH PLAIN, then PIPELINING (RFC 2920).

aiosmtplib waits for each reply before the next command and costs its process ~1 ms a message; an MTA's client
(Postfix's smtp(8)) sends MAIL, RCPT and DATA in one write and reads their replies together, and QUIT right
after the message's end. This client does the same over asyncio streams, so that what a bench measures on two
shared cores is the server, and it drives the gateway and Postfix alike. It checks every reply's code: a
refused command raises.

:class:`BlockingClient` is the same session over a blocking socket, one thread per session: asyncio's TLS layer
(``asyncio.sslproto``) moves every record through Python, where a blocking ``ssl.SSLSocket`` does the handshake
and the records in C with the interpreter lock released, as an MTA's client does in its own process. It costs
the load client about half the CPU a message when every message has its own connection.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl


class ReplyError(RuntimeError):
    """A reply with another code than the one the client expected."""


def _more(line: bytes, code: bytes) -> bool:
    """Whether ``line`` of a reply with ``code`` is followed by another; raise on another code."""
    if not line.startswith(code):
        raise ReplyError(f"expected {code.decode()}, got {line[:200]!r}")
    return line[3:4] == b"-"


def _plain(user: str, password: str) -> bytes:
    return b"EHLO bench.test\r\nAUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()) + b"\r\n"


def _envelope(sender: str, recipient: str) -> bytes:
    return f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()


def _content(message: bytes, quit_after: bool) -> bytes:
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    ending = b"" if stuffed.endswith(b"\r\n") else b"\r\n"
    return stuffed + ending + (b".\r\nQUIT\r\n" if quit_after else b".\r\n")


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
        writer.write(_plain(user, password))
        await client.expect(b"250")
        await client.expect(b"235")
        return client

    async def expect(self, code: bytes) -> None:
        """Read one (possibly multi-line) reply; raise unless it has ``code``."""
        while _more(await self.reader.readline(), code):
            pass

    async def send(self, sender: str, recipient: str, message: bytes, *, quit_after: bool = False) -> None:
        """MAIL, RCPT and DATA in one write, then the message and its end (with QUIT when ``quit_after``)."""
        self.writer.write(_envelope(sender, recipient))
        await self.expect(b"250")
        await self.expect(b"250")
        await self.expect(b"354")
        self.writer.write(_content(message, quit_after))
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


class BlockingClient:
    """:class:`PipelinedClient`'s session over a blocking socket (one thread per session; see the module)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket = sock
        self.buffer = b""

    @classmethod
    def open(cls, port: int, context: ssl.SSLContext, user: str, password: str) -> BlockingClient:
        sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio's transports do
        client = cls(sock)
        client.expect(b"220")
        sock.sendall(b"EHLO bench.test\r\nSTARTTLS\r\n")
        client.expect(b"250")
        client.expect(b"220")
        if client.buffer:
            raise ReplyError(f"bytes after 220 to STARTTLS: {client.buffer[:200]!r}")
        client.sock = context.wrap_socket(sock, server_hostname="localhost")
        client.sock.sendall(_plain(user, password))
        client.expect(b"250")
        client.expect(b"235")
        return client

    def _line(self) -> bytes:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def expect(self, code: bytes) -> None:
        """Read one (possibly multi-line) reply; raise unless it has ``code``."""
        while _more(self._line(), code):
            pass

    def send(self, sender: str, recipient: str, message: bytes, *, quit_after: bool = False) -> None:
        """As :meth:`PipelinedClient.send`."""
        self.sock.sendall(_envelope(sender, recipient))
        self.expect(b"250")
        self.expect(b"250")
        self.expect(b"354")
        self.sock.sendall(_content(message, quit_after))
        self.expect(b"250")
        if quit_after:
            self.expect(b"221")

    def close(self) -> None:
        """QUIT and close."""
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.expect(b"221")
        except (ReplyError, OSError):
            pass
        self.sock.close()
