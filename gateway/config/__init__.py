"""The gateway's configuration: one TOML file, validated once at start.

Every value is checked here so that the daemon never starts half-configured: a bad file raises
:class:`ConfigError` whose message is one sentence naming the offending key. Other modules receive
typed, frozen dataclasses and never read the TOML themselves.

One module per group of sections: ``reader`` (typed access and the shared checks), ``general``
([gateway]), ``listeners`` ([tls], [smtp], [imap]), ``database``, ``limits`` ([limits], [auth], [rules]),
``relay`` ([relay], [whitelist], [outbound]), ``filing`` ([documents], [[upstream]]), ``dmp`` ([dmp],
[card]), ``ops`` ([metrics], [autoconfig]), ``web``, ``psc``, ``directory`` (the Annuaire Santé), ``insi``,
``hl7``; ``model`` holds :class:`Config` and ``loading`` reads the file.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from gateway.config.dmp import CardSettings, DmpProfessional, DmpSettings
from gateway.config.filing import DocumentSettings, UpstreamSettings
from gateway.config.general import MAX_WORKERS, default_workers
from gateway.config.limits import AuthSettings, Limits, Rules
from gateway.config.listeners import ANS_TLS12_CIPHERS, Listen, TLSSettings, _listen
from gateway.config.loading import load, parse
from gateway.config.model import Config
from gateway.config.ops import AutoconfigSettings, MetricsSettings
from gateway.config.reader import ConfigError, _array_of_tables, _positive, _readable, _Reader
from gateway.config.relay import OutboundSettings, RelaySettings, TrustedDomains, WhitelistSettings
from gateway.config.web import OidcSettings, WebSettings

__all__ = [
    "ANS_TLS12_CIPHERS",
    "MAX_WORKERS",
    "AuthSettings",
    "AutoconfigSettings",
    "CardSettings",
    "Config",
    "ConfigError",
    "DmpProfessional",
    "DmpSettings",
    "DocumentSettings",
    "Limits",
    "Listen",
    "MetricsSettings",
    "OidcSettings",
    "OutboundSettings",
    "RelaySettings",
    "Rules",
    "TLSSettings",
    "TrustedDomains",
    "UpstreamSettings",
    "WebSettings",
    "WhitelistSettings",
    "_Reader",
    "_array_of_tables",
    "_listen",
    "_positive",
    "_readable",
    "default_workers",
    "load",
    "parse",
]
