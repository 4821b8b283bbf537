"""Verifying a Pro Santé Connect access token: a JWT signed by the provider, checked locally (or introspected).

The keys come from the provider's discovery document (OpenID Connect Discovery 1.0 section 4) and its JWKS
(RFC 7517). They are cached: a token whose ``kid`` is unknown triggers one refresh (shared by concurrent
logins, at most one a second; a kid that a fetch did not find is not looked for again before
``refresh_interval``), so a rotation at the provider is followed without a restart. While the provider cannot
be reached, fetched keys keep serving for ``keys_ttl``; after that a login is refused as *temporary*
(:class:`Unavailable`), never accepted on stale trust.

What is refused, each with its reason (:class:`Rejected`): a header that is not a compact JWS, an algorithm that
is not an asymmetric one of ``[psc] algorithms`` (``none`` and ``HS256`` among them: a public key must never be
usable as a shared secret), an unknown key, a bad signature, another ``iss``, an ``aud``/``azp`` that is not
ours, ``exp`` past or ``nbf``/``iat`` in the future beyond the leeway (RFC 7519 4.1), a missing required scope,
and a token without the professional's national id (``SubjectNameID`` or ``preferred_username``). The token is
never logged nor kept.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from gateway.config.psc import PscSettings

log = structlog.get_logger("gateway.psc")

#: The longest token verified (PSC's are about 1.5 KB); longer ones are refused before any parsing.
MAX_TOKEN = 8192
#: The largest discovery document, JWKS or introspection answer read.
MAX_DOCUMENT = 256 * 1024
#: Keys taken from one JWKS at most.
MAX_KEYS = 32
#: A national id as PSC writes it: RPPS-based ``8`` + 11 digits, or another id type with its prefix.
NATIONAL_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z/._-]{0,63}")
#: The claims that carry the professional's national id, in order of preference.
ID_CLAIMS = ("SubjectNameID", "preferred_username")
#: Seconds between two JWKS fetches at least, whatever asks for them.
MIN_REFRESH_GAP = 1.0
#: Unknown kids remembered at most.
MAX_MISSING = 1024

Key = RSAKey | ECKey


class Unavailable(Exception):
    """The provider cannot be reached and no usable key (or introspection) is at hand: try again later."""


class Rejected(Exception):
    """The token is refused; ``reason`` is traced, ``status`` is the RFC 6750 3.1 code of the error JSON."""

    def __init__(self, reason: str, status: str = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Verified:
    """What the gateway keeps of a verified token: who the professional is and until when."""

    national_id: str
    expires_at: float
    client_id: str


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def read_header(token: str, algorithms: tuple[str, ...]) -> tuple[str, str]:
    """The ``alg`` and ``kid`` of a compact JWS, refusing any other algorithm than ``algorithms``."""
    if len(token) > MAX_TOKEN:
        raise Rejected("too_long")
    parts = token.split(".")
    if len(parts) != 3:
        raise Rejected("malformed")
    try:
        header = json.loads(_b64url(parts[0]))
    except (binascii.Error, ValueError):
        raise Rejected("malformed") from None
    if not isinstance(header, dict):
        raise Rejected("malformed")
    alg, kid = header.get("alg"), header.get("kid", "")
    if not isinstance(alg, str) or alg not in algorithms:
        raise Rejected("algorithm")
    if not isinstance(kid, str) or len(kid) > 200 or "crit" in header:
        raise Rejected("malformed")
    return alg, kid


def _audience_ok(claims: Mapping[str, Any], accepted: tuple[str, ...]) -> bool:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    azp = claims.get("azp", claims.get("client_id"))
    return any(a in accepted for a in audiences if isinstance(a, str)) or (isinstance(azp, str) and azp in accepted)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("malformed")
    return float(value)


def check_claims(claims: Mapping[str, Any], settings: PscSettings, now: float) -> Verified:
    """The registered claims (RFC 7519 4.1) and PSC's: pure, so every refusal is unit-tested."""
    if claims.get("iss") != settings.issuer:
        raise Rejected("issuer")
    if not _audience_ok(claims, settings.accepted_audiences):
        raise Rejected("audience")
    exp = _number(claims, "exp")
    if exp is None or now > exp + settings.leeway:
        raise Rejected("expired")
    nbf, iat = _number(claims, "nbf"), _number(claims, "iat")
    if (nbf is not None and now + settings.leeway < nbf) or (iat is not None and now + settings.leeway < iat):
        raise Rejected("not_yet_valid")
    scope = claims.get("scope", "")
    if settings.required_scope and (not isinstance(scope, str) or settings.required_scope not in scope.split()):
        raise Rejected("scope", "insufficient_scope")
    national_id = next((claims[c] for c in ID_CLAIMS if isinstance(claims.get(c), str) and claims[c]), None)
    if national_id is None or NATIONAL_ID.fullmatch(national_id) is None:
        raise Rejected("no_national_id")
    azp = claims.get("azp", claims.get("client_id", ""))
    return Verified(national_id, exp, azp if isinstance(azp, str) else "")


def import_jwks(document: Any) -> dict[str, Key]:
    """Signature keys of a JWKS (RFC 7517 5), by ``kid``; encryption keys and unknown types are skipped."""
    keys: dict[str, Key] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("the JWKS has no 'keys' array")
    for entry in entries[:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "d" in entry:
            continue
        kty = entry.get("kty")
        if kty not in ("RSA", "EC"):
            continue
        try:
            keys[str(entry.get("kid", ""))] = RSAKey.import_key(entry) if kty == "RSA" else ECKey.import_key(entry)
        except (JoseError, ValueError, TypeError):
            continue
    return keys


class TokenVerifier:
    """One per process: the provider's keys, cached, and the verification of tokens against them."""

    def __init__(self, settings: PscSettings, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._monotonic = monotonic
        self._keys: dict[str, Key] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._metadata: dict[str, Any] = {}
        #: kids a successful fetch did not find, and when (so a flood of forged kids costs no fetches).
        self._missing: dict[str, float] = {}
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        #: Fetches of the JWKS that succeeded (for tests and the bench: a cached login fetches nothing).
        self.fetches = 0

    # --- HTTP to the provider --------------------------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            context = ssl.create_default_context(cafile=str(self.settings.ca_file) if self.settings.ca_file else None)
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=8),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        return self._http

    async def _json(self, response: aiohttp.ClientResponse) -> Any:
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        body = await response.content.read(MAX_DOCUMENT + 1)
        if len(body) > MAX_DOCUMENT:
            raise ValueError("document too large")
        return json.loads(body)

    async def _get(self, url: str) -> Any:
        for attempt in (1, 2):  # a kept-alive connection the provider closed meanwhile: once more on a new one
            try:
                async with self._client().get(url, allow_redirects=False) as response:
                    return await self._json(response)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- keys ------------------------------------------------------------------------------------------------
    def _keys_usable(self) -> bool:
        return self._fetched_at is not None and self._monotonic() - self._fetched_at < self.settings.keys_ttl

    async def refresh(self, *, min_gap: float = 0.0) -> str:
        """Fetch discovery and JWKS again: ``"ok"``, ``"skipped"`` (the last attempt is less than ``min_gap``
        seconds old) or ``"failed"``; concurrent calls share one fetch."""
        started = self._monotonic()
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= started:
                return "ok"  # another login refreshed while this one waited
            if self._attempted_at is not None and started - self._attempted_at < min_gap:
                return "skipped"
            self._attempted_at = self._monotonic()
            try:
                metadata = await self._get(self.settings.configuration_url)
                if not isinstance(metadata, dict) or metadata.get("issuer") != self.settings.issuer:
                    raise ValueError("the discovery document names another issuer")  # OIDC Discovery 4.3
                jwks_uri = metadata.get("jwks_uri")
                if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
                    raise ValueError("the discovery document has no https jwks_uri")
                keys = import_jwks(await self._get(jwks_uri))
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                log.warning("psc.keys", outcome="unreachable", error=type(exc).__name__,
                            detail=str(exc)[:200], keys_usable=self._keys_usable())
                return "failed"
            self._metadata, self._keys = metadata, keys
            self._fetched_at = self._monotonic()
            self.fetches += 1
            log.info("psc.keys", outcome="refreshed", keys=len(keys))
            return "ok"

    async def _key(self, kid: str, alg: str) -> Key:
        if not self._keys_usable():
            await self.refresh()
            if not self._keys_usable():
                raise Unavailable("provider_unreachable")
        key = self._find(kid)
        if key is None:
            # A kid not seen yet may be a rotation: look once (at most one fetch a second however many arrive);
            # a kid a fetch did not find is not looked for again before refresh_interval.
            missed = self._missing.get(kid)
            if missed is None or self._monotonic() - missed >= self.settings.refresh_interval:
                gap = min(MIN_REFRESH_GAP, self.settings.refresh_interval)
                if self._attempted_at is not None:  # paced, not refused: the rotation may be real
                    wait = self._attempted_at + gap - self._monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                outcome = await self.refresh()
                if outcome == "failed":
                    raise Unavailable("provider_unreachable")  # maybe a rotation we cannot see yet
                key = self._find(kid)
                if key is None and outcome == "ok":
                    if len(self._missing) >= MAX_MISSING:
                        self._missing.clear()
                    self._missing[kid] = self._monotonic()
            if key is None:
                raise Rejected("unknown_key")
        if key.alg and key.alg != alg:
            raise Rejected("algorithm")
        return key

    def _find(self, kid: str) -> Key | None:
        if kid:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    # --- verification ---------------------------------------------------------------------------------------
    async def verify(self, token: str) -> Verified:
        """The professional behind ``token``, or :class:`Rejected` / :class:`Unavailable`."""
        if self.settings.introspection:
            return await self._introspect(token)
        alg, kid = read_header(token, self.settings.algorithms)
        key = await self._key(kid, alg)
        try:
            decoded = jwt.decode(token, key, algorithms=[alg])
        except JoseError:
            raise Rejected("signature") from None
        except (ValueError, TypeError):
            raise Rejected("malformed") from None
        return check_claims(decoded.claims, self.settings, self._clock())

    async def _introspect(self, token: str) -> Verified:
        """RFC 7662: the provider says whether the token is active, with its claims; checked as a JWT's are."""
        if len(token) > MAX_TOKEN:
            raise Rejected("too_long")
        if not self._metadata.get("introspection_endpoint") and await self.refresh() != "ok":
            raise Unavailable("provider_unreachable")
        endpoint = self._metadata.get("introspection_endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith("https://"):
            raise Unavailable("no_introspection_endpoint")
        auth = aiohttp.BasicAuth(self.settings.client_id, self.settings.client_secret)
        try:
            async with self._client().post(endpoint, data={"token": token, "token_type_hint": "access_token"},
                                           auth=auth, allow_redirects=False) as response:
                answer = await self._json(response)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            log.warning("psc.introspection", outcome="unreachable", error=type(exc).__name__)
            raise Unavailable("provider_unreachable") from None
        if not isinstance(answer, dict) or answer.get("active") is not True:
            raise Rejected("inactive")
        return check_claims(answer, self.settings, self._clock())
