"""``gateway psc``: which professionals may log in to which mailboxes with Pro Santé Connect, and how mailboxes
may be logged in to; ``gateway token``: an access token from the configured provider, for curl or swaks.

``psc grant ADDRESS --psc-id ID`` lets the professional with national id ID (``8`` + RPPS) use the mailbox
(their own, or an organisational one of the structure); ``psc revoke`` takes it back; ``psc list`` shows the
grants; ``psc methods ADDRESS psc,certificate`` sets the login methods the mailbox accepts (``all`` for every
one), so a structure can require PSC for people. Every change is traced (R18) with ``--actor``.

``token`` runs the authorization-code flow with PKCE (RFC 7636) against ``[psc] issuer``: it prints the
authorization URL and waits for the browser's redirect on a loopback port, or, with ``--user`` (the PSC
simulator's ``login_hint``), follows it without a person; then prints the access token.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import json
import secrets
import ssl
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.psc.tokens import NATIONAL_ID


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    psc = with_config(sub.add_parser("psc", help="Pro Santé Connect: mailboxes granted to professionals"))
    psc.add_argument("action", choices=["grant", "revoke", "list", "methods"],
                     help="grant or revoke a mailbox to a national id, list grants, set a mailbox's login methods")
    psc.add_argument("address", nargs="?", help="the mailbox address (list: only this mailbox)")
    psc.add_argument("methods", nargs="?", help="methods: psc, password, certificate (comma-separated) or all")
    psc.add_argument("--psc-id", help="the professional's national id (PSC SubjectNameID, 8 + RPPS)")
    psc.set_defaults(func=cmd_psc)
    token = with_config(sub.add_parser("token", help="an access token from the Pro Santé Connect provider"))
    token.add_argument("--user", help="log in as this test user without a browser (the PSC simulator only)")
    token.add_argument("--client-id", help="default: [psc] client_id")
    token.add_argument("--client-secret", help="default: [psc] client_secret (none for a public client)")
    token.add_argument("--scope", default="openid scope_all", help="default: 'openid scope_all'")
    token.add_argument("--port", type=int, default=0, help="loopback port of the redirect (default: any free)")
    token.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the browser's redirect")
    token.set_defaults(func=cmd_token)


def cmd_psc(args: argparse.Namespace) -> int:
    from sqlalchemy import delete, select

    from gateway.auth import methods
    from gateway.commands.common import CommandError, load_config, print_rows, run_in_store
    from gateway.psc.models import PscGrant
    from gateway.store.events import record
    from gateway.store.models import Mailbox

    cfg = load_config(args)
    address = (args.address or "").strip().lower()
    if args.action in ("grant", "revoke", "methods") and not address:
        raise CommandError(f"'psc {args.action}' needs the mailbox address.")
    national_id = (args.psc_id or "").strip()
    if args.action in ("grant", "revoke") and NATIONAL_ID.fullmatch(national_id) is None:
        raise CommandError(f"'psc {args.action}' needs --psc-id, the national id as PSC gives it (8 + RPPS).")
    chosen: str | None = None
    if args.action == "methods":
        if not args.methods:
            raise CommandError("'psc methods' needs the methods, as 'psc,certificate' or 'all'.")
        try:
            chosen = None if args.methods == "all" else methods.normalise([args.methods])
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    async def mailbox_of(session: AsyncSession) -> Mailbox:
        mailbox = (await session.execute(select(Mailbox).where(Mailbox.address == address))).scalar_one_or_none()
        if mailbox is None:
            raise CommandError("No mailbox has this address.")
        return mailbox

    async def work(session: AsyncSession) -> str | None:
        if args.action == "list":
            query = (select(PscGrant.national_id, Mailbox.address, Mailbox.auth_methods, PscGrant.granted_at,
                            PscGrant.granted_by).join(Mailbox, Mailbox.id == PscGrant.mailbox_id)
                     .order_by(Mailbox.address, PscGrant.national_id))
            if address:
                query = query.where(Mailbox.address == address)
            if national_id:
                query = query.where(PscGrant.national_id == national_id)
            rows = [{"psc_id": r.national_id, "mailbox": r.address, "methods": r.auth_methods or "all",
                     "granted_at": r.granted_at, "by": r.granted_by} for r in (await session.execute(query)).all()]
            print_rows(rows, args.json)
            return None
        mailbox = await mailbox_of(session)
        if args.action == "methods":
            mailbox.auth_methods = chosen
            await record(session, "mailbox.auth_methods", "changed", actor=args.actor, mailbox_id=mailbox.id,
                         methods=chosen or "all")
            return f"Mailbox {mailbox.id} accepts logins by {chosen or ', '.join(methods.METHODS)}."
        existing = (await session.execute(select(PscGrant.id).where(
            PscGrant.national_id == national_id, PscGrant.mailbox_id == mailbox.id))).scalar_one_or_none()
        if args.action == "grant":
            if existing is not None:
                return f"Mailbox {mailbox.id} is already granted to this professional; nothing changed."
            session.add(PscGrant(national_id=national_id, mailbox_id=mailbox.id, granted_at=datetime.now(UTC),
                                 granted_by=args.actor[:200]))
            await record(session, "psc.grant", "added", actor=args.actor, mailbox_id=mailbox.id)
            return f"Mailbox {mailbox.id} granted: the professional may log in to it with Pro Santé Connect."
        if existing is None:
            raise CommandError("This professional has no grant on this mailbox.")
        await session.execute(delete(PscGrant).where(PscGrant.id == existing))
        await record(session, "psc.grant", "revoked", actor=args.actor, mailbox_id=mailbox.id)
        return f"Mailbox {mailbox.id} revoked for this professional, from the next login on."

    message = run_in_store(cfg, work)
    if message:
        print(message)
    return 0


# --- gateway token ---------------------------------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(context: ssl.SSLContext) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))


def _json(opener: urllib.request.OpenerDirector, url: str, form: dict[str, str] | None = None,
          auth: tuple[str, str] | None = None) -> Any:
    from gateway.commands.common import CommandError

    if not url.startswith("https://"):
        raise CommandError(f"The provider's endpoint {url!r} is not https://.")
    headers = {"Accept": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url, data=urlencode(form).encode() if form is not None else None,  # noqa: S310
                                     headers=headers)
    try:
        with opener.open(request, timeout=30) as response:
            return json.loads(response.read(1024 * 1024))
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        raise CommandError(f"The provider answered HTTP {exc.code} at {url}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CommandError(f"The provider cannot be reached at {url}: {exc}.") from None


def _wait_for_redirect(port: int, timeout: float, announce: Callable[[str], None]) -> dict[str, list[str]]:
    """One request on a loopback HTTP server (RFC 8252 7.3): the authorization response's query."""
    from gateway.commands.common import CommandError

    received: dict[str, list[str]] = {}
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if "code" not in query and "error" not in query:
                self.send_error(404)
                return
            received.update(query)
            body = b"Pro Sante Connect: the gateway received the answer; this window can be closed.\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            done.set()

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    server.timeout = 1.0
    announce(f"http://127.0.0.1:{server.server_address[1]}/callback")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        if not done.wait(timeout):
            raise CommandError(f"No answer from the browser within {timeout:.0f} seconds.")
    finally:
        server.shutdown()
        server.server_close()
    return received


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config

    cfg = load_config(args)
    if cfg.psc is None:
        raise CommandError("This configuration has no [psc] section: name the provider's issuer and client_id.")
    settings = cfg.psc
    client_id = args.client_id or settings.client_id
    secret = settings.client_secret if args.client_secret is None else args.client_secret
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    opener = _opener(context)
    metadata = _json(opener, settings.configuration_url)
    if not isinstance(metadata, dict) or metadata.get("issuer") != settings.issuer:
        raise CommandError("The provider's discovery document names another issuer than [psc] issuer.")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)

    def authorize_url(redirect: str) -> str:
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect, "scope": args.scope,
                  "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}
        if args.user:
            params["login_hint"] = args.user
        return f"{metadata['authorization_endpoint']}?{urlencode(params)}"

    redirect_uri = f"http://127.0.0.1:{args.port or 8765}/callback"
    if args.user:
        try:
            with opener.open(authorize_url(redirect_uri), timeout=30) as response:
                raise CommandError(f"The provider asked for a person (HTTP {response.status}); run 'gateway "
                                   "token' without --user and log in in the browser.")
        except urllib.error.HTTPError as exc:
            if exc.code not in (302, 303):
                raise CommandError(f"The provider refused the authorization request (HTTP {exc.code}).") from None
            query = parse_qs(urlsplit(exc.headers.get("Location", "")).query)
    else:
        holder: list[str] = []

        def announce(uri: str) -> None:
            holder.append(uri)
            print(f"Open this address and log in with Pro Santé Connect:\n{authorize_url(uri)}", file=sys.stderr,
                  flush=True)

        query = _wait_for_redirect(args.port, args.timeout, announce)
        redirect_uri = holder[0]
    if query.get("state") != [state]:
        raise CommandError("The authorization answer does not carry our state; refused (RFC 6749 10.12).")
    if "code" not in query:
        raise CommandError(f"The provider refused: {query.get('error', ['?'])[0]} "
                           f"{query.get('error_description', [''])[0]}".strip() + ".")
    form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": redirect_uri,
            "code_verifier": verifier, "client_id": client_id}
    tokens = _json(opener, str(metadata["token_endpoint"]), form, (client_id, secret) if secret else None)
    if not isinstance(tokens, dict) or not isinstance(tokens.get("access_token"), str):
        raise CommandError("The provider's token answer has no access_token.")
    if args.json:
        print(json.dumps({k: tokens[k] for k in ("access_token", "expires_in", "refresh_token", "scope")
                          if k in tokens}, indent=1))
    else:
        print(tokens["access_token"])
    return 0
