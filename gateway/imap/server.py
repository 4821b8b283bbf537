"""The IMAP listeners: STARTTLS on ``config.imap``, implicit TLS on ``config.imaps``.

Wiring contract with the daemon (gateway/app.py): ``service = await start_imap(config, sessions,
authenticator, hub)`` then ``await service.close()``. LOGIN and AUTHENTICATE PLAIN only inside TLS
(``LOGINDISABLED`` before STARTTLS), with the accounts, password hashes and throttle SMTP uses.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from argparse import Namespace
from contextlib import AsyncExitStack, closing
from typing import Any

import structlog
from proxyprotocol.sock import SocketInfo
from pymap.concurrent import Subsystem
from pymap.config import BackendCapability, IMAPConfig
from pymap.context import connection_exit, subsystem
from pysasl import SASLAuth
from pysasl.hashing import BuiltinHash
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth.accounts import Authenticator
from gateway.config import Config, Listen
from gateway.imap.changes import FolderWatcher
from gateway.imap.connection import MAX_LINE, GatewayState, GuardedConnection, Guards
from gateway.imap.housekeeping import ExpungePruner
from gateway.imap.session import StoreLogin
from gateway.imap.store import Store
from gateway.store import db
from gateway.store.changes import ChangeHub

log = structlog.get_logger("gateway.imap")

#: Read buffer of each TLS connection. asyncio allocates ``SSLProtocol.max_size`` (256 KiB) per connection and
#: touches all of it: 250 MB for 1,000 idle IMAP clients. A TLS record carries at most 16 KiB of plaintext, so
#: 16 KiB costs a few more read calls for big transfers and nothing else.
TLS_READ_BUFFER = 16 * 1024


def limit_tls_read_buffer() -> None:
    """Shrink asyncio's per-connection TLS read buffer (process-wide: SMTP listeners benefit too)."""
    from asyncio import sslproto

    if sslproto.SSLProtocol.max_size > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def tls_context(config: Config) -> ssl.SSLContext:
    """The gateway's server TLS context (TLS 1.2 at least, ANS ciphers); see gateway/tlsctx.py."""
    from gateway.tlsctx import server_context

    return server_context(config.tls, request_client_cert=True)  # software accounts log in with EXTERNAL


class GatewayIMAPConfig(IMAPConfig):
    """pymap settings for one listener, derived from the gateway's configuration."""

    def __init__(self, config: Config, context: ssl.SSLContext, *, starttls: bool) -> None:
        args = Namespace(passlib_cfg=None, proxy_protocol=None, debug=False, inherited_sockets=None)
        super().__init__(
            args, host=None, port=0, ssl_context=context, tls_enabled=starttls,
            subsystem=Subsystem.for_asyncio(), cpu_subsystem=Subsystem.for_asyncio(), hash_context=BuiltinHash(),
            invalid_user_sleep=0.0, reject_dnsbl=False, admin_key=uuid.uuid4().bytes,
            max_append_len=config.limits.message_size, bad_command_limit=5,
        )
        self.hostname = config.hostname

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(idle=True, object_id=False, multi_append=False, custom=[b"SPECIAL-USE"])

    @property
    def tls_auth(self) -> SASLAuth:
        # PLAIN (and the LOGIN command) against our hashes, no CRAM; EXTERNAL for certificate-bound software.
        return SASLAuth.named([b"PLAIN", b"EXTERNAL"])

    @property
    def greeting(self) -> bytes:
        return self.hostname.encode("ascii", "replace") + b" IMAP ready"


class ImapService:
    """The running IMAP listeners and their connections."""

    def __init__(self, store: Store, watcher: FolderWatcher, pruner: ExpungePruner) -> None:
        self.store = store
        self.watcher = watcher
        self.pruner = pruner
        self.servers: list[asyncio.AbstractServer] = []
        self.ports: dict[str, int] = {}
        self._connections: set[asyncio.Task[Any]] = set()

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def listen(self, name: str, listen: Listen, imap_config: GatewayIMAPConfig, login: StoreLogin,
                     guards: Guards, *, implicit_tls: bool) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                await self._serve(reader, writer, imap_config, login, guards)
            finally:
                self._connections.discard(task)

        server = await asyncio.start_server(
            handle, listen.host, listen.port, ssl=imap_config.ssl_context if implicit_tls else None,
            limit=MAX_LINE, reuse_address=True, ssl_handshake_timeout=30.0 if implicit_tls else None)
        self.servers.append(server)
        self.ports[name] = server.sockets[0].getsockname()[1]
        log.info("listening", service=name, address=f"{listen.host}:{self.ports[name]}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     imap_config: GatewayIMAPConfig, login: StoreLogin, guards: Guards) -> None:
        subsystem.set(imap_config.subsystem)
        sock_info = SocketInfo.get(writer, None, unique_id=uuid.uuid4().bytes)
        conn = GuardedConnection(imap_config.commands, imap_config, reader, writer, sock_info, guards=guards)
        state = GatewayState(login, imap_config)
        try:
            async with AsyncExitStack() as stack:
                connection_exit.set(stack)
                stack.enter_context(closing(conn))
                await conn.run(state)
        except (ConnectionError, ssl.SSLError, EOFError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("imap_connection_failed")

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
        await self.pruner.stop()
        await self.store.committer.stop()
        await self.watcher.close()


async def start_imap(config: Config, sessions: async_sessionmaker[AsyncSession], authenticator: Authenticator,
                     hub: ChangeHub) -> ImapService:
    """Start the IMAP listeners configured in ``config.imap`` (STARTTLS) and ``config.imaps`` (implicit TLS)."""
    limit_tls_read_buffer()
    engine = sessions.kw["bind"]
    reads = db.read_sessionmaker(engine)
    watcher = FolderWatcher(hub, reads, config.database_url)
    await watcher.start()
    store = Store(sessions, reads, hub, watcher)
    store.committer.start()
    pruner = ExpungePruner(sessions)
    pruner.start()
    service = ImapService(store, watcher, pruner)
    limits = config.limits
    guards = Guards(limits.imap_literal_unauthenticated, limits.imap_literal_authenticated, limits.message_size)
    context = tls_context(config)
    try:
        if config.imap is not None:
            imap_config = GatewayIMAPConfig(config, context, starttls=True)
            await service.listen("imap", config.imap, imap_config, StoreLogin(imap_config, store, authenticator),
                                 guards, implicit_tls=False)
        if config.imaps is not None:
            imaps_config = GatewayIMAPConfig(config, context, starttls=False)
            await service.listen("imaps", config.imaps, imaps_config,
                                 StoreLogin(imaps_config, store, authenticator), guards, implicit_tls=True)
    except BaseException:
        await service.close()
        raise
    return service
