"""The IMAP listeners: STARTTLS on ``config.imap``, implicit TLS on ``config.imaps``; one task per connection.

Wiring contract with the daemon (gateway/app.py): ``service = await start_imap(config, sessions,
authenticator, hub)`` then ``await service.close()``; ``service.ports`` maps "imap"/"imaps" to the bound
ports and ``service.connections`` counts open connections.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ssl
import sys
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth.accounts import Authenticator
from gateway.config import Config, Listen
from gateway.imap.anatomy.indexer import TextIndexer
from gateway.imap.changes import FolderWatcher
from gateway.imap.engine import wire
from gateway.imap.engine.channel import Channel
from gateway.imap.engine.session import Session
from gateway.imap.housekeeping import ExpungePruner
from gateway.ops import metrics
from gateway.store import db
from gateway.store.changes import ChangeHub
from gateway.tasks import Background
from gateway.tls_buffers import share_tls_read_buffers

log = structlog.get_logger("gateway.imap")

#: Seconds a client has to finish the implicit-TLS handshake.
HANDSHAKE_TIMEOUT = 30.0
#: Python 3.11's StreamReaderProtocol keeps its drain waiters in a deque (760 bytes empty) it only appends to,
#: iterates and removes from; a list costs 56 (ten thousand idle connections: 7 MB).
LIST_DRAIN_WAITERS = sys.version_info[:2] == (3, 11)


def tls_context(config: Config) -> ssl.SSLContext:
    """The gateway's server TLS context (TLS 1.2 at least, ANS ciphers); see gateway/tlsctx.py."""
    from gateway.tlsctx import server_context

    return server_context(config.tls, request_client_cert=True)  # software accounts log in with EXTERNAL


@dataclass(frozen=True)
class Timers:
    """Autologout timers (RFC 9051 5.4: at least 30 minutes once authenticated)."""

    unauthenticated: float = 60.0
    authenticated: float = 1800.0
    #: How often a long IDLE re-reads whether its mailbox was disabled.
    account_check: float = 30.0


@dataclass
class Context:
    """What every session of the service shares."""

    config: Config
    sessions: async_sessionmaker[AsyncSession]
    reads: async_sessionmaker[AsyncSession]
    authenticator: Authenticator
    hub: ChangeHub
    watcher: FolderWatcher
    tls: ssl.SSLContext
    literal_unauthenticated: int
    literal_authenticated: int
    message_size: int
    timers: Timers
    #: Backend objects built lazily by the store adapter (one per service).
    extra: dict[str, Any]


class ImapService:
    """The running IMAP listeners and their connections."""

    def __init__(self, context: Context, housekeepers: list[Background]) -> None:
        self.context = context
        self.watcher = context.watcher
        #: Background work of the IMAP side (expunge pruning, the full-text index of long bodies).
        self.housekeepers = housekeepers
        self.servers: list[asyncio.AbstractServer] = []
        self.ports: dict[str, int] = {}
        self._connections: set[asyncio.Task[Any]] = set()
        self.sessions: set[Session] = set()

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def listen(self, name: str, listen: Listen, *, implicit_tls: bool) -> None:
        server = await asyncio.start_server(
            functools.partial(self._serve, name), listen.host, listen.port,
            ssl=self.context.tls if implicit_tls else None, reuse_address=True,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if implicit_tls else None)
        self.servers.append(server)
        self.ports[name] = server.sockets[0].getsockname()[1]
        log.info("listening", service=name, address=f"{listen.host}:{self.ports[name]}")

    async def _serve(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, in the one task asyncio gives it (no wrapper coroutine: an idle session's whole
        cost is its objects, so each level of frames counts ten thousand times)."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        metrics.imap_session(name, +1)
        protocol: Any = writer._protocol  # type: ignore[attr-defined]
        if LIST_DRAIN_WAITERS and isinstance(getattr(protocol, "_drain_waiters", None), collections.deque):
            protocol._drain_waiters = []  # appended, iterated and removed from only: 56 bytes, not 760
        channel = Channel(reader, writer)
        session = Session(self.context, channel)
        self.sessions.add(session)
        try:
            await session.run()
        except asyncio.CancelledError:  # the daemon stops (SIGTERM): the client is told why (RFC 9051 7.1.5)
            with contextlib.suppress(Exception):
                channel.write_nowait(wire.status("*", "BYE", "The server is shutting down; reconnect later.",
                                                 "UNAVAILABLE"))
        except Exception:
            log.exception("imap_connection_failed", client=channel.client)
        finally:
            self.sessions.discard(session)
            try:
                await channel.close()
            except asyncio.CancelledError:  # stopped again while closing: drop the connection, end quietly
                writer.transport.abort()
            except Exception:
                writer.transport.abort()
            finally:
                self._connections.discard(task)
                metrics.imap_session(name, -1)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5.0)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5.0)
        for worker in self.housekeepers:
            await worker.stop()
        await self.watcher.close()


async def start_imap(config: Config, sessions: async_sessionmaker[AsyncSession], authenticator: Authenticator,
                     hub: ChangeHub, *, timers: Timers | None = None) -> ImapService:
    """Start the IMAP listeners configured in ``config.imap`` (STARTTLS) and ``config.imaps`` (implicit TLS)."""
    share_tls_read_buffers()  # process-wide: SMTP listeners benefit too
    engine = sessions.kw["bind"]
    reads = db.read_sessionmaker(engine)
    watcher = FolderWatcher(hub, reads, config.database_url)
    await watcher.start()
    housekeepers: list[Background] = [ExpungePruner(sessions), TextIndexer(sessions, hub)]
    for worker in housekeepers:
        worker.start()
    limits = config.limits
    context = Context(config, sessions, reads, authenticator, hub, watcher, tls_context(config),
                      limits.imap_literal_unauthenticated, limits.imap_literal_authenticated, limits.message_size,
                      timers or Timers(), {})
    service = ImapService(context, housekeepers)
    try:
        if config.imap is not None:
            await service.listen("imap", config.imap, implicit_tls=False)
        if config.imaps is not None:
            await service.listen("imaps", config.imaps, implicit_tls=True)
    except BaseException:
        await service.close()
        raise
    return service
