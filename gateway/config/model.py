"""The whole configuration as one frozen value: every section, and the live whitelist beside it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config.limits import AuthSettings, Limits, Rules
from gateway.config.relay import TrustedDomains

if TYPE_CHECKING:
    from gateway.config.directory import DirectorySettings
    from gateway.config.dmp import CardSettings, DmpSettings
    from gateway.config.filing import DocumentSettings, UpstreamSettings
    from gateway.config.hl7 import Hl7Settings
    from gateway.config.insi import InsiSettings
    from gateway.config.listeners import Listen, TLSSettings
    from gateway.config.ops import AutoconfigSettings, MetricsSettings
    from gateway.config.psc import PscSettings
    from gateway.config.relay import OutboundSettings, RelaySettings, WhitelistSettings
    from gateway.config.web import WebSettings


@dataclass(frozen=True)
class Config:
    hostname: str
    domains: frozenset[str]
    patient_domain: str
    database_url: str
    tls: TLSSettings
    submission: Listen | None
    submissions: Listen | None
    imap: Listen | None
    imaps: Listen | None
    limits: Limits = field(default_factory=Limits)
    rules: Rules = field(default_factory=Rules)
    insi_mode: str = "simulator"
    log_level: str = "info"
    base_dir: Path = Path(".")
    relay: RelaySettings | None = None
    whitelist: WhitelistSettings | None = None
    outbound: OutboundSettings | None = None
    documents: DocumentSettings | None = None
    upstreams: tuple[UpstreamSettings, ...] = ()
    card: CardSettings | None = None
    dmp: DmpSettings | None = None
    auth: AuthSettings = field(default_factory=AuthSettings)
    #: Worker processes serving the listeners (``[gateway] workers``, default one per core; 1 = one process).
    workers: int = 1
    #: Seconds a stopping daemon lets SMTP transactions in DATA finish (``[gateway] stop_grace``).
    stop_grace: float = 30.0
    #: ``X-MSS-NIL`` on every message the gateway builds (``[gateway] software_reference``, ANS client spec).
    software_reference: str = "mss-gateway"
    #: ``[gateway] log_file``: JSON log lines go there instead of stderr, reopened on SIGUSR1 (log rotation).
    log_file: Path | None = None
    #: ``[metrics]``: the HTTP listener for Prometheus, /healthz and /readyz (gateway/ops); off when absent.
    metrics: MetricsSettings | None = None
    #: ``[autoconfig]``: mail-client autoconfiguration (Thunderbird, Outlook) served over HTTP (gateway/ops).
    autoconfig: AutoconfigSettings | None = None
    #: ``[web]``: the staff's web console over HTTPS (gateway/web); off when absent.
    web: WebSettings | None = None
    #: ``[hl7]``: the MLLP listener for hospital systems (gateway/hl7); off when absent.
    hl7: Hl7Settings | None = None
    #: ``[psc]``: Pro Santé Connect access tokens accepted by SMTP and IMAP (gateway/psc); off when absent.
    psc: PscSettings | None = None
    #: ``[directory]``: the Annuaire Santé (gateway/directory): DMP authors, lookups, the optional RCPT check.
    directory: DirectorySettings | None = None
    #: ``[insi]`` with ``mode = "service"``: the INSi endpoint over mutual TLS (gateway/ins_matching/insi_client).
    insi: InsiSettings | None = None
    #: Live state, not configuration: the whitelist loaded from ``whitelist.source`` (see gateway.trust).
    trusted: TrustedDomains = field(default_factory=TrustedDomains, compare=False, repr=False)

    def serves(self, domain: str) -> bool:
        """Whether mail for ``domain`` is ours (a professional domain or the patient domain)."""
        domain = domain.lower()
        return domain in self.domains or domain == self.patient_domain
