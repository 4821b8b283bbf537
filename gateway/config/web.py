"""[web] and [web.oidc]: the staff console's HTTPS listener, session secret and OpenID Connect login.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.listeners import Listen, _listen
from gateway.config.reader import ConfigError, PathOf, _positive, _readable, _Reader


@dataclass(frozen=True)
class OidcSettings:
    """``[web.oidc]``: an OpenID Connect provider (Pro Santé Connect) for the console's login (code + PKCE)."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False, default="")
    #: The console's address as the browser reaches it; the redirect URI is ``<public_url>/connexion/psc/retour``.
    public_url: str = ""
    scope: str = "openid"
    #: CA bundle to trust for the provider's HTTPS (a private PKI); the system store when absent.
    ca_file: Path | None = None
    #: The claim that names the professional (matched to ``console-user add --psc-id``).
    subject_claim: str = "sub"


@dataclass(frozen=True)
class WebSettings:
    """``[web]``: the console's HTTPS listener, its session secret and idle timeout, and an optional OIDC login."""

    listen: Listen
    secret: bytes = field(repr=False)
    idle_timeout: float = 1800.0
    tls: bool = True
    oidc: OidcSettings | None = None


def _web_section(root: _Reader, path: PathOf) -> WebSettings | None:
    """[web] and [web.oidc]: the staff console (gateway/web)."""
    web = root.table("web")
    if web is None:
        return None
    listen = _listen(web, "listen")
    if listen is None:
        raise ConfigError("Configuration key 'web.listen' is missing; it must look like 'host:port'.")
    secret_file = path(web, "session_secret_file", required=False)
    value = web.get("session_secret", str, "")
    if secret_file is not None:
        web.check("session_secret_file", secret_file.is_file(), f"names {str(secret_file)!r}, which is not a file")
        value = secret_file.read_text(encoding="utf-8").strip()
    web.check("session_secret", len(value) >= 32,
              "must hold at least 32 characters (or give session_secret_file); every instance uses the same one")
    idle = _positive(web, "idle_timeout", 1800.0, float)
    tls = web.get("tls", bool, True)
    oidc = None
    o = web.table("oidc")
    if o is not None:
        issuer = o.get("issuer", str, required=True)
        o.check("issuer", issuer.startswith("https://"), "must be an https:// URL")
        client_id = o.get("client_id", str, required=True)
        secret = o.get("client_secret", str, "")
        public_url = o.get("public_url", str, required=True).rstrip("/")
        o.check("public_url", public_url.startswith("https://"), "must be the console's https:// address")
        ca_file = path(o, "ca_file", required=False)
        _readable(o, "ca_file", ca_file)
        oidc = OidcSettings(
            issuer.rstrip("/"), client_id, secret, public_url, o.get("scope", str, "openid"), ca_file,
            o.get("subject_claim", str, "sub"))
        o.finish()
    web.finish()
    return WebSettings(listen, value.encode("utf-8"), idle, tls, oidc)
