"""The simulated provider over HTTPS: the OpenID Connect and admin routes, the fault mode, and the command.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import secrets
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from gateway.psc.simulator.data import DEFAULT_DATA, Client, DataError, load_data
from gateway.psc.simulator.issuer import CODE_TTL, OIDC, REALM, SCOPES, TokenIssuer, _Grant, _s256
from gateway.tasks import run_until_interrupted

#: The first sentence of the package's description, for ``--help``.
DESCRIPTION = "A local Pro Santé Connect for development and tests: OpenID Connect over HTTPS, with fault modes."


@dataclass
class Simulator(TokenIssuer):
    """The provider over HTTPS: the OpenID Connect routes, the admin routes and the fault mode."""

    down: bool = False
    _runner: web.AppRunner | None = None
    #: Requests served per path (tests check that cached keys are not fetched again).
    hits: dict[str, int] = field(default_factory=dict)

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
    parser = argparse.ArgumentParser(prog="gateway psc-simulator", description=DESCRIPTION)
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

    return run_until_interrupted(run())
