"""Wiring and lifecycle: one gateway process with its store, its listeners and its workers.

Listeners and workers are stateless around the store, so several processes can share one PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from gateway.auth.accounts import Authenticator
from gateway.config import Config, ConfigError, Listen
from gateway.smtp.handler import SubmissionHandler
from gateway.smtp.protocol import GatewaySMTP
from gateway.store import db
from gateway.store.changes import ChangeHub
from gateway.store.committer import GroupCommitter
from gateway.tlsctx import server_context

log = structlog.get_logger("gateway.app")
# aiosmtpd warns on every login that a field we never use is deprecated.
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine = db.create_engine(config.database_url)
        self.sessions = db.sessionmaker(self.engine)
        self.reads = db.read_sessionmaker(self.engine)
        self.hub = ChangeHub()
        self.committer = GroupCommitter(self.sessions, self.hub, reads=self.reads)
        self.authenticator = Authenticator.from_config(config, self.reads, self.sessions)
        self._servers: list[asyncio.AbstractServer] = []
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self.ready = asyncio.Event()

    async def _smtp_listener(self, listen: Listen, implicit_tls: bool) -> None:
        tls = server_context(self.config.tls, request_client_cert=True)
        name = "submissions" if implicit_tls else "submission"
        handler = SubmissionHandler(self.config, self.authenticator, self.committer, name)
        limits = self.config.limits

        def factory() -> GatewaySMTP:
            return GatewaySMTP(
                handler, hostname=self.config.hostname, ident="MSSante gateway",
                tls_context=None if implicit_tls else tls, require_starttls=not implicit_tls,
                auth_required=True, auth_require_tls=True, data_size_limit=limits.message_size,
                timeout=limits.smtp_idle_timeout, decode_data=False,
            )

        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, listen.host, listen.port, ssl=tls if implicit_tls else None,
                                          reuse_address=True)
        self._servers.append(server)
        log.info("listening", service=name, address=str(listen))

    async def start(self) -> None:
        await db.migrate(self.config.database_url)
        await self.authenticator.start()  # hashing workers, before the listeners
        self.committer.start()
        if self.config.submission:
            await self._smtp_listener(self.config.submission, implicit_tls=False)
        if self.config.submissions:
            await self._smtp_listener(self.config.submissions, implicit_tls=True)
        await self._start_imap()
        await self._start_operator_exchange()
        self._start_filing()
        await self._start_card_endpoint()
        self.ready.set()

    async def _start_card_endpoint(self) -> None:
        """Issue 7: card agents report Vitale and professional card presence (R14)."""
        if self.config.card is None:
            return
        from gateway.card.endpoint import endpoint_ssl_context, start_card_endpoint
        from gateway.card.presence import PresenceSettings

        card, tls = self.config.card, self.config.tls
        context = endpoint_ssl_context(tls.certificate, tls.private_key, card.client_ca, tls.minimum_version)
        endpoint = await start_card_endpoint(card.listen.host, card.listen.port, context, self.sessions,
                                             PresenceSettings(card.presence_timeout))
        self._closers.append(endpoint.close)
        log.info("listening", service="card", address=str(card.listen))

    def _start_filing(self) -> None:
        """Issue 4: file the documents of delivered messages, and import from upstream operator mailboxes."""
        if self.config.documents is None and not self.config.upstreams and self.config.dmp is None:
            return
        from gateway.documents.cda import SchemaUnavailable, load_schema, use_schema
        from gateway.filing.upstream import UpstreamConnector
        from gateway.filing.worker import FilingWorker

        if self.config.documents is not None and self.config.documents.cda_schema is not None:
            use_schema(self.config.documents.cda_schema)
        try:
            load_schema()  # compile once now: a broken schema stops the start, not the first filing
        except SchemaUnavailable as exc:
            raise ConfigError(f"Configuration key 'documents.cda_schema' names a schema that cannot be used: {exc}") \
                from None

        worker = FilingWorker(self.config, self.sessions, self.reads, self.hub)
        worker.start()
        self._closers.append(worker.stop)
        if self.config.dmp is not None:  # issue 6: deposits considered by the worker are sent by the outbox
            from gateway.dmp_bridge.daemon import DmpBridge

            bridge = DmpBridge(self.config.dmp, self.sessions)
            bridge.start()
            self._closers.append(bridge.stop)
        for settings in self.config.upstreams:
            connector = UpstreamConnector(self.config, settings, self.committer, self.reads)
            connector.start()
            self._closers.append(connector.stop)

    async def _start_operator_exchange(self) -> None:
        """Issue 5: the whitelist, the relay listener for other operators, and the outbound queue worker."""
        if self.config.whitelist is not None:
            from gateway.trust.whitelist import WhitelistLoader

            loader = WhitelistLoader(self.config.whitelist, self.config.trusted)
            await loader.start()
            self._closers.append(loader.stop)
        if self.config.relay is not None:
            from gateway.smtp.relay import start_relay_listener

            self._servers.append(await start_relay_listener(self.config, self.committer))
        if self.config.outbound is not None:
            from gateway.smtp.outbound import OutboundWorker

            worker = OutboundWorker(self.config, self.committer, self.hub)
            worker.start()
            self._closers.append(worker.stop)

    async def _start_imap(self) -> None:
        if not (self.config.imap or self.config.imaps):
            return
        try:
            from gateway.imap.server import start_imap
        except ImportError:
            log.warning("imap_unavailable", reason="gateway.imap is not installed")
            return
        service = await start_imap(self.config, self.sessions, self.authenticator, self.hub)
        self._closers.append(service.close)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for close in reversed(self._closers):
            await close()
        await self.committer.stop()
        await self.authenticator.close()
        await self.engine.dispose()


async def serve(config: Config, on_ready: Callable[[Gateway], None] | None = None) -> None:
    """Run until SIGTERM or SIGINT, then close listeners and let running transactions finish."""
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    log.info("ready", hostname=config.hostname)
    if on_ready is not None:
        on_ready(gateway)
    await stop.wait()
    log.info("stopping")
    await gateway.stop()
