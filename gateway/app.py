"""Wiring and lifecycle: one gateway process with its store, its listeners and its workers.

Listeners and workers are stateless around the store, so several processes can share one PostgreSQL (or one
SQLite file): with ``[gateway] workers`` above 1, gateway/process runs one :class:`Gateway` per worker process,
only the first with ``once=True`` (queues, refreshes, the card endpoint). Stopping is graceful (:meth:`drain`)
and SIGHUP reloads the configuration in place (:meth:`reload`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from gateway import logs
from gateway.auth import hashing
from gateway.auth.accounts import Authenticator
from gateway.config import Config, ConfigError, Listen
from gateway.ops.health import Listeners
from gateway.ops.http import start_http
from gateway.process.heap import start_serving_heap
from gateway.process.reload import changed_keys, read_config, restart_keys
from gateway.smtp.handler import SubmissionHandler
from gateway.smtp.implicit_tls import ImplicitTLS
from gateway.smtp.protocol import GatewaySMTP
from gateway.store import db
from gateway.store.changes import ChangeHub
from gateway.store.committer import GroupCommitter
from gateway.tlsctx import reload_server_contexts, server_context

log = structlog.get_logger("gateway.app")
# aiosmtpd warns on every login that a field we never use is deprecated.
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")


#: The reply an SMTP session waiting for its next command gets when the daemon stops (RFC 5321 3.8, 4.2.3).
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"


class Gateway:
    """One process's listeners and workers.

    ``once`` says whether this process runs the once-only work of the daemon (whitelist refresh, outbound
    queue, filing, DMP outbox, upstream mailboxes, card endpoint, expunge pruning); ``hub`` is given by
    gateway/process so that wake-ups reach the other worker processes; ``migrate=False`` when the supervisor
    migrated the store already.
    """

    def __init__(self, config: Config, *, once: bool = True, hub: ChangeHub | None = None,
                 migrate: bool = True) -> None:
        self.config = config
        self.once = once
        self._migrate = migrate
        self.engine = db.create_engine(config.database_url)
        self.sessions = db.sessionmaker(self.engine)
        self.reads = db.read_sessionmaker(self.engine)
        self.hub = hub if hub is not None else ChangeHub()
        self.committer = GroupCommitter(self.sessions, self.hub, reads=self.reads)
        self.authenticator = Authenticator.from_config(config, self.reads, self.sessions)
        if config.psc is not None:  # SASL OAUTHBEARER / XOAUTH2 with Pro Sante Connect tokens (gateway/psc)
            from gateway.psc.login import PscLogin

            self.authenticator.psc = PscLogin(config.psc, self.reads)
        self._servers: list[asyncio.AbstractServer] = []
        self._closers: list[Callable[[], Awaitable[Any]]] = []
        self._handlers: list[SubmissionHandler] = []
        self._smtp_sessions: weakref.WeakSet[GatewaySMTP] = weakref.WeakSet()
        self._whitelist: Any = None
        self._imap: Any = None
        #: What /readyz checks: every listener this process should serve (gateway/ops/health.py).
        self.listeners = Listeners.from_config(config, once=once)
        self.ready = asyncio.Event()

    async def _smtp_listener(self, listen: Listen, implicit_tls: bool) -> None:
        tls = server_context(self.config.tls, request_client_cert=True)
        name = "submissions" if implicit_tls else "submission"
        handler = SubmissionHandler(self.config, self.authenticator, self.committer, name)
        self._handlers.append(handler)

        def factory() -> GatewaySMTP:
            limits = self.config.limits  # read per connection: a reload's limits apply to new sessions
            session = GatewaySMTP(
                handler, hostname=self.config.hostname, ident="MSSante gateway",
                tls_context=None if implicit_tls else tls, require_starttls=not implicit_tls,
                auth_required=True, auth_require_tls=True, data_size_limit=limits.message_size,
                timeout=limits.smtp_idle_timeout, decode_data=False,
            )
            self._smtp_sessions.add(session)
            return session

        loop = asyncio.get_running_loop()
        serve: Any = factory
        if implicit_tls:  # the handshake is ours, so a failed one is one JSON event (gateway/smtp/protocol.py)
            timeout = float(self.config.limits.smtp_idle_timeout)
            serve = lambda: ImplicitTLS(factory, tls, name, timeout)  # noqa: E731
        server = await loop.create_server(serve, listen.host, listen.port, reuse_address=True)
        self._servers.append(server)
        self.listeners.up(name, listen)
        log.info("listening", service=name, address=str(listen))

    async def start(self) -> None:
        if self._migrate:
            await db.migrate(self.config.database_url)
        hashing.share_cores(self.config.workers)  # the daemon's workers split the cores between their hashers
        await self.authenticator.start()  # hashing workers, before the listeners
        if self.authenticator.psc is not None:
            self._closers.append(self.authenticator.psc.close)
        self.committer.start()
        http = await start_http(self.config, self.reads, self.listeners)  # metrics, probes, autoconfig
        self._closers.append(http.close)
        if self.config.web is not None:  # the staff console (gateway/web), stateless: every worker serves it
            from gateway.web.app import start_web

            console = await start_web(self.config, self.sessions)
            self._closers.append(console.close)
            self.listeners.up("web", self.config.web.listen)
        if self.config.submission:
            await self._smtp_listener(self.config.submission, implicit_tls=False)
        if self.config.submissions:
            await self._smtp_listener(self.config.submissions, implicit_tls=True)
        await self._start_imap()
        await self._start_operator_exchange()
        await self._start_hl7()
        if self.once:
            self._start_filing()
            await self._start_card_endpoint()
        self.ready.set()

    async def _start_hl7(self) -> None:
        """The MLLP listener for hospital systems in every worker process (the supervisor's socket; the listener
        leaves the next connection to a less busy worker, so parsing and packaging use every core); exactly-once
        rests on the store (peer + MSH-10), not on the process. The acknowledgement relay runs once per gateway."""
        if self.config.hl7 is None:
            return
        from gateway.hl7.listener import Hl7Listener

        listener = Hl7Listener(self.config, self.committer)
        await listener.start()
        if listener.server is not None:
            self._servers.append(listener.server)  # drain stops accepting with the other listeners
        self._closers.append(listener.close)
        self.listeners.up("hl7", self.config.hl7.listen)
        if self.once and any(peer.return_address is not None for peer in self.config.hl7.peers):
            from gateway.hl7.relay import Hl7Relay

            relay = Hl7Relay(self.config.hl7, self.sessions, self.hub)  # acknowledgements back to the peers
            relay.start()
            self._closers.append(relay.stop)

    async def _start_card_endpoint(self) -> None:
        """Card agents report Vitale and professional card presence (R14)."""
        if self.config.card is None:
            return
        from gateway.card.endpoint import endpoint_ssl_context, start_card_endpoint
        from gateway.card.presence import PresenceSettings

        card, tls = self.config.card, self.config.tls
        context = endpoint_ssl_context(tls.certificate, tls.private_key, card.client_ca, tls.minimum_version)
        endpoint = await start_card_endpoint(card.listen.host, card.listen.port, context, self.sessions,
                                             PresenceSettings(card.presence_timeout))
        self._closers.append(endpoint.close)
        self.listeners.up("card", card.listen)
        log.info("listening", service="card", address=str(card.listen))

    def _start_filing(self) -> None:
        """File the documents of delivered messages, and import from upstream operator mailboxes."""
        if self.config.documents is None and not self.config.upstreams and self.config.dmp is None:
            return
        from gateway.documents.cda_schema import SchemaUnavailable, load_schema, use_schema
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
        if self.config.dmp is not None:  # deposits considered by the worker are sent by the outbox
            from gateway.dmp_bridge.daemon import DmpBridge

            bridge = DmpBridge(self.config.dmp, self.sessions, hub=self.hub,
                               directory=self.config.directory)  # woken by the commit that queues
            worker.deposits = bridge.worker.take  # and claims what this process's filing queued, by id, at once
            bridge.start()
            self._closers.append(bridge.stop)
        for settings in self.config.upstreams:
            connector = UpstreamConnector(self.config, settings, self.committer, self.reads)
            connector.start()
            self._closers.append(connector.stop)

    async def _start_operator_exchange(self) -> None:
        """The whitelist, the relay listener for other operators, and the outbound queue worker."""
        if self.config.whitelist is not None and self.once:  # other workers get the domains from gateway/process
            from gateway.trust.whitelist import WhitelistLoader

            loader = WhitelistLoader(self.config.whitelist, self.config.trusted)
            await loader.start()
            self._whitelist = loader
            self._closers.append(loader.stop)
        if self.config.relay is not None:
            from gateway.smtp.relay import start_relay_listener

            self._servers.append(await start_relay_listener(self.config, self.committer))
            self.listeners.up("relay", self.config.relay.listen)
        if self.config.outbound is not None and self.once:
            from gateway.smtp.outbound import OutboundWorker

            worker = OutboundWorker(self.config, self.committer, self.hub)
            worker.start()
            self._closers.append(worker.stop)

    async def _start_imap(self) -> None:
        if not (self.config.imap or self.config.imaps):
            return
        try:
            from gateway.imap.engine.server import start_imap
        except ImportError:
            log.warning("imap_unavailable", reason="gateway.imap is not installed")
            return
        service = await start_imap(self.config, self.sessions, self.authenticator, self.hub)
        service.context.extra["committer"] = self.committer  # IMAP writes share SMTP's commits and their fsync
        self._imap = service
        self._closers.append(service.close)
        for name, port in service.ports.items():
            self.listeners.up(name, port)

    # --- graceful stop (SIGTERM) ----------------------------------------------------------------------------
    async def drain(self, grace: float) -> None:
        """Stop accepting, end IMAP sessions with ``BYE``, answer ``421`` to idle SMTP sessions, and give the
        SMTP transactions in DATA up to ``grace`` seconds to be committed and answered; :meth:`stop` follows.

        A transaction still in DATA after ``grace`` is cut without a reply: nothing of it was acknowledged.
        """
        self.listeners.drain()  # /readyz answers 503 from now on
        loop = asyncio.get_running_loop()
        for server in [*getattr(loop, "servers", ()), *self._servers]:
            server.close()
        if self._imap is not None:  # closing the IMAP service sends BYE to its sessions
            service, self._imap = self._imap, None
            self._closers.remove(service.close)
            await service.close()
        sessions = {s for s in [*getattr(loop, "protocols", ()), *self._smtp_sessions]
                    if isinstance(s, GatewaySMTP) and s.transport is not None}
        deadline = time.monotonic() + grace
        results = await asyncio.gather(*(self._end_smtp(s, deadline) for s in sessions), return_exceptions=True)
        log.info("drained", smtp_sessions=len(sessions), cut=sum(1 for r in results if r is False))

    @staticmethod
    async def _end_smtp(session: GatewaySMTP, deadline: float) -> bool:
        """End one SMTP session; False when a DATA transaction had to be cut."""
        done = session.data_done
        if done is not None:
            try:
                await asyncio.wait_for(done.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                if isinstance(session.transport, asyncio.Transport):
                    session.transport.abort()
                return False
        transport = session.transport
        if transport is None or transport.is_closing():
            return True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(session.push(SHUTTING_DOWN), 5.0)
        if session.transport is not None:
            session.transport.close()
        return True

    # --- reload (SIGHUP) ------------------------------------------------------------------------------------
    async def reload(self, new: Config) -> None:
        """Apply a validated configuration without closing anything: new connections get the new certificate
        and limits, open sessions keep theirs; the whitelist is read again. Listener addresses, the store and
        the once-only workers' settings take a restart (logged by key)."""
        old = self.config
        new = dataclasses.replace(new, trusted=old.trusted)
        needs_restart = restart_keys(old, new)
        if needs_restart:
            log.warning("reload_needs_restart", keys=needs_restart)
        if old.tls != new.tls:
            reload_server_contexts(old.tls, new.tls)
        if (old.log_level, old.log_file) != (new.log_level, new.log_file):
            logs.configure(new.log_level, path=new.log_file)
        self.config = new
        for handler in self._handlers:
            handler.config = new
        self.authenticator.apply(new)
        if self._whitelist is not None and new.whitelist is not None:
            self._whitelist.settings = new.whitelist
            await self._whitelist.refresh()
        log.info("reloaded", changed=changed_keys(old, new))

    async def reload_from(self, path: Path) -> None:
        """Read ``path`` again and apply it; an invalid file is refused, named in one log line, and ignored."""
        try:
            _, new = read_config(path)
        except ConfigError as exc:
            log.error("reload_refused", reason=str(exc))
            return
        await self.reload(new)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for close in reversed(self._closers):
            await close()
        await self.committer.stop()
        await self.authenticator.close()
        await self.engine.dispose()


async def serve(config: Config, on_ready: Callable[[Gateway], None] | None = None,
                config_path: Path | None = None) -> None:
    """Run one process until SIGTERM or SIGINT, then drain (see :meth:`Gateway.drain`); SIGHUP reloads
    ``config_path`` (``[gateway] workers = 1``; more workers run under gateway/process/supervisor.py)."""
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[None]] = set()

    def hang_up() -> None:
        if config_path is not None:
            task = loop.create_task(gateway.reload_from(config_path))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, hang_up)
        loop.add_signal_handler(signal.SIGUSR1, logs.reopen)  # log rotation
    await gateway.start()
    heap = start_serving_heap()
    log.info("ready", hostname=config.hostname, workers=1)
    if on_ready is not None:
        on_ready(gateway)
    await stop.wait()
    log.info("stopping", grace=gateway.config.stop_grace)
    await gateway.drain(gateway.config.stop_grace)
    await gateway.stop()
    heap.cancel()
    log.info("stopped")
