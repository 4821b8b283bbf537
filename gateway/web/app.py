"""The console's aiohttp application: security headers, sessions, CSRF, roles, and the HTTPS listener.

Every response carries a strict Content-Security-Policy (no inline script or style: the only script and style
sheet are files of gateway/web/static), ``X-Frame-Options``, ``nosniff`` and ``no-store``. Every page but the
login needs a live session (gateway/web/accounts.py), every POST the session's CSRF token, and every page a
role (``secretariat``, ``dmp``, ``admin``; an admin may open everything). Like gateway/ops/http.py, each worker
process serves the listening socket; nothing is kept in the process between requests.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import structlog
from aiohttp import web
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth.throttle import LoginThrottle
from gateway.config import Config, WebSettings
from gateway.web import accounts
from gateway.web.models import ADMIN, DMP, SECRETARIAT, ConsoleSession

log = structlog.get_logger("gateway.web")

HERE = Path(__file__).parent
SESSION_COOKIE = "gw_console"
LOGIN_COOKIE = "gw_login"
OIDC_COOKIE = "gw_oidc"
MAX_BODY = 64 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; frame-src 'self'; "
       "form-action 'self'; frame-ancestors 'self'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP, "X-Frame-Options": "SAMEORIGIN", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000",
}
PARIS = ZoneInfo("Europe/Paris")
#: Which roles open which first path segment (an admin opens all).
ACCESS: dict[str, frozenset[str]] = {
    "a-classer": frozenset({SECRETARIAT}), "dossiers": frozenset({SECRETARIAT, DMP}),
    "documents": frozenset({SECRETARIAT, DMP}), "dmp": frozenset({DMP}),
    "identites": frozenset({SECRETARIAT}), "conversations": frozenset({SECRETARIAT}),
    "boites": frozenset(), "reglages": frozenset(), "journal": frozenset(),
    "tableau-de-bord": frozenset({SECRETARIAT, DMP}),
    "deconnexion": frozenset({SECRETARIAT, DMP}), "": frozenset({SECRETARIAT, DMP}),
}
PUBLIC = ("connexion", "static")
NAV = [("a-classer", "À classer"), ("dossiers", "Dossiers"), ("dmp", "DMP"), ("identites", "Identités"),
       ("conversations", "Conversations"), ("boites", "Boîtes"), ("tableau-de-bord", "Tableau de bord"),
       ("journal", "Journal"), ("reglages", "Réglages")]
KEY: web.AppKey[Console] = web.AppKey("console")
PERSON: web.RequestKey[accounts.Person] = web.RequestKey("person", accounts.Person)
FLASH: web.RequestKey[str | None] = web.RequestKey("flash")


def may_open(role: str, segment: str) -> bool:
    return role == ADMIN or role in ACCESS.get(segment, frozenset())


def date_fr(value: datetime | str | None, with_time: bool = True) -> str:
    """A date as French staff read it: ``01/12/2026 14:05`` (Paris time), or ``28/03/1979`` for an ISO date."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and len(value) > 10 and value[4:5] == "-" and value[10:11] == "T":
        text = value
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return text
    if isinstance(value, str):
        if len(value) == 10 and value[4] == "-":
            return f"{value[8:10]}/{value[5:7]}/{value[0:4]}"
        if len(value) >= 8 and value[:8].isdigit():
            text = f"{value[6:8]}/{value[4:6]}/{value[0:4]}"
            if with_time and len(value) >= 12 and value[8:12].isdigit():
                text += f" {value[8:10]}:{value[10:12]}"
            return text
        return value
    local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(PARIS)  # the store keeps UTC
    return local.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


@dataclass
class Console:
    """What every request handler needs: the settings, the store, the templates and the login throttle."""

    config: Config
    settings: WebSettings
    sessions: async_sessionmaker[AsyncSession]
    templates: jinja2.Environment
    throttle: LoginThrottle

    def render(self, request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
        person: accounts.Person | None = request.get(PERSON)
        nav = [(path, label) for path, label in NAV if person is not None and may_open(person.role, path)]
        body = self.templates.get_template(template).render(
            person=person, nav=nav, here=request.path.strip("/").split("/")[0], flash=request.get(FLASH),
            csrf=person.csrf if person else "", **values)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    async def flash(self, request: web.Request, message: str) -> None:
        """A sentence shown once on the next page (kept on the session row, so any worker shows it)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        token = accounts.unsign(self.settings.secret, cookie)
        if token is None:
            return
        async with self.sessions() as session, session.begin():
            await session.execute(update(ConsoleSession).where(
                ConsoleSession.token_hash == accounts.token_hash(token)).values(flash=message[:500]))


def person(request: web.Request) -> accounts.Person:
    found = request[PERSON]
    return found


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if isinstance(response, web.HTTPException) and response.status >= 400 and not response.text:
        response.text = f"{response.status} {response.reason}"
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def _session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The session, its role and CSRF checks; the only gate every page passes."""
    console = request.app[KEY]
    segment = request.path.strip("/").split("/")[0]
    if segment in PUBLIC or request.match_info.http_exception is not None:
        return await handler(request)  # the login, static files, and "404" for what is not a page
    async with console.sessions() as session, session.begin():
        found = await accounts.resume(session, console.settings.secret, request.cookies.get(SESSION_COOKIE),
                                      console.settings.idle_timeout)
        if found is not None:
            request[FLASH] = await accounts.take_flash(session, request.cookies.get(SESSION_COOKIE),
                                                         console.settings.secret)
    if found is None:
        if request.method == "GET":
            raise web.HTTPSeeOther("/connexion")
        raise web.HTTPUnauthorized(text="Session absente ou expirée : reconnectez-vous.")
    request[PERSON] = found
    if request.method == "POST":  # one log line per action, with who and from where (no health data)
        resource = request.match_info.route.resource
        log.info("console_action", client=request.remote, user_id=found.user_id,
                 route=resource.canonical if resource is not None else request.path)
    if not may_open(found.role, segment):
        log.info("console_forbidden", client=request.remote, user_id=found.user_id, page=segment)
        return console.render(request, "refus.html", status=403)
    if request.method == "POST":
        form = await request.post()
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(given, found.csrf):
            log.info("console_csrf_refused", client=request.remote, user_id=found.user_id)
            raise web.HTTPForbidden(text="Jeton de formulaire (CSRF) absent ou invalide : rechargez la page.")
    return await handler(request)


def build_app(config: Config, sessions: async_sessionmaker[AsyncSession]) -> web.Application:
    """The console application over ``sessions`` (read-write: pages record events)."""
    from gateway.web import login, pages

    assert config.web is not None
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                   autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                                   undefined=jinja2.StrictUndefined)
    templates.filters["date_fr"] = date_fr
    limits = config.limits
    console = Console(config, config.web, sessions, templates,
                      LoginThrottle(limits.failed_logins, limits.failed_login_window, limits.failed_logins_per_address))
    app = web.Application(middlewares=[_headers, _session], client_max_size=MAX_BODY)
    app[KEY] = console
    app.router.add_static("/static", HERE / "static", follow_symlinks=False)
    login.routes(app)
    pages.routes(app)
    return app


@dataclass
class WebService:
    port: int = 0
    runner: web.AppRunner | None = None

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def start_web(config: Config, sessions: async_sessionmaker[AsyncSession]) -> WebService:
    """Serve the console on ``[web] listen`` over HTTPS with ``[tls]``'s certificate (TLS ≥ 1.2); none: idle."""
    service = WebService()
    if config.web is None:
        return service
    context = None
    if config.web.tls:
        from gateway.tlsctx import server_context

        context = server_context(config.tls)
    runner = web.AppRunner(build_app(config, sessions), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.web.listen.host, config.web.listen.port, ssl_context=context,
                           reuse_address=True)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    service.runner = runner
    service.port = int(runner.addresses[0][1])
    log.info("listening", service="web", address=f"{config.web.listen.host}:{service.port}", tls=context is not None)
    return service

