"""One IMAP connection: pymap's command loop with our guards on what a client may make the server read.

pymap reads a whole ``{n}`` / ``{n+}`` literal before it checks any limit, so an unauthenticated
``a LOGIN {268435456+}`` would make the server buffer 256 MiB. :class:`GuardedConnection` sees the literal's
announced size at the end of the line, before a single byte of it is read, and compares it with the limit of
the connection's state: ``limits.imap_literal_unauthenticated`` before login, ``limits.message_size`` for
APPEND, ``limits.imap_literal_authenticated`` otherwise (RFC 7888 section 4, RFC 4469 TOOBIG):

- a synchronising literal ``{n}`` that is too big is refused with ``tag NO [TOOBIG]`` instead of the ``+``
  continuation, so the client never sends it, and the connection goes on;
- a non-synchronising literal ``{n+}`` is already on its way: ``* BYE [TOOBIG]`` and the connection is closed.

Lines are bounded by the stream limit, every read by a timeout (short before login), and a command's total
size by a budget. :class:`GatewayState` removes pymap's "loopback may log in without TLS" exemption and
checks that nothing was pipelined after STARTTLS (plaintext sent with it must never run inside TLS).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from pymap.context import socket_info
from pymap.imap import IMAPConnection
from pymap.imap.state import ConnectionState
from pymap.parsing.command import Command
from pymap.parsing.response import CommandResponse, ResponseBye, ResponseCode, ResponseNo, ResponseOk

log = structlog.get_logger("gateway.imap")

#: A literal announced at the end of a line: ``{n}``, ``{n+}``, and the binary ``~{n}`` (RFC 3516).
_LITERAL = re.compile(rb"~?\{(\d{1,20})(\+)?\}\r?\n\Z")
_TAG = re.compile(rb"[!#$&'*+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]{1,64}")
_APPEND = re.compile(rb"\S+ +(?:UID +)?APPEND ", re.IGNORECASE)
#: Longest command line (between literals); also the asyncio stream limit.
MAX_LINE = 65536
#: Refused literals in a row before the connection is closed.
MAX_REFUSALS = 3


@dataclass(frozen=True)
class Guards:
    """The limits a connection enforces (from ``config.limits``)."""

    literal_unauthenticated: int
    literal_authenticated: int
    message_size: int
    timeout_unauthenticated: float = 60.0
    #: RFC 9051 5.4: an autologout timer of at least 30 minutes once authenticated.
    timeout_authenticated: float = 1800.0


class LiteralTooBig(Exception):
    """A client announced a literal larger than its state allows."""

    def __init__(self, tag: bytes, nonsync: bool) -> None:
        super().__init__("literal too big")
        self.tag = tag
        self.nonsync = nonsync


class GatewayState(ConnectionState):
    """pymap's connection state, without the loopback exemption from TLS."""

    @property
    def authenticated(self) -> bool:
        return self._session is not None

    async def do_greeting(self) -> CommandResponse:
        # pymap lets loopback clients log in without TLS; a gateway behind a local proxy must not.
        return ResponseOk(b"*", self.config.greeting, self.capability)


#: The connection's writer, for what only the TLS layer knows (the client certificate of SASL EXTERNAL).
CURRENT_WRITER: ContextVar[Any] = ContextVar("gateway_imap_writer", default=None)


class GuardedConnection(IMAPConnection):
    """pymap's connection loop, with literal caps, line and time limits, and the STARTTLS buffer check."""

    __slots__ = ["_authenticated", "_first", "_refusals", "_used", "guards"]

    def __init__(self, *args: object, guards: Guards) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        CURRENT_WRITER.set(self.writer)  # this connection's task: read back by SASL EXTERNAL
        self.guards = guards
        self._first: bytes | None = None
        self._used = 0
        self._refusals = 0
        self._authenticated = False

    # --- limits ---------------------------------------------------------------------------------------------
    def _timeout(self) -> float:
        g = self.guards
        return g.timeout_authenticated if self._authenticated else g.timeout_unauthenticated

    def _literal_limit(self) -> int:
        g = self.guards
        if not self._authenticated:
            return g.literal_unauthenticated
        if self._first is not None and _APPEND.match(self._first):
            return g.message_size
        return g.literal_authenticated

    def _tag(self) -> bytes:
        match = _TAG.match(self._first or b"")
        return match.group(0) if match and match.group(0) != b"+" else b"*"

    def _spend(self, size: int) -> None:
        self._used += size
        if self._used > 2 * self._literal_limit() + 2 * MAX_LINE:
            raise LiteralTooBig(self._tag(), nonsync=True)

    async def _read(self, size: int | None) -> bytes:
        try:
            async with asyncio.timeout(self._timeout()):
                if size is None:
                    return await self.reader.readline()
                return await self.reader.readexactly(size)
        except TimeoutError:
            raise _Autologout() from None
        except asyncio.IncompleteReadError:
            raise EOFError() from None
        except (ValueError, asyncio.LimitOverrunError):
            raise _LineTooLong() from None

    # --- pymap's reading hooks ------------------------------------------------------------------------------
    async def readline(self) -> memoryview:
        buf = bytearray(await self._read(None))
        if self._first is None:
            self._first = bytes(buf[:256])
        self._spend(len(buf))
        while True:
            if not buf.endswith(b"\n"):
                raise EOFError()
            match = _LITERAL.search(buf[-32:])
            if match is None:
                return memoryview(buf)
            size = int(match.group(1))
            nonsync = match.group(2) is not None
            if size > self._literal_limit():
                raise LiteralTooBig(self._tag(), nonsync)
            if not nonsync:
                return memoryview(buf)  # pymap asks for it with a continuation; read_continuation reads it
            self._spend(size)
            buf += await self._read(size)
            line = await self._read(None)
            self._spend(len(line))
            buf += line

    async def read_continuation(self, literal_length: int) -> memoryview:
        if literal_length > self._literal_limit():
            raise LiteralTooBig(self._tag(), nonsync=False)
        self._spend(literal_length)
        literal = await self._read(literal_length) if literal_length else b""
        line = await self.readline()
        return memoryview(literal + bytes(line))

    async def read_command(self, state: ConnectionState) -> Command:
        while True:
            self._authenticated = isinstance(state, GatewayState) and state.authenticated
            self._first, self._used = None, 0
            try:
                command = await super().read_command(state)
            except LiteralTooBig as exc:
                await self._refuse(exc)
                continue
            except _LineTooLong:
                await self.write_response(ResponseBye(b"Command line too long; closing.",
                                                      ResponseCode.of(b"TOOBIG")))
                raise EOFError() from None
            except _Autologout:
                await self.write_response(ResponseBye(b"Autologout; idle for too long."))
                raise EOFError() from None
            self._refusals = 0
            return command

    async def _refuse(self, exc: LiteralTooBig) -> None:
        """RFC 7888 section 4 and RFC 4469: refuse before reading; close if the bytes are already coming."""
        self._refusals += 1
        log.info("imap_literal_refused", nonsync=exc.nonsync, authenticated=self._authenticated)
        if exc.nonsync or self._refusals >= MAX_REFUSALS:
            await self.write_response(ResponseBye(
                b"Literal larger than this server accepts; closing.", ResponseCode.of(b"TOOBIG")))
            raise EOFError()
        await self.write_response(ResponseNo(
            exc.tag, b"Literal larger than this server accepts here; nothing was read.", ResponseCode.of(b"TOOBIG")))

    async def read_idle_done(self, cmd: object) -> bool:
        self._first, self._used = b"DONE", 0
        try:
            return await super().read_idle_done(cmd)  # type: ignore[arg-type]
        except (LiteralTooBig, _LineTooLong, _Autologout):
            raise EOFError() from None

    async def start_tls(self) -> None:
        """Refuse bytes pipelined after STARTTLS: they were sent in clear and must not run inside TLS."""
        pending = getattr(self.reader, "_buffer", b"")
        if pending:
            log.warning("imap_starttls_injection", client=str(socket_info.get().peername_ip))
            raise ConnectionError("plaintext pipelined after STARTTLS")
        await super().start_tls()


class _Autologout(Exception):
    pass


class _LineTooLong(Exception):
    pass
