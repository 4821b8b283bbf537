"""SASL OAUTHBEARER (RFC 7628) and XOAUTH2 with Pro Santé Connect tokens, on a real gateway over real TLS.

Tokens come from the PSC simulator through the authorization-code flow with PKCE (a real HTTP client); the
gateway verifies them against the simulator's JWKS. Clients: aiosmtplib and smtplib for submission, imaplib for
IMAP. Every refused token gets the RFC 7628 error JSON, then 535 5.7.8 / NO [AUTHENTICATIONFAILED], and the
refusal is logged with its reason, never with the token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import imaplib
import json
import smtplib
import ssl
from typing import Any

import aiosmtplib
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from support.mail import PRO, PRO2, message
from support.process import GatewayProcess
from support.psc import (
    CLAIRE,
    Provider,
    grant,
    imap_auth,
    imap_client,
    psc_logins,
    smtp_auth,
    smtp_client,
    wait_reason,
)
from support.store import Store
from support.workers import events

from gateway.psc.sasl import oauthbearer_response, xoauth2_response

#: Every test here starts gateway processes: not in make test-fast.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


# --- tokens the provider never issued -----------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, body, _ = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(head))), json.loads(base64.urlsafe_b64decode(pad(body)))


def forged(provider: Provider, case: str) -> str:
    good = provider.mint()
    header, claims = _parts(good)
    if case == "unknown key":
        foreign = RSAKey.generate_key(2048, parameters={"kid": "not-the-providers"})
        return jwt.encode({"alg": "RS256", "kid": "not-the-providers"}, claims, foreign)
    if case == "tampered signature":
        head, _, signature = good.split(".")
        return f"{head}.{_b64(json.dumps({**claims, 'SubjectNameID': '801234567897'}).encode())}.{signature}"
    if case == "alg none":
        return f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}."
    if case == "HS256 with the public key as secret":
        public = provider.sim.keys[-1].as_pem(private=False)
        signing = f"{_b64(json.dumps({'alg': 'HS256', 'kid': header['kid']}).encode())}." \
                  f"{_b64(json.dumps(claims).encode())}"
        return f"{signing}.{_b64(hmac.new(public, signing.encode(), hashlib.sha256).digest())}"
    raise AssertionError(case)


REFUSED: dict[str, tuple[str, Any]] = {
    "expired": ("expired", lambda p: p.mint(exp_in=-120)),
    "not yet valid": ("not_yet_valid", lambda p: p.mint(nbf_in=600)),
    "wrong audience": ("audience", lambda p: p.mint(client_id="other-software")),
    "wrong issuer": ("issuer", lambda p: p.mint(claims={"iss": "https://idp.example/auth/realms/esante-wallet"})),
    "missing scope": ("scope", lambda p: p.mint(scope="openid")),
    "unknown key": ("unknown_key", lambda p: forged(p, "unknown key")),
    "tampered signature": ("signature", lambda p: forged(p, "tampered signature")),
    "alg none": ("algorithm", lambda p: forged(p, "alg none")),
    "HS256 with the public key as secret": ("algorithm", lambda p: forged(p, "HS256 with the public key as secret")),
    "professional not bound to the mailbox": ("not_granted", lambda p: p.token("jean")),
}


# --- tests --------------------------------------------------------------------------------------------------------
def test_mechanisms_are_offered_after_tls_only(gateway: GatewayProcess) -> None:
    with smtp_client(gateway, tls=False) as clear:
        assert "auth" not in clear.esmtp_features
    with smtp_client(gateway) as client:
        offered = client.esmtp_features["auth"].split()
        assert "OAUTHBEARER" in offered and "XOAUTH2" in offered
    imap = imaplib.IMAP4("127.0.0.1", gateway.imap_port, timeout=20)
    try:
        assert "AUTH=OAUTHBEARER" not in imap.capabilities
        imap.starttls(ssl_context=gateway.client_tls())
        assert "AUTH=OAUTHBEARER" in imap.capabilities and "AUTH=XOAUTH2" in imap.capabilities
    finally:
        imap.logout()


async def test_smtp_oauthbearer_with_a_code_flow_token_logs_in_and_sends(gateway: GatewayProcess,
                                                                          provider: Provider) -> None:
    token = provider.token("marcel")
    context = ssl.create_default_context(cafile=str(gateway.pki.ca_bundle))
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.smtp_port, start_tls=True, tls_context=context)
    async with client:
        await client.ehlo()
        blob = base64.b64encode(oauthbearer_response(token, PRO)).decode()
        reply = await client.execute_command(b"AUTH", b"OAUTHBEARER", blob.encode())
        assert reply.code == 235 and reply.message.startswith("2.7.0")
        await client.sendmail(PRO, [PRO2], message(PRO, PRO2, "Résultats PSC"))
    stored = await asyncio.to_thread(Store(gateway.store_url).messages_in, PRO2)
    assert any(b"PSC" in raw and f"From: {PRO}".encode() in raw for raw in stored)
    assert token not in "\n".join(gateway.log_lines)


async def test_smtp_xoauth2_through_aiosmtplib_token_generator(gateway: GatewayProcess, provider: Provider) -> None:
    token = provider.token("marcel")

    async def generate() -> str:
        return token

    context = ssl.create_default_context(cafile=str(gateway.pki.ca_bundle))
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.smtp_port, start_tls=True, tls_context=context,
                             username=PRO, oauth_token_generator=generate)
    async with client:
        assert client.is_connected
        await client.sendmail(PRO, [PRO2], message(PRO, PRO2, "XOAUTH2"))


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
def test_imap_authenticate_with_a_code_flow_token(gateway: GatewayProcess, provider: Provider,
                                                  mechanism: str) -> None:
    token = provider.token("jean")
    client = imap_client(gateway)
    try:
        status, challenges = imap_auth(client, mechanism, token, PRO2)
        assert status == "OK" and challenges == []
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


def test_smtp_oauthbearer_without_authzid_uses_the_only_granted_mailbox(gateway: GatewayProcess,
                                                                         provider: Provider) -> None:
    with smtp_client(gateway) as client:
        blob = base64.b64encode(oauthbearer_response(provider.token("marcel"))).decode()
        assert client.docmd("AUTH", f"OAUTHBEARER {blob}")[0] == 235
        assert client.mail(PRO)[0] == 250


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_tokens_get_the_error_json_then_535_and_no_on_imap(gateway: GatewayProcess, provider: Provider,
                                                                   case: str) -> None:
    reason, make = REFUSED[case]
    token = make(provider)
    before = len(events(gateway, "login"))
    with smtp_client(gateway) as client:
        code, challenge = smtp_auth(client, "OAUTHBEARER", token)
        assert code == 535
        assert challenge is not None and challenge["status"] in ("invalid_token", "insufficient_scope")
        assert challenge["openid-configuration"].endswith("/.well-known/openid-configuration")
        assert client.docmd("MAIL", f"FROM:<{PRO}>")[0] == 530  # still not logged in
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "XOAUTH2", token)[0] == 535
    imap = imap_client(gateway)
    try:
        status, challenges = imap_auth(imap, "OAUTHBEARER", token)
        assert "[AUTHENTICATIONFAILED]" in status and len(challenges) == 1
    finally:
        imap.logout()
    refused = psc_logins(gateway, before, 3)
    assert len(refused) == 3 and {e["reason"] for e in refused} == {reason}
    assert {e["outcome"] for e in refused} == {"invalid"}
    assert all(e["client"] == "127.0.0.1" for e in refused)
    assert token not in "\n".join(gateway.log_lines)


def test_a_token_sent_before_tls_is_refused_and_not_checked(gateway: GatewayProcess, provider: Provider) -> None:
    token = provider.token("marcel")
    before = len(events(gateway, "login"))
    with smtp_client(gateway, tls=False) as client:
        blob = base64.b64encode(oauthbearer_response(token, PRO)).decode()
        code, _ = client.docmd("AUTH", f"OAUTHBEARER {blob}")
        assert code in (530, 538)
    imap = imaplib.IMAP4("127.0.0.1", gateway.imap_port, timeout=20)
    try:
        status, _ = imap_auth(imap, "OAUTHBEARER", token)
        assert "[PRIVACYREQUIRED]" in status
    finally:
        imap.logout()
    assert [e for e in events(gateway, "login")[before:] if e.get("mechanism") == "OAUTHBEARER"] == []


def test_key_rotation_mid_run_is_followed(gateway: GatewayProcess, provider: Provider) -> None:
    """Every worker process has its own key cache: each follows the rotation at its first unknown kid (the
    refusal of dropped keys is shown on a one-worker gateway, test_psc_outage.py)."""
    old = provider.token("marcel")
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", old)[0] == 235
    provider.rotate(drop=True)  # the provider signs with a new key and no longer publishes the old one
    new = provider.token("marcel")
    assert _parts(new)[0]["kid"] != _parts(old)[0]["kid"]
    for _ in range(4):  # new connections, whichever worker takes them
        with smtp_client(gateway) as client:
            assert smtp_auth(client, "OAUTHBEARER", new)[0] == 235
    imap = imap_client(gateway)
    try:
        assert imap_auth(imap, "XOAUTH2", new)[0] == "OK"
    finally:
        imap.logout()


def test_mailbox_methods_can_require_psc_or_refuse_it(gateway: GatewayProcess, provider: Provider) -> None:
    from sqlalchemy import update

    from gateway.store.models import Mailbox

    store = Store(gateway.store_url)
    only_psc, only_password = "psc.seulement@pro.gateway.test", "mot.de.passe@pro.gateway.test"
    store.add_mailbox(only_psc)
    store.add_mailbox(only_password)
    grant(store, CLAIRE, only_psc)
    grant(store, CLAIRE, only_password)

    async def restrict(session: Any) -> None:
        await session.execute(update(Mailbox).where(Mailbox.address == only_psc).values(auth_methods="psc"))
        await session.execute(update(Mailbox).where(Mailbox.address == only_password)
                              .values(auth_methods="password"))
    store.run(restrict)
    token = provider.token("claire")
    with smtp_client(gateway) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login(only_psc, "secret-password")
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "XOAUTH2", token, only_psc)[0] == 235
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "XOAUTH2", token, only_password)[0] == 535
    with smtp_client(gateway) as client:
        client.login(only_password, "secret-password")
    refused = wait_reason(gateway, "method_not_allowed")
    assert refused["mailbox_id"] is not None


def test_imap_sasl_ir_initial_response_logs_in_in_one_command(gateway: GatewayProcess, provider: Provider) -> None:
    blob = base64.b64encode(xoauth2_response(provider.token("jean"), PRO2)).decode()
    client = imap_client(gateway)
    try:
        status, _ = client._simple_command("AUTHENTICATE", "XOAUTH2", blob)  # RFC 4959: no continuation
        assert status == "OK"
        client.state = "AUTH"
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.logout()


def test_oauthbearer_without_authzid_is_refused_when_several_mailboxes_are_granted(
        gateway: GatewayProcess, provider: Provider) -> None:
    store = Store(gateway.store_url)
    second = "secretariat@pro.gateway.test"
    store.add_mailbox(second, "ORG")
    grant(store, "801234567897", second)  # jean: PRO2 and the secretariat
    with smtp_client(gateway) as client:
        code, challenge = smtp_auth(client, "OAUTHBEARER", provider.token("jean"), "")
        assert code == 535 and challenge is not None
    assert wait_reason(gateway, "authzid_needed")["outcome"] == "invalid"
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", provider.token("jean"), second)[0] == 235


@pytest.mark.parametrize("initial", [True, False])
def test_smtplib_auth_with_a_custom_mechanism_object(gateway: GatewayProcess, provider: Provider,
                                                     initial: bool) -> None:
    """smtplib.SMTP.auth: with the initial response, or after the server's empty 334 challenge (RFC 4954 4)."""
    token = provider.token("marcel")
    with smtp_client(gateway) as client:
        code, _ = client.auth("OAUTHBEARER", lambda challenge=None: oauthbearer_response(token, PRO).decode(),
                              initial_response_ok=initial)
        assert code == 235
        assert client.mail(PRO)[0] == 250
