"""The DNS records a structure publishes so that mail clients find the gateway by themselves.

For each of its domains (professional domains and the patient domain): the SRV records of RFC 6186 section 3
(``_submission._tcp``, ``_imap._tcp``, ``_imaps._tcp``) and of RFC 8314 section 5.1 (``_submissions._tcp``),
implicit TLS with the lower (preferred) priority; a service that is not configured is published with the
target ``.`` ("decidedly not available", RFC 2782 and RFC 6186 section 4) so that clients do not guess; and the
``autoconfig`` and ``autodiscover`` names Thunderbird and Outlook look up, as CNAMEs of the gateway's host name.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gateway.config import Config, Listen
from gateway.ops.autoconfig import served_domains

DEFAULT_TTL = 3600
#: Priorities: lower is preferred (RFC 2782); RFC 8314 section 5.1 prefers implicit TLS.
IMPLICIT_TLS_PRIORITY = 0
STARTTLS_PRIORITY = 10


@dataclass(frozen=True)
class Record:
    """One resource record; SRV fields are set for SRV records only."""

    domain: str
    name: str
    type: str
    ttl: int
    target: str
    priority: int | None = None
    weight: int | None = None
    port: int | None = None

    def zone_line(self) -> str:
        """The record as a zone-file line (RFC 1035 section 5.1)."""
        if self.type == "SRV":
            data = f"{self.priority} {self.weight} {self.port} {self.target}"
        else:
            data = self.target
        return f"{self.name} {self.ttl} IN {self.type} {data}"

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _fqdn(name: str) -> str:
    return name.rstrip(".") + "."


def records(config: Config, ttl: int = DEFAULT_TTL) -> list[Record]:
    """Every record to publish, domain by domain."""
    host = _fqdn(config.hostname)
    services: list[tuple[str, Listen | None, int]] = [
        ("_submissions._tcp", config.submissions, IMPLICIT_TLS_PRIORITY),
        ("_submission._tcp", config.submission, STARTTLS_PRIORITY),
        ("_imaps._tcp", config.imaps, IMPLICIT_TLS_PRIORITY),
        ("_imap._tcp", config.imap, STARTTLS_PRIORITY),
    ]
    found: list[Record] = []
    for domain in served_domains(config):
        for service, listen, priority in services:
            name = f"{service}.{_fqdn(domain)}"
            if listen is None:  # RFC 6186 section 4: the service is not offered here
                found.append(Record(domain, name, "SRV", ttl, ".", 0, 0, 0))
            else:
                found.append(Record(domain, name, "SRV", ttl, host, priority, 1, listen.port))
        for label in ("autoconfig", "autodiscover"):
            found.append(Record(domain, f"{label}.{_fqdn(domain)}", "CNAME", ttl, host))
    return found


def zone_text(config: Config, ttl: int = DEFAULT_TTL) -> str:
    """The records as zone-file lines, one commented block per domain."""
    lines: list[str] = []
    current = None
    for record in records(config, ttl):
        if record.domain != current:
            if current is not None:
                lines.append("")
            lines.append(f"; {record.domain}: mail clients find {config.hostname} (RFC 6186, RFC 8314)")
            current = record.domain
        lines.append(record.zone_line())
    return "\n".join(lines) + "\n"
