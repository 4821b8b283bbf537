"""Pro Santé Connect in tests: the simulator's HTTPS client, and gateways that trust it.

Tokens are obtained as a mail program would: the authorization-code flow with PKCE through a real HTTP client
(urllib), the redirect read from the ``Location`` header. The admin endpoints (rotate, fault, mint) are called
over HTTPS too.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import imaplib
import json
import os
import secrets
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from gateway.psc.models import PscGrant
from gateway.psc.sasl import oauthbearer_response, xoauth2_response
from gateway.psc.simulator import OIDC, Simulator
from support.mail import PRO, PRO2
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
#: marcel (biologist) is granted PRO; jean is granted PRO2; claire is granted nothing.
MARCEL, JEAN, CLAIRE = "801234534765", "801234567897", "810100000011"
REDIRECT = "http://127.0.0.1:9/callback"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Provider:
    """The running simulator and an HTTPS client for it."""

    sim: Simulator
    context: ssl.SSLContext
    loop: asyncio.AbstractEventLoop

    @property
    def issuer(self) -> str:
        return self.sim.issuer

    def _open(self, request: urllib.request.Request) -> Any:
        opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self.context))
        return opener.open(request, timeout=10)

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(self.sim.url + path, data=json.dumps(body).encode(),  # noqa: S310
                                         headers={"Content-Type": "application/json"}, method="POST")
        with self._open(request) as response:
            return json.loads(response.read())

    def code_flow(self, user: str, client_id: str = "mail-client", secret: str = "") -> dict[str, Any]:
        """RFC 6749 4.1 + RFC 7636: authorize (login_hint), read the code from the redirect, exchange it."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(8)
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                           "scope": "openid scope_all", "state": state, "code_challenge": challenge,
                           "code_challenge_method": "S256", "login_hint": user})
        try:
            self._open(urllib.request.Request(f"{self.issuer}/protocol/openid-connect/auth?{query}"))  # noqa: S310
            raise AssertionError("the authorization endpoint did not redirect")
        except urllib.error.HTTPError as redirect:
            assert redirect.code == 302
            location = redirect.headers["Location"]
        params = parse_qs(urlsplit(location).query)
        assert params["state"] == [state]
        form = {"grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": REDIRECT,
                "code_verifier": verifier, "client_id": client_id}
        if secret:
            form["client_secret"] = secret
        request = urllib.request.Request(self.sim.url + OIDC + "/token", data=urlencode(form).encode(),  # noqa: S310
                                         method="POST")
        with self._open(request) as response:
            return dict(json.loads(response.read()))

    def token(self, user: str = "marcel") -> str:
        return str(self.code_flow(user)["access_token"])

    def mint(self, **body: Any) -> str:
        return str(self.post_json("/admin/mint", {"user": "marcel", **body})["access_token"])

    def rotate(self, drop: bool = False) -> str:
        return str(self.post_json("/admin/rotate" + ("?drop=1" if drop else ""), {})["kid"])

    def fault(self, mode: str) -> None:
        self.post_json("/admin/fault", {"mode": mode})


def psc_config(provider: Provider, pki: PKIFiles, *, keys_ttl: float = 3600, introspection: bool = False) -> str:
    return f"""
[psc]
issuer = "{provider.issuer}"
client_id = "gateway"
client_secret = "gateway-dev-secret"
audiences = ["gateway", "mail-client"]
required_scope = "scope_all"
ca_file = "{pki.ca_bundle}"
refresh_interval = 0
keys_ttl = {keys_ttl}
leeway = 5
introspection = {"true" if introspection else "false"}
"""


def grant(store: Store, national_id: str, address: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from gateway.store.models import Mailbox

    async def work(session: Any) -> None:
        mailbox_id = (await session.execute(select(Mailbox.id).where(Mailbox.address == address))).scalar_one()
        session.add(PscGrant(national_id=national_id, mailbox_id=mailbox_id, granted_at=datetime.now(UTC)))
    store.run(work)


def start_gateway(folder: Path, pki: PKIFiles, url: str, extra: str, **gateway_keys: Any) -> GatewayProcess:
    from support.workers import configure

    store = Store(url)
    store.add_mailbox(PRO)
    store.add_mailbox(PRO2)
    grant(store, MARCEL, PRO)
    grant(store, JEAN, PRO2)
    process = GatewayProcess(folder, pki, url, extra_config=extra)
    if gateway_keys:
        configure(process, **gateway_keys)
    return process.start()


# --- clients ----------------------------------------------------------------------------------------------------
def smtp_client(gateway: GatewayProcess, tls: bool = True) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=20)
    if tls:
        client.starttls(context=gateway.client_tls())
    client.ehlo("client.test")
    return client


def smtp_auth(client: smtplib.SMTP, mechanism: str, token: str, user: str = PRO) -> tuple[int, dict[str, Any] | None]:
    """AUTH with an initial response; on a 334 error challenge, answer %x01 (RFC 7628 3.2.3) and return the JSON."""
    blob = oauthbearer_response(token, user) if mechanism == "OAUTHBEARER" else xoauth2_response(token, user)
    code, text = client.docmd("AUTH", f"{mechanism} {base64.b64encode(blob).decode()}")
    if code != 334:
        return code, None
    challenge = json.loads(base64.b64decode(text))
    code, text = client.docmd("AQ==" if mechanism == "OAUTHBEARER" else "")
    assert text.startswith(b"5.7.8"), text
    return code, challenge


def imap_client(gateway: GatewayProcess) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", gateway.imap_port, timeout=20)
    client.starttls(ssl_context=gateway.client_tls())
    return client


def imap_auth(client: imaplib.IMAP4, mechanism: str, token: str, user: str = PRO) -> tuple[str, list[bytes]]:
    """imaplib.authenticate: the first continuation gets the SASL response, an error challenge gets %x01."""
    blob = oauthbearer_response(token, user) if mechanism == "OAUTHBEARER" else xoauth2_response(token, user)
    challenges: list[bytes] = []

    def respond(challenge: bytes) -> bytes:
        if challenge:
            challenges.append(challenge)
            return b"\x01"
        return blob

    try:
        status, _ = client.authenticate(mechanism, respond)
    except imaplib.IMAP4.error as exc:
        return str(exc), challenges
    return status, challenges


def psc_logins(gateway: GatewayProcess, since: int = 0, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The PSC ``login`` events logged after the ``since``-th login event, once at least ``count`` were read
    (the gateway's log reaches the test through a pipe, after the client got its answer)."""
    from support.workers import events, wait_until

    def found() -> list[dict[str, Any]] | None:
        got = [e for e in events(gateway, "login")[since:] if e.get("mechanism") in ("OAUTHBEARER", "XOAUTH2")]
        return got if len(got) >= count else None

    return list(wait_until(found, timeout, f"{count} PSC login events"))


def wait_reason(gateway: GatewayProcess, reason: str, timeout: float = 15.0) -> dict[str, Any]:
    """The first ``login`` event with this refusal reason, waited for."""
    from support.workers import events, wait_until

    def found() -> dict[str, Any] | None:
        return next((e for e in events(gateway, "login") if e.get("reason") == reason), None)

    return dict(wait_until(found, timeout, f"a login refused for {reason}"))
