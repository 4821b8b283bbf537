"""[limits], [auth] and [rules]: sizes, rates and timeouts, the password hashing cost, and the R1/R4/R8 options.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.reader import _domain, _positive, _rate, _Reader


@dataclass(frozen=True)
class Limits:
    message_size: int = 25 * 1024 * 1024
    recipients_per_message: int = 100
    failed_logins: int = 5
    failed_login_window: float = 300.0
    smtp_idle_timeout: float = 300.0
    #: SMTP DATA/BDAT must arrive at least this fast (bytes/s): the whole transfer may last
    #: message_size / smtp_min_data_rate seconds (plus smtp_idle_timeout), never forever.
    smtp_min_data_rate: int = 10_000
    #: Errors (4xx/5xx replies) one SMTP session may collect before 421 4.7.0 and disconnect.
    smtp_max_errors: int = 20
    #: Unknown or refused commands allowed before STARTTLS on the submission port.
    smtp_max_pre_tls_commands: int = 10
    imap_literal_unauthenticated: int = 4096
    imap_literal_authenticated: int = 65536
    #: Failed logins from one address for all accounts together (``failed_logins`` counts per address and
    #: account): one person's typos behind a shared NAT address do not lock the others out.
    failed_logins_per_address: int = 30
    #: Connections open at once from one address (Postfix anvil's default concurrency), and opened per minute.
    connections_per_address: int = 50
    connection_rate_per_address: int = 0
    #: Messages and recipients per minute per account (gateway.auth.anvil).
    messages_per_minute: int = 0
    recipients_per_minute: int = 0
    #: Bytes a mailbox account may hold over all its folders (RFC 9208 STORAGE); 0 = no quota. APPEND past it
    #: is ``NO [OVERQUOTA]``, SMTP to a full mailbox ``452 4.2.2``.
    mailbox_quota: int = 0


@dataclass(frozen=True)
class AuthSettings:
    """``[auth]``: Argon2id cost (OWASP's recommendation by default) and the verified-credential cache."""

    argon2_memory_kib: int = 7168
    argon2_time_cost: int = 5
    argon2_parallelism: int = 1
    #: Seconds a verified (user name, password) pair is accepted again without hashing; 0 turns the cache off.
    cache_ttl: float = 300.0
    cache_size: int = 10_000


@dataclass(frozen=True)
class Rules:
    #: Mailboxes (addresses) that patients may write to first: the pharmacy exception of R1.
    patients_may_write_first: frozenset[str] = frozenset()
    #: Accept test-OID INS (1.2.250.1.213.1.4.10/.11) as real identities (R8); never in production.
    allow_test_identities: bool = False
    #: Patient domains of other operators (nationally patient.mssante.fr): their addresses are INS matricules,
    #: our professionals writing there need a qualified identity (R4) and open a conversation (R1), and relayed
    #: mail from them reaches our professionals only inside an open conversation (R1–R3).
    remote_patient_domains: frozenset[str] = frozenset()



def _limits_section(root: _Reader) -> Limits:
    """[limits]: every bound the listeners enforce (sizes, errors, logins, connections, rates, quota)."""
    lim = root.table("limits") or _Reader({}, "limits")
    d = Limits()
    limits = Limits(
        message_size=_positive(lim, "message_size", d.message_size, int),
        recipients_per_message=_positive(lim, "recipients_per_message", d.recipients_per_message, int),
        failed_logins=_positive(lim, "failed_logins", d.failed_logins, int),
        failed_login_window=_positive(lim, "failed_login_window", d.failed_login_window, float),
        smtp_idle_timeout=_positive(lim, "smtp_idle_timeout", d.smtp_idle_timeout, float),
        smtp_min_data_rate=_positive(lim, "smtp_min_data_rate", d.smtp_min_data_rate, int),
        smtp_max_errors=_positive(lim, "smtp_max_errors", d.smtp_max_errors, int),
        smtp_max_pre_tls_commands=_positive(lim, "smtp_max_pre_tls_commands", d.smtp_max_pre_tls_commands, int),
        imap_literal_unauthenticated=_positive(
            lim, "imap_literal_unauthenticated", d.imap_literal_unauthenticated, int),
        imap_literal_authenticated=_positive(lim, "imap_literal_authenticated", d.imap_literal_authenticated, int),
        failed_logins_per_address=_positive(lim, "failed_logins_per_address", d.failed_logins_per_address, int),
        connections_per_address=_positive(lim, "connections_per_address", d.connections_per_address, int),
        connection_rate_per_address=_rate(lim, "connection_rate_per_address", d.connection_rate_per_address),
        messages_per_minute=_rate(lim, "messages_per_minute", d.messages_per_minute),
        recipients_per_minute=_rate(lim, "recipients_per_minute", d.recipients_per_minute),
        mailbox_quota=lim.get("mailbox_quota", int, d.mailbox_quota),
    )
    lim.check("mailbox_quota", limits.mailbox_quota >= 0, "must be a number of bytes (0 means no quota)")
    lim.check("failed_logins_per_address", limits.failed_logins_per_address >= limits.failed_logins,
              "must not be below failed_logins (it counts every account of the address together)")
    lim.finish()
    return limits


def _auth_section(root: _Reader) -> AuthSettings:
    """[auth]: Argon2id parameters (RFC 9106 section 3.1) and the verified-credential cache."""
    auth = root.table("auth") or _Reader({}, "auth")
    d = AuthSettings()
    parallelism = _positive(auth, "argon2_parallelism", d.argon2_parallelism, int)
    auth.check("argon2_parallelism", parallelism <= 64, "must be at most 64 lanes")
    memory = _positive(auth, "argon2_memory_kib", d.argon2_memory_kib, int)
    auth.check("argon2_memory_kib", 8 * parallelism <= memory <= 4 * 1024 * 1024,
               "must be at least 8 KiB per lane (RFC 9106) and at most 4194304 (4 GiB)")
    time_cost = _positive(auth, "argon2_time_cost", d.argon2_time_cost, int)
    auth.check("argon2_time_cost", time_cost <= 100, "must be at most 100 passes")
    ttl = auth.get("cache_ttl", float, d.cache_ttl)
    auth.check("cache_ttl", 0 <= ttl <= 86400, "must be between 0 (no cache) and 86400 seconds")
    size = _positive(auth, "cache_size", d.cache_size, int)
    auth.finish()
    return AuthSettings(memory, time_cost, parallelism, ttl, size)


def _rules_section(root: _Reader) -> Rules:
    """[rules]: the pharmacy exception (R1), test identities (R8) and other operators' patient domains (R4)."""
    rules_r = root.table("rules") or _Reader({}, "rules")
    first = rules_r.get("patients_may_write_first", list, [])
    rules_r.check("patients_may_write_first", all(isinstance(a, str) and "@" in a for a in first),
                  "must be a list of mailbox addresses")
    remote_patients = rules_r.get("remote_patient_domains", list, [])
    rules_r.check("remote_patient_domains", all(isinstance(d, str) for d in remote_patients),
                  "must be a list of domain names")
    rules = Rules(frozenset(a.lower() for a in first), rules_r.get("allow_test_identities", bool, False),
                  frozenset(_domain(rules_r, "remote_patient_domains", d) for d in remote_patients))
    rules_r.finish()
    return rules
