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

``gateway psc-simulator`` runs :func:`main`; tests start :class:`Simulator` in-process. data.py holds the test
professionals and clients, issuer.py the keys and the tokens they sign, web.py the HTTP routes and the command.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from gateway.psc.simulator.data import DEFAULT_DATA, Client, DataError, Professional, load_data
from gateway.psc.simulator.issuer import OIDC, REALM, TokenIssuer
from gateway.psc.simulator.web import Simulator, main, server_context

__all__ = ["DEFAULT_DATA", "OIDC", "REALM", "Client", "DataError", "Professional", "Simulator", "TokenIssuer",
           "load_data", "main", "server_context"]
