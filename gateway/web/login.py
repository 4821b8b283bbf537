"""Signing in and out: a local account (password + TOTP), or Pro Santé Connect (OIDC code flow with PKCE).

The login form has its own CSRF token before any session exists: a random value in a signed cookie and in the
form, which must agree (double submit). Failed local logins count in the store with SMTP's and IMAP's
(gateway/auth/throttle.py, account ``console:<name>``), so every worker and instance refuses a guesser alike.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import hmac
import secrets

import structlog
from aiohttp import web

from gateway.auth.throttle import Block
from gateway.codes.rules import Rule
from gateway.store.events import record
from gateway.web import accounts, oidc
from gateway.web.app import KEY, LOGIN_COOKIE, PERSON, SESSION_COOKIE, Console

log = structlog.get_logger("gateway.web")


def set_session_cookie(response: web.StreamResponse, value: str) -> None:
    response.set_cookie(SESSION_COOKIE, value, path="/", secure=True, httponly=True, samesite="Strict")


def _login_page(console: Console, request: web.Request, error: str | None = None,
                status: int = 200) -> web.Response:
    # The same token while the browser holds one: two tabs (or a stray request) do not invalidate each other.
    token = accounts.unsign(console.settings.secret, request.cookies.get(LOGIN_COOKIE)) or secrets.token_urlsafe(24)
    response = console.render(request, "connexion.html", status=status, login_csrf=token, error=error,
                              psc=console.settings.oidc is not None)
    response.set_cookie(LOGIN_COOKIE, accounts.sign(console.settings.secret, token), path="/connexion", secure=True,
                        httponly=True, samesite="Strict")
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    return _login_page(request.app[KEY], request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    form = await request.post()
    given = form.get("csrf")
    expected = accounts.unsign(console.settings.secret, request.cookies.get(LOGIN_COOKIE))
    if not isinstance(given, str) or expected is None or not hmac.compare_digest(given, expected):
        raise web.HTTPForbidden(text="Jeton de formulaire (CSRF) absent ou invalide : rechargez la page.")
    username = str(form.get("identifiant", "")).strip().lower()[:64]
    password = str(form.get("mot_de_passe", ""))[:1024]
    code = str(form.get("code", ""))[:16]
    client = request.remote or "?"
    reservation = await console.throttle.reserve(console.sessions, client, f"console:{username}")
    if isinstance(reservation, Block):
        log.info("console_login", outcome="throttled", client=client)
        return _login_page(console, request, f"Trop d'essais manqués : réessayez dans {int(reservation.retry_after)}"
                           " secondes.", status=429)
    try:
        async with console.sessions() as session, session.begin():
            user = await accounts.check_local(session, username, password, code)
            if user is None:
                await record(session, "console.login", "refused", rule=Rule.R18, actor=f"console:{username}",
                             method="password+totp", client=client)
            else:
                cookie = await accounts.open_session(session, user, "password+totp", console.settings.secret, client,
                                                     console.settings.idle_timeout)
    except BaseException:
        console.throttle.release(reservation, console.sessions)
        raise
    if user is None:
        await console.throttle.failure(console.sessions, reservation)
        log.info("console_login", outcome="refused", client=client)
        return _login_page(console, request, "Identifiant, mot de passe ou code à usage unique incorrect.",
                           status=401)
    await console.throttle.success(console.sessions, reservation)
    log.info("console_login", outcome="ok", client=client, user_id=user.id)
    response = web.HTTPSeeOther("/")
    set_session_cookie(response, cookie)
    response.del_cookie(LOGIN_COOKIE, path="/connexion")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    person = request[PERSON]
    async with console.sessions() as session, session.begin():
        await accounts.close_session(session, console.settings.secret, request.cookies.get(SESSION_COOKIE))
        await record(session, "console.logout", "ok", rule=Rule.R18, actor=person.actor, user_id=person.user_id)
    response = web.HTTPSeeOther("/connexion")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    role = request[PERSON].role
    raise web.HTTPSeeOther("/dmp" if role == "dmp" else "/a-classer")


def routes(app: web.Application) -> None:
    app.router.add_get("/connexion", login_form)
    app.router.add_post("/connexion", login_submit)
    app.router.add_post("/deconnexion", logout)
    app.router.add_get("/", home)
    oidc.routes(app)
