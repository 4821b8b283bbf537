"""A local Pro Santé Connect for development and tests: OpenID Connect over HTTPS, with fault modes.

It serves what the gateway, ``gateway token`` and the web console use of the national provider, under
Keycloak-like paths of ``/auth/realms/esante-wallet``: the discovery document (OpenID Connect Discovery 1.0),
the JWKS (RFC 7517), the authorization endpoint (code flow with PKCE, RFC 7636; S256 only), the token endpoint
(authorization code and refresh token grants, refresh tokens rotated), userinfo, introspection (RFC 7662) and
revocation (RFC 7009). Access tokens are RS256 JWTs carrying PSC's claims (``SubjectNameID``,
``preferred_username``: the national id, ``8`` + RPPS).

A login needs no person: ``login_hint`` (a test user's name or national id) on the authorization request
answers the redirect at once; without it a page lists the test professionals to choose from. The professionals
and clients come from a TOML file (``--data``; :data:`DEFAULT_DATA` otherwise).

Admin endpoints (loopback development only, no authentication): ``POST /admin/rotate`` (a new signing key;
``?drop=1`` also drops the old ones from the JWKS), ``POST /admin/fault`` with ``{"mode": "down"}`` (every
provider endpoint answers 503) or ``{"mode": "up"}``, and ``POST /admin/mint`` (a token with chosen claims,
for refusal tests).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import html
import secrets
import ssl
import time
import tomllib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

REALM = "/auth/realms/esante-wallet"
OIDC = f"{REALM}/protocol/openid-connect"
#: Seconds an authorization code stays usable (RFC 6749 4.1.2 recommends at most 10 minutes).
CODE_TTL = 60.0
SCOPES = ("openid", "scope_all")

DEFAULT_DATA = """\
# Test professionals (the same national ids as the Annuaire Santé simulator's) and OIDC clients.
[[professional]]
user = "marcel"
national_id = "801234534765"
family = "CAMPARINI"
given = "Marcel"
profession = "21"
specialty = "SM03"

[[professional]]
user = "jean"
national_id = "801234567897"
family = "MEDECIN"
given = "Jean"
profession = "10"
specialty = "SM54"

[[professional]]
user = "claire"
national_id = "810100000011"
family = "SOIGNANT"
given = "Claire"
profession = "60"

[[professional]]
user = "paul"
national_id = "899700000019"
family = "ABSENT"
given = "Paul"
profession = "10"
specialty = "SM26"

[[client]]
client_id = "gateway"
secret = "gateway-dev-secret"

[[client]]
client_id = "web-console"
secret = "web-console-dev-secret"

[[client]]
client_id = "mail-client"
# no secret: a public client (a mail program), PKCE required
"""


@dataclass(frozen=True)
class Professional:
    user: str
    national_id: str
    family: str
    given: str
    profession: str = ""
    specialty: str = ""


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str = ""
    #: Allowed redirect URIs; empty = any http(s) URI (development).
    redirect_uris: tuple[str, ...] = ()


class DataError(ValueError):
    """The data file is not what the simulator reads (one sentence naming the entry)."""


def load_data(text: str) -> tuple[list[Professional], list[Client]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"The data file is not valid TOML: {exc}.") from None
    pros, clients = [], []
    for i, p in enumerate(data.get("professional", [])):
        try:
            pros.append(Professional(str(p["user"]), str(p["national_id"]), str(p["family"]), str(p["given"]),
                                     str(p.get("profession", "")), str(p.get("specialty", ""))))
        except (KeyError, TypeError):
            raise DataError(f"professional {i + 1} needs user, national_id, family and given.") from None
    for i, c in enumerate(data.get("client", [])):
        try:
            clients.append(Client(str(c["client_id"]), str(c.get("secret", "")),
                                  tuple(str(u) for u in c.get("redirect_uris", []))))
        except (KeyError, TypeError):
            raise DataError(f"client {i + 1} needs client_id.") from None
    if not pros or not clients:
        raise DataError("The data file needs at least one [[professional]] and one [[client]].")
    return pros, clients


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class _Grant:
    client_id: str
    national_id: str
    scope: str
    redirect_uri: str = ""
    challenge: str = ""
    nonce: str = ""
    expires: float = 0.0


@dataclass
class Simulator:
    """The provider's state: keys, pending codes, refresh tokens, revocations, fault mode."""

    professionals: list[Professional]
    clients: list[Client]
    token_ttl: float = 300.0
    refresh_ttl: float = 3600.0
    keys: list[RSAKey] = field(default_factory=list)
    down: bool = False
    url: str = ""
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _refresh: dict[str, _Grant] = field(default_factory=dict)
    _revoked: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None
    #: Requests served per path (tests check that cached keys are not fetched again).
    hits: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.keys:
            self.rotate()

    @property
    def issuer(self) -> str:
        return self.url + REALM

    # --- keys ------------------------------------------------------------------------------------------------
    def rotate(self, drop: bool = False) -> str:
        key = RSAKey.generate_key(2048, parameters={"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"})
        self.keys = [key] if drop else [*self.keys[-2:], key]  # the two previous keys stay published
        return str(key.kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.keys]}

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        key = key or self.keys[-1]
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)

    # --- tokens ----------------------------------------------------------------------------------------------
    def professional(self, hint: str) -> Professional | None:
        hint = hint.strip().lower()
        return next((p for p in self.professionals if hint in (p.user.lower(), p.national_id.lower())), None)

    def client(self, client_id: str) -> Client | None:
        return next((c for c in self.clients if c.client_id == client_id), None)

    def access_claims(self, pro: Professional, client_id: str, scope: str, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {
            "iss": self.issuer, "sub": pro.national_id, "aud": client_id, "azp": client_id, "typ": "Bearer",
            "iat": int(now), "nbf": int(now), "exp": int(now + self.token_ttl), "jti": uuid.uuid4().hex,
            "scope": scope, "acr": "eidas1", "SubjectNameID": pro.national_id, "preferred_username": pro.national_id,
            "given_name": pro.given, "family_name": pro.family,
        }

    def _tokens(self, grant: _Grant) -> dict[str, Any]:
        pro = self.professional(grant.national_id)
        assert pro is not None
        now = time.time()
        refresh = secrets.token_urlsafe(32)
        self._refresh[refresh] = _Grant(grant.client_id, grant.national_id, grant.scope,
                                        expires=now + self.refresh_ttl)
        id_claims = {"iss": self.issuer, "sub": pro.national_id, "aud": grant.client_id, "iat": int(now),
                     "exp": int(now + self.token_ttl), "auth_time": int(now), "acr": "eidas1",
                     "preferred_username": pro.national_id, "SubjectNameID": pro.national_id,
                     "given_name": pro.given, "family_name": pro.family}
        if grant.nonce:
            id_claims["nonce"] = grant.nonce
        return {"access_token": self.sign(self.access_claims(pro, grant.client_id, grant.scope, now)),
                "token_type": "Bearer", "expires_in": int(self.token_ttl), "refresh_token": refresh,
                "refresh_expires_in": int(self.refresh_ttl), "id_token": self.sign(id_claims), "scope": grant.scope}

    def decode(self, token: str) -> dict[str, Any] | None:
        """The claims of one of our live access tokens, or None (bad signature, expired, revoked)."""
        for key in self.keys:
            try:
                claims = jwt.decode(token, key, algorithms=["RS256"]).claims
            except (JoseError, ValueError):
                continue
            if claims.get("exp", 0) < time.time() or claims.get("jti") in self._revoked \
                    or claims.get("typ") != "Bearer":  # an ID token is no access token
                return None
            return dict(claims)
        return None

    # --- HTTP ------------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        app.router.add_get(f"{REALM}/.well-known/openid-configuration", self._discovery)
        app.router.add_get(f"{OIDC}/certs", self._certs)
        app.router.add_route("*", f"{OIDC}/auth", self._authorize)
        app.router.add_post(f"{OIDC}/token", self._token)
        app.router.add_route("*", f"{OIDC}/userinfo", self._userinfo)
        app.router.add_post(f"{OIDC}/token/introspect", self._introspect)
        app.router.add_post(f"{OIDC}/revoke", self._revoke)
        app.router.add_get(f"{OIDC}/logout", self._logout)
        app.router.add_post("/admin/rotate", self._admin_rotate)
        app.router.add_post("/admin/fault", self._admin_fault)
        app.router.add_post("/admin/mint", self._admin_mint)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if self.down and not request.path.startswith("/admin/"):
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        response: web.StreamResponse = await handler(request)
        return response

    async def _discovery(self, _request: web.Request) -> web.Response:
        base = self.url + OIDC
        return web.json_response({
            "issuer": self.issuer, "authorization_endpoint": f"{base}/auth", "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo", "jwks_uri": f"{base}/certs",
            "introspection_endpoint": f"{base}/token/introspect", "revocation_endpoint": f"{base}/revoke",
            "end_session_endpoint": f"{base}/logout",
            "response_types_supported": ["code"], "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"], "scopes_supported": list(SCOPES),
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "claims_supported": ["sub", "SubjectNameID", "preferred_username", "given_name", "family_name"],
        })

    async def _certs(self, _request: web.Request) -> web.Response:
        return web.json_response(self.jwks())

    @staticmethod
    def _error(error: str, description: str, status: int = 400) -> web.Response:
        return web.json_response({"error": error, "error_description": description}, status=status)

    def _redirect_ok(self, client: Client, uri: str) -> bool:
        if client.redirect_uris:
            return uri in client.redirect_uris
        parts = urlsplit(uri)
        return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment

    async def _authorize(self, request: web.Request) -> web.Response:
        """RFC 6749 4.1.1 with PKCE (RFC 7636 4.3); ``login_hint`` logs the test user in without a page."""
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        client = self.client(params.get("client_id", ""))
        redirect = params.get("redirect_uri", "")
        if client is None or not self._redirect_ok(client, redirect):
            return web.Response(status=400, text="Unknown client_id or redirect_uri not allowed for it.\n")
        state = params.get("state", "")

        def back(**values: str) -> web.Response:
            if state:
                values["state"] = state
            sep = "&" if "?" in redirect else "?"
            raise web.HTTPFound(redirect + sep + urlencode(values))

        if params.get("response_type") != "code":
            return back(error="unsupported_response_type")
        scope = " ".join(s for s in params.get("scope", "openid").split() if s in SCOPES)
        if "openid" not in scope.split():
            return back(error="invalid_scope", error_description="scope must include openid")
        challenge, method = params.get("code_challenge", ""), params.get("code_challenge_method", "plain")
        if challenge and method != "S256":
            return back(error="invalid_request", error_description="only code_challenge_method=S256")
        if not challenge and not client.secret:
            return back(error="invalid_request", error_description="PKCE is required for public clients")
        pro = self.professional(params.get("login_hint", "") or params.get("user", ""))
        if pro is None:
            return web.Response(content_type="text/html", text=self._login_page(params))
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Grant(client.client_id, pro.national_id, scope, redirect, challenge,
                                   params.get("nonce", ""), time.time() + CODE_TTL)
        return back(code=code)

    def _login_page(self, params: dict[str, str]) -> str:
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in params.items() if k != "user")
        buttons = "".join(f'<button name="user" value="{html.escape(p.user)}">{html.escape(p.given)} '
                          f'{html.escape(p.family)} ({html.escape(p.national_id)})</button><br>'
                          for p in self.professionals)
        return (f"<!doctype html><html lang=fr><meta charset=utf-8><title>Pro Santé Connect (simulateur)</title>"
                f"<h1>Pro Santé Connect — simulateur</h1><p>Choisissez le professionnel :</p>"
                f'<form method="post">{hidden}{buttons}</form></html>')

    def _client_auth(self, request: web.Request, form: Any) -> Client | None:
        """client_secret_basic, client_secret_post, or none (public client; PKCE then does the proving)."""
        header = request.headers.get("Authorization", "")
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        if header.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
        client = self.client(client_id)
        if client is None or (client.secret and not secrets.compare_digest(client.secret, secret)):
            return None
        return client

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client = self._client_auth(request, form)
        if client is None:
            return self._error("invalid_client", "unknown client or wrong secret", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self._codes.pop(str(form.get("code", "")), None)  # single use (RFC 6749 4.1.2)
            if grant is None or grant.expires < time.time() or grant.client_id != client.client_id:
                return self._error("invalid_grant", "unknown, used or expired code")
            if grant.redirect_uri != form.get("redirect_uri", ""):
                return self._error("invalid_grant", "redirect_uri differs from the authorization request")
            verifier = str(form.get("code_verifier", ""))
            if grant.challenge and not secrets.compare_digest(_s256(verifier), grant.challenge):
                return self._error("invalid_grant", "code_verifier does not match the code_challenge")
            return web.json_response(self._tokens(grant), headers={"Cache-Control": "no-store"})
        if grant_type == "refresh_token":
            grant = self._refresh.pop(str(form.get("refresh_token", "")), None)  # rotated: single use
            if grant is None or grant.expires < time.time() or grant.client_id != client.client_id:
                return self._error("invalid_grant", "unknown, used or expired refresh token")
            return web.json_response(self._tokens(grant), headers={"Cache-Control": "no-store"})
        return self._error("unsupported_grant_type", "authorization_code or refresh_token")

    async def _userinfo(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        claims = self.decode(header[7:]) if header.startswith("Bearer ") else None
        if claims is None:
            return web.json_response({"error": "invalid_token"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        pro = self.professional(str(claims.get("SubjectNameID", "")))
        assert pro is not None
        return web.json_response({
            "sub": pro.national_id, "SubjectNameID": pro.national_id, "preferred_username": pro.national_id,
            "given_name": pro.given, "family_name": pro.family,
            "SubjectRefPro": {"codeCivilite": "", "exercices": [
                {"codeProfession": pro.profession, "codeSavoirFaire": pro.specialty}]},
        })

    async def _introspect(self, request: web.Request) -> web.Response:
        form = await request.post()
        client = self._client_auth(request, form)
        if client is None or not client.secret:
            return self._error("invalid_client", "introspection needs a confidential client", 401)
        claims = self.decode(str(form.get("token", "")))
        if claims is None:
            return web.json_response({"active": False})
        return web.json_response({**claims, "active": True, "client_id": claims.get("azp"),
                                  "username": claims.get("preferred_username"), "token_type": "Bearer"})

    async def _revoke(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self._client_auth(request, form) is None:
            return self._error("invalid_client", "unknown client or wrong secret", 401)
        token = str(form.get("token", ""))
        self._refresh.pop(token, None)
        claims = self.decode(token)
        if claims is not None:
            self._revoked.add(str(claims.get("jti")))
        return web.Response(status=200)

    async def _logout(self, request: web.Request) -> web.Response:
        target = request.query.get("post_logout_redirect_uri", "")
        if target.startswith(("http://", "https://")):
            raise web.HTTPFound(target)
        return web.Response(text="Logged out.\n")

    async def _admin_rotate(self, request: web.Request) -> web.Response:
        kid = self.rotate(drop=request.query.get("drop") == "1")
        return web.json_response({"kid": kid, "published": [k.kid for k in self.keys]})

    async def _admin_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in ("down", "up"):
            return self._error("invalid_request", "mode is 'down' or 'up'")
        self.down = mode == "down"
        return web.json_response({"mode": mode})

    async def _admin_mint(self, request: web.Request) -> web.Response:
        """A token for ``user`` with claims overridden (``claims``) or removed (``remove``), and offsets of its
        times in seconds (``exp_in``, ``nbf_in``, ``iat_in``)."""
        body = await request.json()
        if not isinstance(body, dict):
            return self._error("invalid_request", "a JSON object")
        pro = self.professional(str(body.get("user", "")))
        if pro is None:
            return self._error("invalid_request", "unknown user")
        now = time.time()
        claims = self.access_claims(pro, str(body.get("client_id", "mail-client")),
                                    str(body.get("scope", "openid scope_all")), now)
        for name in ("exp", "nbf", "iat"):
            if f"{name}_in" in body:
                claims[name] = int(now + float(body[f"{name}_in"]))
        claims.update(body.get("claims", {}))
        for name in body.get("remove", []):
            claims.pop(name, None)
        return web.json_response({"access_token": self.sign(claims)})

    # --- lifecycle -------------------------------------------------------------------------------------------
    async def start(self, host: str, port: int, context: ssl.SSLContext, public_host: str | None = None) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=context)
        await site.start()
        bound = self._runner.addresses[0][1] if self._runner.addresses else port
        self.url = f"https://{public_host or host}:{bound}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    return context


def _development_certificate(folder: Path, host: str) -> tuple[Path, Path, Path]:
    """A server certificate from the development PKI in ``folder`` (made there when absent)."""
    from gateway.pki import DevelopmentPKI

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "root-ca.crt").exists():
        pki = DevelopmentPKI.load(folder)
    else:
        pki = DevelopmentPKI.create()
        pki.save(folder)
    cert, key = folder / "psc-simulator.crt", folder / "psc-simulator.key"
    if not cert.exists():
        pki.server(host).write(cert, key)
    return cert, key, folder / "ca-bundle.crt"


def main(argv: Sequence[str] | None = None) -> int:
    """``gateway psc-simulator``: run the simulator until interrupted."""
    parser = argparse.ArgumentParser(prog="gateway psc-simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8445", help="host:port (default 127.0.0.1:8445)")
    parser.add_argument("--certificate", type=Path, help="server certificate (PEM, with chain)")
    parser.add_argument("--key", type=Path, help="server private key (PEM)")
    parser.add_argument("--pki-dir", type=Path, default=Path("psc-simulator-pki"),
                        help="without --certificate: the development PKI to issue one from (made when absent)")
    parser.add_argument("--data", type=Path, help="TOML file of [[professional]] and [[client]] (built-in set)")
    parser.add_argument("--token-ttl", type=float, default=300.0, help="access token lifetime, seconds")
    parser.add_argument("--down", action="store_true", help="start in the 'provider down' fault mode")
    parser.add_argument("--rotate-every", type=float, default=0.0, metavar="SECONDS",
                        help="fault mode 'keys rotated': a new signing key every SECONDS, the old ones dropped")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    host = host or "127.0.0.1"
    try:
        pros, clients = load_data(args.data.read_text(encoding="utf-8") if args.data else DEFAULT_DATA)
    except (DataError, OSError) as exc:
        parser.error(str(exc))
    if args.certificate and args.key:
        cert, key, ca = args.certificate, args.key, None
    else:
        cert, key, ca = _development_certificate(args.pki_dir, host)

    async def run() -> None:
        simulator = Simulator(pros, clients, token_ttl=args.token_ttl, down=args.down)
        await simulator.start(host, int(port), server_context(cert, key))
        print(f"PSC simulator: issuer {simulator.issuer}", flush=True)
        print(f"  discovery {simulator.issuer}/.well-known/openid-configuration", flush=True)
        if ca is not None:
            print(f"  trust {ca.resolve()}", flush=True)
        print("  users " + ", ".join(f"{p.user} ({p.national_id})" for p in pros), flush=True)
        try:
            while True:
                if args.rotate_every > 0:
                    await asyncio.sleep(args.rotate_every)
                    print(f"  rotated: signing key {simulator.rotate(drop=True)}", flush=True)
                else:
                    await asyncio.Event().wait()
        finally:
            await simulator.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    return 0
