"""``[psc]``: the Pro Santé Connect provider the gateway accepts access tokens from (SASL OAUTHBEARER/XOAUTH2).

Absent, the mechanisms are neither offered nor accepted. Keys come from the provider's discovery document and
JWKS; ``keys_ttl`` is how long fetched keys keep serving while the provider cannot be reached, after which
logins get a temporary failure (454 4.7.0 / ``NO [UNAVAILABLE]``) rather than a guess.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config.reader import _Reader

#: Asymmetric JWS algorithms only: a symmetric one would let anyone holding the public key forge tokens.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


@dataclass(frozen=True)
class PscSettings:
    #: The provider's ``iss``, e.g. ``https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet``.
    issuer: str
    #: The structure's client id at the provider (the expected ``aud`` or ``azp``).
    client_id: str
    client_secret: str = field(default="", repr=False)
    #: Defaults to ``<issuer>/.well-known/openid-configuration``.
    discovery_url: str = ""
    #: Accepted ``aud`` / ``azp`` values; the client id when empty.
    audiences: tuple[str, ...] = ()
    #: A scope every token must carry (space-separated ``scope`` claim).
    required_scope: str = "openid"
    #: Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    leeway: float = 60.0
    #: Seconds fetched keys stay usable without a successful refresh.
    keys_ttl: float = 3600.0
    #: At most one JWKS fetch per this many seconds for a token with an unknown ``kid``.
    refresh_interval: float = 30.0
    #: Verify by RFC 7662 introspection at the provider instead of locally (needs the client secret).
    introspection: bool = False
    #: CA bundle for the provider's HTTPS; the system store when absent.
    ca_file: Path | None = None
    timeout: float = 5.0
    algorithms: tuple[str, ...] = ALGORITHMS

    @property
    def configuration_url(self) -> str:
        return self.discovery_url or f"{self.issuer}/.well-known/openid-configuration"

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        return self.audiences or (self.client_id,)


def parse_section(root: _Reader, path: Callable[..., Path | None]) -> PscSettings | None:
    """[psc]: see :class:`PscSettings`; every error names its key."""
    from gateway.config.reader import ConfigError

    psc = root.table("psc")
    if psc is None:
        return None
    issuer = psc.get("issuer", str, required=True).rstrip("/")
    psc.check("issuer", issuer.startswith("https://"), "must be an https:// URL (the provider's iss)")
    client_id = psc.get("client_id", str, required=True)
    psc.check("client_id", 0 < len(client_id) <= 200 and client_id.isprintable(), "must be a printable client id")
    secret = psc.get("client_secret", str, "")
    secret_file = path(psc, "client_secret_file", required=False)
    if secret_file is not None:
        psc.check("client_secret_file", secret_file.is_file(), f"names {str(secret_file)!r}, which is not a file")
        secret = secret_file.read_text(encoding="utf-8").strip()
    discovery = psc.get("discovery_url", str, "")
    psc.check("discovery_url", not discovery or discovery.startswith("https://"), "must be an https:// URL")
    audiences = psc.get("audiences", list, [])
    psc.check("audiences", all(isinstance(a, str) and a for a in audiences), "must be a list of client ids")
    scope = psc.get("required_scope", str, "openid")
    psc.check("required_scope", " " not in scope.strip(), "must be one scope name")
    leeway = psc.get("leeway", float, 60.0)
    psc.check("leeway", 0 <= leeway <= 600, "must be between 0 and 600 seconds")
    keys_ttl = psc.get("keys_ttl", float, 3600.0)
    psc.check("keys_ttl", 0 < keys_ttl <= 7 * 86400, "must be between 1 second and 7 days")
    refresh = psc.get("refresh_interval", float, 30.0)
    psc.check("refresh_interval", 0 <= refresh <= 3600, "must be between 0 and 3600 seconds")
    introspection = psc.get("introspection", bool, False)
    if introspection and not secret:
        raise ConfigError("Configuration key 'psc.client_secret' is missing; introspection (RFC 7662) "
                          "authenticates the gateway to the provider.")
    ca_file = path(psc, "ca_file", required=False)
    if ca_file is not None:
        psc.check("ca_file", ca_file.is_file(), f"names {str(ca_file)!r}, which is not a readable file")
    timeout = psc.get("timeout", float, 5.0)
    psc.check("timeout", 0 < timeout <= 60, "must be between 0 and 60 seconds")
    algorithms = psc.get("algorithms", list, list(ALGORITHMS))
    psc.check("algorithms", bool(algorithms) and all(a in ALGORITHMS for a in algorithms),
              f"must list asymmetric JWS algorithms among {', '.join(ALGORITHMS)}")
    psc.finish()
    return PscSettings(
        issuer, client_id, secret, discovery.rstrip("/"), tuple(audiences), scope.strip(), leeway, keys_ttl, refresh,
        introspection, ca_file, timeout, tuple(algorithms))
