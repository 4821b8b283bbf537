"""The operations HTTP listener: ``/metrics``, ``/healthz``, ``/readyz`` and mail-client autoconfiguration.

``[metrics] listen`` serves Prometheus and the probes, and the autoconfiguration documents too unless
``[autoconfig] listen`` gives them a listener of their own (public, optionally HTTPS with ``[tls]``'s
certificate, and without metrics or readiness details). No access log is written: Thunderbird puts the address
in the query string, and a patient's address is an INS.

With several worker processes every worker serves the same listening socket (the supervisor binds it, see
gateway/process/loop.py) and any of them answers a scrape with the values of all (multiprocess mode, see
gateway/ops/metrics.py).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import Config, Listen
from gateway.ops import autoconfig, metrics
from gateway.ops.health import Listeners, migration_heads, readiness

log = structlog.get_logger("gateway.ops")

#: Largest request body any endpoint reads (Autodiscover requests are the only bodies).
MAX_BODY = autoconfig.MAX_REQUEST
XML = "application/xml"
_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class _Forward(Collector):
    """This process's own metrics (no multiprocess folder): the gateway registry as it is."""

    def collect(self) -> Any:
        return metrics.REGISTRY.collect()


@dataclass
class HttpService:
    """The running listener(s); ``port`` is the metrics listener's (or the autoconfig one's when alone)."""

    port: int = 0
    autoconfig_port: int | None = None
    runners: list[web.AppRunner] = field(default_factory=list)

    async def close(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners.clear()


class _Views:
    def __init__(self, config: Config, sessions: async_sessionmaker[AsyncSession], listeners: Listeners,
                 heads: frozenset[str]) -> None:
        self.config = config
        self.sessions = sessions
        self.listeners = listeners
        self.heads = heads
        self.store = metrics.StoreCollector(sessions)

    # --- probes -------------------------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True}, headers=_HEADERS)

    async def readyz(self, request: web.Request) -> web.Response:
        result = await readiness(self.sessions, self.listeners, self.heads)
        body = json.dumps({"ready": result.ok, "checks": result.checks}, ensure_ascii=False)
        if not result.ok:
            log.info("not_ready", failing=[k for k, v in result.checks.items() if not v["ok"]])
        return web.Response(text=body, status=200 if result.ok else 503, content_type="application/json",
                            headers=_HEADERS)

    # --- Prometheus -----------------------------------------------------------------------------------------------
    def _render(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        folder = metrics.multiprocess_dir()
        if folder is not None:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(registry, path=folder)
        else:
            registry.register(_Forward())
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        registry.register(self.store)
        return bytes(generate_latest(registry))

    async def metrics(self, request: web.Request) -> web.Response:
        await self.store.refresh()
        body = await asyncio.to_thread(self._render)  # multiprocess mode reads every worker's file
        response = web.Response(body=body, headers=_HEADERS)
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    # --- autoconfiguration --------------------------------------------------------------------------------------
    def _requested_domain(self, request: web.Request) -> str | None:
        """The domain the client asks about: its address (``emailaddress``) or the ``autoconfig.`` host name."""
        address = request.query.get("emailaddress")
        if address is not None:
            return autoconfig.domain_of(address, self.config) or ""
        host = (request.host or "").rsplit(":", 1)[0].lower().removeprefix("autoconfig.")
        return host if host in autoconfig.served_domains(self.config) else None

    async def thunderbird(self, request: web.Request) -> web.Response:
        domain = self._requested_domain(request)
        if domain == "":
            return web.Response(status=404, text="This address is not served here.\n", headers=_HEADERS)
        body = autoconfig.thunderbird(self.config, domain)
        return web.Response(body=body, content_type=XML, charset="utf-8", headers=_HEADERS)

    async def autodiscover(self, request: web.Request) -> web.Response:
        try:
            if request.content_length is not None and request.content_length > MAX_BODY:
                raise autoconfig.AutodiscoverError(autoconfig.INVALID_REQUEST, "Invalid Request", 413)
            body = await request.content.read(MAX_BODY + 1)
            document = autoconfig.autodiscover(self.config, body)
            status = 200
        except autoconfig.AutodiscoverError as error:
            document, status = autoconfig.autodiscover_error(error), error.status
        return web.Response(body=document, status=status, content_type="text/xml", charset="utf-8",
                            headers=_HEADERS)


def _app(views: _Views, *, ops: bool, autoconf: bool) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    routes = [web.get("/healthz", views.healthz)]
    if ops:
        routes += [web.get("/readyz", views.readyz), web.get("/metrics", views.metrics)]
    if autoconf:
        routes += [web.get("/.well-known/autoconfig/mail/config-v1.1.xml", views.thunderbird),
                   web.get("/mail/config-v1.1.xml", views.thunderbird)]
        for path in ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"):
            routes.append(web.post(path, views.autodiscover))
    app.add_routes(routes)
    return app


async def _serve(app: web.Application, listen: Listen, ssl_context: Any = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, listen.host, listen.port, ssl_context=ssl_context, reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    return runner, port


async def start_http(config: Config, sessions: async_sessionmaker[AsyncSession],
                     registry: Listeners) -> HttpService:
    """Start the ``[metrics]`` and ``[autoconfig]`` listeners the configuration asks for (none: an idle service).

    ``registry`` is the daemon's :class:`~gateway.ops.health.Listeners`, which ``/readyz`` reads.
    """
    service = HttpService()
    if config.metrics is None and config.autoconfig is None:
        return service
    views = _Views(config, sessions, registry, await asyncio.to_thread(migration_heads))
    separate = config.autoconfig is not None and config.autoconfig.listen is not None
    try:
        if config.metrics is not None:
            runner, service.port = await _serve(
                _app(views, ops=True, autoconf=config.autoconfig is not None and not separate), config.metrics.listen)
            service.runners.append(runner)
            log.info("listening", service="metrics", address=f"{config.metrics.listen.host}:{service.port}")
            if config.autoconfig is not None and not separate:
                service.autoconfig_port = service.port
        if config.autoconfig is not None and config.autoconfig.listen is not None:
            context = None
            if config.autoconfig.tls:
                from gateway.tlsctx import server_context

                context = server_context(config.tls)
            runner, port = await _serve(_app(views, ops=False, autoconf=True), config.autoconfig.listen, context)
            service.runners.append(runner)
            service.autoconfig_port = port
            service.port = service.port or port
            log.info("listening", service="autoconfig", address=f"{config.autoconfig.listen.host}:{port}",
                     tls=config.autoconfig.tls)
    except BaseException:
        await service.close()
        raise
    return service
