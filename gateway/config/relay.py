"""[relay], [whitelist] and [outbound]: exchanging mail with other operators over mutual TLS.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.config.listeners import Listen, TLSSettings, _listen
from gateway.config.reader import ConfigError, PathOf, _domain, _positive, _readable, _Reader


@dataclass(frozen=True)
class RelaySettings:
    """The inbound relay listener (port 25 style): other operators deliver to us over mutual TLS."""

    listen: Listen
    #: CA bundle the operators' client certificates must chain to (IGC-Santé in production).
    trust_anchors: Path
    #: Optional certificate revocation list (PEM or DER), re-read when the file changes.
    crl: Path | None = None
    #: The MAIL FROM domain must be one the peer's certificate names (or a parent of one of its names).
    sender_must_match_certificate: bool = True
    #: Seconds during which a message from the same operator with the same Message-ID and envelope is answered
    #: 250 and not stored again: a peer that crashed after our 250 re-sends it, and it arrives once.
    dedupe_window: float = 86400.0


@dataclass(frozen=True)
class WhitelistSettings:
    """The national whitelist of operator domains (liste blanche): a file path or an https URL."""

    source: str
    refresh_interval: float = 3600.0
    max_size: int = 8 * 1024 * 1024
    #: Where the last good copy is kept, so that a restart while the source is down still knows the domains.
    cache: Path | None = None


@dataclass(frozen=True)
class OutboundSettings:
    """Delivery to other operators: client certificate, trust anchors, next hops, retries."""

    certificate: Path
    private_key: Path
    trust_anchors: Path
    #: Static next hop per domain: ``{"b.example" = "mx.b.example:25"}``; other domains use MX (or the domain).
    routes: dict[str, tuple[str, int]] = field(default_factory=dict)
    use_mx: bool = True
    port: int = 25
    retry_schedule: tuple[float, ...] = (60.0, 300.0, 900.0, 1800.0, 3600.0)
    max_age: float = 5 * 24 * 3600.0
    concurrency: int = 20
    poll_interval: float = 1.0
    connect_timeout: float = 30.0
    command_timeout: float = 120.0
    #: How long a claimed recipient stays reserved for its worker (longer than any delivery attempt).
    lease: float = 900.0


class TrustedDomains:
    """The whitelist in effect: replaced as a whole by each good refresh, read by routing and the relay."""

    def __init__(self, domains: frozenset[str] = frozenset()) -> None:
        self.domains = domains
        self.loaded = bool(domains)

    def replace(self, domains: frozenset[str]) -> None:
        self.domains = domains
        self.loaded = True

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str) and domain.lower().rstrip(".") in self.domains



def _relay_sections(
    root: _Reader, tls: TLSSettings, path: PathOf
) -> tuple[RelaySettings | None, WhitelistSettings | None, OutboundSettings | None]:
    """[relay], [whitelist] and [outbound]: exchanging mail with other operators over mutual TLS."""
    relay = _relay_section(root, tls, path)
    whitelist = _whitelist_section(root, path)
    anchors = relay.trust_anchors if relay is not None else tls.client_ca
    return relay, whitelist, _outbound_section(root, tls, path, anchors, whitelist is not None)


def _relay_section(root: _Reader, tls: TLSSettings, path: PathOf) -> RelaySettings | None:
    """[relay]: the listener other operators deliver to, the CAs their certificates chain to, the CRL."""
    relay_r = root.table("relay")
    if relay_r is None:
        return None
    listen = _listen(relay_r, "listen")
    if listen is None:
        raise ConfigError("Configuration key 'relay.listen' is missing; it must look like 'host:port'.")
    anchors = path(relay_r, "trust_anchors", required=False) or tls.client_ca
    if anchors is None:
        raise ConfigError("Configuration key 'relay.trust_anchors' is missing (and tls.client_ca is not set); "
                          "the relay must know which CAs operators' certificates chain to.")
    _readable(relay_r, "trust_anchors", anchors)
    crl = path(relay_r, "crl", required=False)
    _readable(relay_r, "crl", crl)
    match = relay_r.get("sender_must_match_certificate", bool, True)
    dedupe_window = _positive(relay_r, "dedupe_window", RelaySettings.dedupe_window, float)
    relay_r.finish()
    return RelaySettings(listen, anchors, crl, match, dedupe_window)


def _whitelist_section(root: _Reader, path: PathOf) -> WhitelistSettings | None:
    """[whitelist]: where the national list of operator domains is read from, and how often."""
    wl = root.table("whitelist")
    if wl is None:
        return None
    source = wl.get("source", str, required=True)
    if source.startswith(("https://", "http://")):
        wl.check("source", source.startswith("https://"), "must be an https:// URL or a file path")
    else:
        local = path(wl, "source")
        assert local is not None
        source = str(local)
    d = WhitelistSettings(source)
    cache = path(wl, "cache", required=False)
    whitelist = WhitelistSettings(
        source, _positive(wl, "refresh_interval", d.refresh_interval, float),
        _positive(wl, "max_size", d.max_size, int), cache)
    wl.finish()
    return whitelist


def _outbound_section(
    root: _Reader, tls: TLSSettings, path: PathOf, anchors_default: Path | None, whitelisted: bool
) -> OutboundSettings | None:
    """[outbound]: our client certificate, the CAs peers must chain to, next hops and retries."""
    out = root.table("outbound")
    if out is None:
        return None
    cert = path(out, "certificate", required=False) or tls.certificate
    key = path(out, "private_key", required=False) or tls.private_key
    anchors = path(out, "trust_anchors", required=False) or anchors_default
    if anchors is None:
        raise ConfigError("Configuration key 'outbound.trust_anchors' is missing (and neither relay.trust_anchors"
                          " nor tls.client_ca is set); outbound TLS must verify peers against known CAs.")
    for name, p in (("certificate", cert), ("private_key", key), ("trust_anchors", anchors)):
        _readable(out, name, p)
    if not whitelisted:
        raise ConfigError("Configuration key 'whitelist.source' is missing; outbound delivery goes only to "
                          "whitelisted domains.")
    routes_raw = out.get("routes", dict, {})
    routes: dict[str, tuple[str, int]] = {}
    for domain, hop in routes_raw.items():
        host, sep, port = str(hop).rpartition(":")
        out.check("routes", isinstance(hop, str) and bool(sep) and bool(host) and port.isdigit()
                  and 0 < int(port) < 65536, f"must map domains to 'host:port', and {hop!r} is not one")
        routes[_domain(out, "routes", str(domain))] = (host.strip("[]"), int(port))
    d2 = OutboundSettings(cert, key, anchors)
    schedule = out.get("retry_schedule", list, list(d2.retry_schedule))
    out.check("retry_schedule", bool(schedule) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in schedule),
        "must be a non-empty list of positive numbers of seconds")
    outbound = OutboundSettings(
        cert, key, anchors, routes,
        use_mx=out.get("use_mx", bool, True),
        port=_positive(out, "port", d2.port, int),
        retry_schedule=tuple(float(v) for v in schedule),
        max_age=_positive(out, "max_age", d2.max_age, float),
        concurrency=_positive(out, "concurrency", d2.concurrency, int),
        poll_interval=_positive(out, "poll_interval", d2.poll_interval, float),
        connect_timeout=_positive(out, "connect_timeout", d2.connect_timeout, float),
        command_timeout=_positive(out, "command_timeout", d2.command_timeout, float),
        lease=_positive(out, "lease", d2.lease, float),
    )
    out.finish()
    return outbound
