"""The PSC simulator as the gateway, ``gateway token`` and the web console use it: discovery, JWKS, code + PKCE,
refresh tokens (rotated), userinfo, introspection, and what it refuses. Real HTTPS, urllib as the client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

import pytest
from support.psc import REDIRECT, Provider

from gateway.psc.simulator import OIDC, REALM


def _call(provider: Provider, path: str, form: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(provider.sim.url + path, data=data, headers=headers or {})  # noqa: S310
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=provider.context))
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_discovery_names_the_issuer_and_endpoints(provider: Provider) -> None:
    status, metadata = _call(provider, f"{REALM}/.well-known/openid-configuration")
    assert status == 200 and metadata["issuer"] == provider.issuer
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    status, jwks = _call(provider, OIDC + "/certs")
    assert status == 200 and all("d" not in key and key["kty"] == "RSA" for key in jwks["keys"])


def test_code_flow_gives_tokens_userinfo_and_a_rotated_refresh_token(provider: Provider) -> None:
    tokens = provider.code_flow("marcel")
    assert tokens["token_type"] == "Bearer" and tokens["id_token"].count(".") == 2
    status, info = _call(provider, OIDC + "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert status == 200 and info["SubjectNameID"] == "801234534765" and info["family_name"] == "CAMPARINI"
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "mail-client"}
    status, again = _call(provider, OIDC + "/token", refresh)
    assert status == 200 and again["refresh_token"] != tokens["refresh_token"]
    status, error = _call(provider, OIDC + "/token", refresh)  # single use
    assert status == 400 and error["error"] == "invalid_grant"


def test_confidential_client_introspects_and_public_client_cannot(provider: Provider) -> None:
    token = provider.token("jean")
    status, answer = _call(provider, OIDC + "/token/introspect",
                           {"token": token, "client_id": "gateway", "client_secret": "gateway-dev-secret"})
    assert status == 200 and answer["active"] is True and answer["client_id"] == "mail-client"
    status, _ = _call(provider, OIDC + "/token/introspect", {"token": token, "client_id": "mail-client"})
    assert status == 401
    status, answer = _call(provider, OIDC + "/token/introspect",
                           {"token": token + "x", "client_id": "gateway", "client_secret": "gateway-dev-secret"})
    assert answer == {"active": False}


@pytest.mark.parametrize(("change", "error"), [
    ({"code_verifier": "wrong-verifier-wrong-verifier-wrong-verifier-0123"}, "invalid_grant"),
    ({"redirect_uri": "http://127.0.0.1:9/elsewhere"}, "invalid_grant"),
    ({"client_id": "web-console", "client_secret": "wrong"}, "invalid_client"),
])
def test_token_endpoint_refuses_a_wrong_verifier_redirect_or_secret(provider: Provider, change: dict[str, str],
                                                                    error: str) -> None:
    def flow_form() -> dict[str, str]:
        import base64
        import hashlib
        from urllib.parse import parse_qs, urlsplit

        verifier = "v" * 50
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": "mail-client", "redirect_uri": REDIRECT,
                           "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256",
                           "login_hint": "marcel"})
        try:
            provider._open(urllib.request.Request(f"{provider.issuer}/protocol/openid-connect/auth?{query}"))  # noqa: S310
        except urllib.error.HTTPError as redirect:
            code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
        return {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": verifier, "client_id": "mail-client"}

    status, answer = _call(provider, OIDC + "/token", {**flow_form(), **change})
    assert status in (400, 401) and answer["error"] == error


def test_public_client_without_pkce_and_plain_pkce_are_refused(provider: Provider) -> None:
    for extra in ({}, {"code_challenge": "abc", "code_challenge_method": "plain"}):
        query = urlencode({"response_type": "code", "client_id": "mail-client", "redirect_uri": REDIRECT,
                           "scope": "openid", "login_hint": "marcel", **extra})
        with pytest.raises(urllib.error.HTTPError) as redirect:
            provider._open(urllib.request.Request(f"{provider.issuer}/protocol/openid-connect/auth?{query}"))  # noqa: S310
        assert "error=invalid_request" in redirect.value.headers["Location"]


def test_login_page_lists_the_test_professionals(provider: Provider) -> None:
    query = urlencode({"response_type": "code", "client_id": "web-console", "redirect_uri": REDIRECT,
                       "scope": "openid"})
    with provider._open(urllib.request.Request(f"{provider.issuer}/protocol/openid-connect/auth?{query}")) as page:  # noqa: S310
        html = page.read().decode()
    assert "CAMPARINI" in html and 'name="user" value="marcel"' in html
