"""What the simulated provider issues: signing keys (JWKS, rotation), authorization codes, access, ID and
refresh tokens (RS256 JWTs with PSC's claims), and the decoding of its own live tokens.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from gateway.psc.simulator.data import Client, Professional

#: Keycloak-like paths of the national provider (the issuer is the base URL followed by REALM).
REALM = "/auth/realms/esante-wallet"
OIDC = f"{REALM}/protocol/openid-connect"
#: Seconds an authorization code stays usable (RFC 6749 4.1.2 recommends at most 10 minutes).
CODE_TTL = 60.0
SCOPES = ("openid", "scope_all")


def _s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier (RFC 7636 4.2)."""
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
class TokenIssuer:
    """The provider's state: keys, pending codes, refresh tokens, revocations."""

    professionals: list[Professional]
    clients: list[Client]
    token_ttl: float = 300.0
    refresh_ttl: float = 3600.0
    keys: list[RSAKey] = field(default_factory=list)
    url: str = ""
    _codes: dict[str, _Grant] = field(default_factory=dict)
    _refresh: dict[str, _Grant] = field(default_factory=dict)
    _revoked: set[str] = field(default_factory=set)

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
