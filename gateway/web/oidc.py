"""Pro Santé Connect (or any OpenID Connect provider): authorization code flow with PKCE (RFC 7636).

The provider is found from its discovery document (OpenID Connect Discovery 1.0, section 4). The login state
(``state`` → PKCE verifier and nonce) is a row of the store, and the browser holds ``state`` in a signed cookie,
so any worker finishes a login another began, and a login cannot be finished in another browser. The ID token
is checked (signature against the provider's JWKS, issuer, audience, expiry, nonce) before its subject is
looked up among console accounts (``console-user add --psc-id``): a PSC identity with no account gets nothing.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp
import structlog
from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select

from gateway.codes.rules import Rule
from gateway.config import OidcSettings
from gateway.store.events import record
from gateway.web import accounts
from gateway.web.app import KEY, OIDC_COOKIE, Console
from gateway.web.models import ConsoleLoginState

log = structlog.get_logger("gateway.web")

CALLBACK = "/connexion/psc/retour"
MAX_DOCUMENT = 256 * 1024
ALGORITHMS = ["RS256", "PS256", "ES256"]


class OidcError(Exception):
    """The provider's answer cannot be used, in one sentence."""


def _context(settings: OidcSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _get_json(client: aiohttp.ClientSession, url: str, **kwargs: Any) -> dict[str, Any]:
    async with client.request(kwargs.pop("method", "GET"), url, **kwargs) as response:
        body = await response.content.read(MAX_DOCUMENT + 1)
        if len(body) > MAX_DOCUMENT:
            raise OidcError(f"The provider's answer at {url} is too large.")
        if response.status != 200:
            raise OidcError(f"The provider answered {response.status} at {url}.")
        try:
            value = json.loads(body)
        except ValueError:
            raise OidcError(f"The provider's answer at {url} is not JSON.") from None
        if not isinstance(value, dict):
            raise OidcError(f"The provider's answer at {url} is not a JSON object.")
        return value


async def discover(settings: OidcSettings) -> dict[str, Any]:
    """The provider's discovery document, checked to be about the configured issuer."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_context(settings)),
                                     timeout=aiohttp.ClientTimeout(total=15)) as client:
        document = await _get_json(client, f"{settings.issuer}/.well-known/openid-configuration")
    if str(document.get("issuer", "")).rstrip("/") != settings.issuer:
        raise OidcError("The discovery document names another issuer.")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not str(document.get(key, "")).startswith("https://"):
            raise OidcError(f"The discovery document has no https {key}.")
    return document


def pkce_pair() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636 section 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def start(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[KEY]
    settings = console.settings.oidc
    if settings is None:
        raise web.HTTPNotFound(text="La connexion Pro Santé Connect n'est pas configurée.")
    try:
        document = await discover(settings)
    except (OidcError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("console_oidc_unavailable", reason=str(exc))
        raise web.HTTPBadGateway(text="Pro Santé Connect ne répond pas ; réessayez ou utilisez un compte local.") \
            from None
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    async with console.sessions() as session, session.begin():
        session.add(ConsoleLoginState(state=state, verifier=verifier, nonce=nonce, created_at=accounts.now()))
    query = urlencode({"response_type": "code", "client_id": settings.client_id, "scope": settings.scope,
                       "redirect_uri": settings.public_url + CALLBACK, "state": state, "nonce": nonce,
                       "code_challenge": challenge, "code_challenge_method": "S256"})
    response = web.HTTPSeeOther(f"{document['authorization_endpoint']}?{query}")
    # Lax: the provider sends the browser back with a top-level GET from its own site.
    response.set_cookie(OIDC_COOKIE, accounts.sign(console.settings.secret, state), path="/connexion", secure=True,
                        httponly=True, samesite="Lax", max_age=600)
    raise response


async def _exchange(settings: OidcSettings, document: dict[str, Any], code: str, verifier: str) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": settings.public_url + CALLBACK,
            "client_id": settings.client_id, "code_verifier": verifier}
    headers = {}
    if settings.client_secret:  # client_secret_basic, both parts form-encoded first (RFC 6749 section 2.3.1)
        pair = f"{quote_plus(settings.client_id)}:{quote_plus(settings.client_secret)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_context(settings)),
                                     timeout=aiohttp.ClientTimeout(total=15)) as client:
        tokens = await _get_json(client, document["token_endpoint"], method="POST", data=form, headers=headers)
        jwks = await _get_json(client, document["jwks_uri"])
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise OidcError("The token answer has no ID token.")
    try:
        token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=ALGORITHMS)  # type: ignore[arg-type]
    except (JoseError, ValueError) as exc:
        raise OidcError(f"The ID token's signature cannot be verified ({type(exc).__name__}).") from None
    return dict(token.claims)


def check_claims(claims: dict[str, Any], settings: OidcSettings, nonce: str) -> str:
    """The subject of checked ID token claims (OpenID Connect Core 1.0 section 3.1.3.7)."""
    registry = jwt.JWTClaimsRegistry(iss={"essential": True, "value": settings.issuer},
                                     aud={"essential": True, "value": settings.client_id},
                                     exp={"essential": True}, nonce={"essential": True, "value": nonce})
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise OidcError(f"The ID token is not for this console or has expired ({type(exc).__name__}).") from None
    subject = claims.get(settings.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise OidcError(f"The ID token has no {settings.subject_claim} claim.")
    return subject


async def finish(request: web.Request) -> web.StreamResponse:
    console: Console = request.app[KEY]
    settings = console.settings.oidc
    if settings is None:
        raise web.HTTPNotFound(text="La connexion Pro Santé Connect n'est pas configurée.")
    state = request.query.get("state", "")[:64]
    code = request.query.get("code", "")[:2048]
    expected = accounts.unsign(console.settings.secret, request.cookies.get(OIDC_COOKIE))
    if not state or expected != state:
        raise web.HTTPForbidden(text="Cette connexion n'a pas été commencée dans ce navigateur ; recommencez.")
    async with console.sessions() as session, session.begin():
        pending = (await session.execute(select(ConsoleLoginState).where(
            ConsoleLoginState.state == state))).scalar_one_or_none()
        await session.execute(delete(ConsoleLoginState).where(ConsoleLoginState.state == state))
    if pending is None or not code:
        raise web.HTTPForbidden(text="Cette connexion a expiré ou a été refusée ; recommencez.")
    client = request.remote or "?"
    try:
        document = await discover(settings)
        subject = check_claims(await _exchange(settings, document, code, pending.verifier), settings, pending.nonce)
    except (OidcError, aiohttp.ClientError, TimeoutError) as exc:
        log.info("console_login", outcome="refused", method="psc", client=client, reason=str(exc))
        raise web.HTTPForbidden(text="Pro Santé Connect n'a pas confirmé votre identité ; recommencez.") from None
    async with console.sessions() as session, session.begin():
        user = await accounts.user_for_psc(session, subject)
        if user is None:
            await record(session, "console.login", "refused", rule=Rule.R18, actor="psc", method="psc",
                         client=client, reason="no console account for this PSC identity")
        else:
            cookie = await accounts.open_session(session, user, "psc", console.settings.secret, client,
                                                 console.settings.idle_timeout)
    if user is None:
        log.info("console_login", outcome="refused", method="psc", client=client)
        raise web.HTTPForbidden(text="Votre identité Pro Santé Connect n'a pas de compte sur cette console ; "
                                     "demandez-le à l'administrateur.")
    from gateway.web.login import set_session_cookie

    # A page of our own, then the console: the session cookie is SameSite=Strict, and this request came from
    # the provider's site; the next one comes from ours.
    response = console.render(request, "connecte.html")
    set_session_cookie(response, cookie)
    response.del_cookie(OIDC_COOKIE, path="/connexion")
    return response


def routes(app: web.Application) -> None:
    app.router.add_get("/connexion/psc", start)
    app.router.add_get(CALLBACK, finish)
