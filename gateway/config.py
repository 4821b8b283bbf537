"""The gateway's configuration: one TOML file, validated once at start.

Every value is checked here so that the daemon never starts half-configured: a bad file raises
:class:`ConfigError` whose message is one sentence naming the offending key. Other modules receive
typed, frozen dataclasses and never read the TOML themselves.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from gateway.directory.settings import DirectorySettings
    from gateway.hl7.settings import Hl7Settings
    from gateway.ins_matching.insi_settings import InsiSettings
    from gateway.psc.settings import PscSettings

T = TypeVar("T")

#: TLS 1.2 cipher suites named by the ANS client profile (domain.md section 6); TLS 1.3 suites are fixed.
ANS_TLS12_CIPHERS = (
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"
)


class ConfigError(Exception):
    """A configuration problem, as one sentence naming the key."""


@dataclass(frozen=True)
class Listen:
    """A TCP address a listener binds to."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TLSSettings:
    certificate: Path
    private_key: Path
    minimum_version: str = "1.2"
    ciphers: str = ANS_TLS12_CIPHERS
    #: CA bundle used to verify client certificates (operators, software); optional for submission.
    client_ca: Path | None = None


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

    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2
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


@dataclass(frozen=True)
class DmpProfessional:
    """A professional of the structure as the DMP knows them (author of deposits, VIHF subject)."""

    national_id: str  # "8" + RPPS
    family: str
    given: str
    mailbox: str
    #: Profession code (TRE_G15, e.g. "10" médecin) and its label: VIHF subject:role and XDS authorRole.
    #: Empty: read from the Annuaire Santé (gateway/dmp_bridge/authors.py); given, it overrides the directory.
    role: str = ""
    role_name: str = ""
    #: Specialty code (TRE_R38, e.g. "SM26") and its label: VIHF subject:role and XDS authorSpecialty.
    #: Empty: read from the Annuaire Santé; given, it overrides the directory.
    specialty: str = ""
    specialty_name: str = ""


@dataclass(frozen=True)
class DmpSettings:
    """The DMP bridge: where the DMP is, who the structure is, and its deposit policy (R12–R16)."""

    repository_url: str
    registry_url: str
    ca_file: Path
    client_certificate: Path
    client_key: Path
    signing_certificate: Path
    signing_key: Path
    structure_id: str
    structure_name: str
    source_id: str
    default_mode: str = "systematic"
    modes: tuple[tuple[str, str], ...] = ()
    default_visibility: frozenset[str] = frozenset()
    professionals: tuple[DmpProfessional, ...] = ()
    concurrency: int = 8
    #: Seconds before the first retry of a deposit after a transport error, doubling up to ``retry_ceiling``.
    retry_base: float = 30.0
    retry_ceiling: float = 3600.0
    #: Seconds a sent deposit belongs to the process that sent it; after that (the process died) another resends.
    lease: float = 300.0
    #: The software's DMP homologation number (VIHF LPS_ID_HOMOLOGATION_DMP), its name and version (LPS_Nom,
    #: LPS_Version; the version defaults to the package's).
    lps_homologation: str = "DEV-HOMOLOGATION"
    lps_name: str = "MSS gateway"
    lps_version: str = ""
    #: VIHF Secteur_Activite and the structure's healthcareFacilityTypeCode (TRE_R02, one code for both).
    activity_sector: str = "SA07"
    activity_sector_name: str = ""
    #: The submission set's contentTypeCode (1.2.250.1.213.2.2) and its label.
    content_type_code: str = "04"
    content_type_name: str = ""


@dataclass(frozen=True)
class CardSettings:
    """The endpoint card agents report to, over mutual TLS with the agents' certificates."""

    listen: Listen
    client_ca: Path
    presence_timeout: float = 3600.0


@dataclass(frozen=True)
class DocumentSettings:
    """Which deliveries have their documents filed (R10): listed mailboxes, or every professional INBOX."""

    filing_mailboxes: frozenset[str] = frozenset()
    file_all_inboxes: bool = False
    #: The CDA schema documents are validated against (CDA_extended.xsd); development copies when absent.
    cda_schema: Path | None = None
    #: Package bare CDA of submitted messages in an IHE XDM zip and add X-MSS-CODECDA / X-MSS-INS (ANS spec).
    package_outgoing: bool = True
    #: R7: the birth place (INSEE code) must agree whenever the document and the identity both carry it;
    #: ``false`` compares only the four traits R10 names.
    compare_birth_place: bool = True


@dataclass(frozen=True)
class UpstreamSettings:
    """A mailbox at another MSSanté operator, read over IMAP; its messages are imported into ``deliver_to``."""

    name: str
    host: str
    port: int
    username: str
    password_file: Path | None
    client_certificate: Path | None
    client_key: Path | None
    ca_file: Path | None
    mailbox: str
    deliver_to: str
    idle_seconds: float = 300.0


class _Reader:
    """Typed access to a TOML table that remembers the dotted path for error messages."""

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        self._data = data
        self._path = path
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def table(self, name: str, required: bool = False) -> _Reader | None:
        value = self._data.get(name)
        self._seen.add(name)
        if value is None:
            if required:
                raise ConfigError(f"Configuration key '{self.key(name)}' is missing; add a [{self.key(name)}] table.")
            return None
        if not isinstance(value, dict):
            raise ConfigError(f"Configuration key '{self.key(name)}' must be a table.")
        return _Reader(value, self.key(name))

    def get(self, name: str, kind: type[T], default: T | None = None, required: bool = False) -> T:
        self._seen.add(name)
        if name not in self._data:
            if required or default is None:
                raise ConfigError(f"Configuration key '{self.key(name)}' is missing.")
            return default
        value = self._data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(
                f"Configuration key '{self.key(name)}' must be a {kind.__name__}, not {type(value).__name__}."
            )
        return value

    def check(self, name: str, ok: bool, expected: str) -> None:
        if not ok:
            raise ConfigError(f"Configuration key '{self.key(name)}' {expected}.")

    def finish(self) -> None:
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise ConfigError(f"Configuration key '{self.key(unknown[0])}' is not a known setting.")


def _listen(reader: _Reader, name: str) -> Listen | None:
    if name not in reader._data:
        reader._seen.add(name)
        return None
    value = reader.get(name, str)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"Configuration key '{reader.key(name)}' must look like 'host:port', not {value!r}.")
    return Listen(host.strip("[]"), int(port))


def _array_of_tables(reader: _Reader, name: str) -> list[_Reader]:
    """The tables of ``[[name]]`` (none when absent), each read with its own key prefix (``name[0]``)."""
    raw = reader._data.get(name, [])
    reader._seen.add(name)
    key = reader.key(name)
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise ConfigError(f"Configuration key '{key}' must be an array of tables ([[{key}]]).")
    return [_Reader(table, f"{key}[{index}]") for index, table in enumerate(raw)]


def _positive(reader: _Reader, name: str, default: T, convert: Callable[[Any], T]) -> T:
    value = reader.get(name, type(default), default)
    reader.check(name, value > 0, "must be greater than zero")  # type: ignore[operator]
    return convert(value)


def _rate(reader: _Reader, name: str, default: int) -> int:
    """A per-minute ceiling; 0 means none (Postfix's anvil rate limits are off by default too)."""
    value = reader.get(name, int, default)
    reader.check(name, value >= 0, "must be a number per minute, or 0 for no limit")
    return value


def _domain(reader: _Reader, name: str, value: str) -> str:
    value = value.strip().lower().rstrip(".")
    labels = value.split(".")
    ok = len(labels) >= 2 and all(lbl and len(lbl) < 64 and lbl.replace("-", "").isalnum() for lbl in labels)
    reader.check(name, ok, f"must hold domain names, and {value!r} is not one")
    return value


def _default_software_reference() -> str:
    """``mss-gateway/<version>``: the X-MSS-NIL of a gateway whose configuration names no other."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"mss-gateway/{version('mss-gateway')}"
    except PackageNotFoundError:
        return "mss-gateway"


#: Most worker processes ``[gateway] workers`` may ask for.
MAX_WORKERS = 64


def default_workers() -> int:
    """One worker process per core this process may run on (``[gateway] workers`` when absent)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, min(MAX_WORKERS, len(affinity(0)) if affinity else (os.cpu_count() or 1)))


def parse(data: dict[str, Any], base_dir: Path) -> Config:
    """Validate a decoded TOML document; relative paths are resolved against ``base_dir``."""
    root = _Reader(data)
    gw = root.table("gateway", required=True)
    assert gw is not None
    hostname = gw.get("hostname", str, required=True)
    domains_raw = gw.get("domains", list, required=True)
    gw.check("domains", bool(domains_raw) and all(isinstance(d, str) for d in domains_raw),
             "must be a non-empty list of domain names")
    domains = frozenset(_domain(gw, "domains", d) for d in domains_raw)
    patient_domain = _domain(gw, "patient_domain", gw.get("patient_domain", str, required=True))
    gw.check("patient_domain", patient_domain not in domains, "must differ from every professional domain")
    log_level = gw.get("log_level", str, "info")
    gw.check("log_level", log_level in {"debug", "info", "warning", "error"},
             "must be one of debug, info, warning, error")
    workers = gw.get("workers", int, default_workers())
    gw.check("workers", 0 < workers <= MAX_WORKERS, f"must be between 1 and {MAX_WORKERS}")
    stop_grace = _positive(gw, "stop_grace", 30.0, float)
    log_file_raw = gw.get("log_file", str, "")
    log_file = (base_dir / log_file_raw) if log_file_raw else None
    gw.check("log_file", log_file is None or log_file.parent.is_dir(), "must be a file in an existing folder")
    software_reference = gw.get("software_reference", str, _default_software_reference()).strip()
    gw.check("software_reference", 0 < len(software_reference) <= 200 and software_reference.isprintable(),
             "must be 1 to 200 printable characters on one line (it is the X-MSS-NIL header)")
    gw.finish()

    def path(reader: _Reader, name: str, required: bool = True) -> Path | None:
        if not required and name not in reader._data:
            reader._seen.add(name)
            return None
        p = Path(reader.get(name, str, required=True))
        return p if p.is_absolute() else base_dir / p

    db = root.table("database", required=True)
    assert db is not None
    url = db.get("url", str, required=True)
    db.check("url", url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")),
             "must start with 'sqlite+aiosqlite://' or 'postgresql+asyncpg://'")
    if url.startswith("sqlite+aiosqlite://"):
        file = url.removeprefix("sqlite+aiosqlite://").split("?", 1)[0]
        db.check("url", file.startswith("/") and file.strip("/") not in ("", ":memory:"),
                 "must name a SQLite file, as 'sqlite+aiosqlite:///gateway.sqlite3' (relative to the "
                 "configuration's folder) or 'sqlite+aiosqlite:////var/lib/gateway/gateway.sqlite3'")
    else:
        where, _, query = url.removeprefix("postgresql+asyncpg://").partition("?")
        host, _, database = where.rpartition("@")[2].partition("/")
        db.check("url", bool(host or "host=" in query) and bool(database) and "/" not in database,
                 "must name a server and a database, as 'postgresql+asyncpg://gateway@db.example:5432/gateway'")
    if url.startswith("sqlite+aiosqlite:///") and not url.startswith("sqlite+aiosqlite:////"):
        relative = url.removeprefix("sqlite+aiosqlite:///")
        url = f"sqlite+aiosqlite:///{base_dir / relative}"
    db.finish()

    tls_r = root.table("tls", required=True)
    assert tls_r is not None
    cert = path(tls_r, "certificate")
    key = path(tls_r, "private_key")
    assert cert is not None and key is not None
    for name, p in (("certificate", cert), ("private_key", key)):
        _readable(tls_r, name, p)
    minimum = tls_r.get("minimum_version", str, "1.2")
    tls_r.check("minimum_version", minimum in {"1.2", "1.3"}, "must be '1.2' or '1.3' (older TLS is refused)")
    ciphers = tls_r.get("ciphers", str, ANS_TLS12_CIPHERS)
    client_ca = path(tls_r, "client_ca", required=False)
    if client_ca is not None:
        _readable(tls_r, "client_ca", client_ca)
    tls_r.finish()
    tls = TLSSettings(cert, key, minimum, ciphers, client_ca)

    smtp = root.table("smtp") or _Reader({}, "smtp")
    submission = _listen(smtp, "submission")
    submissions = _listen(smtp, "submissions")
    smtp.finish()
    imap_r = root.table("imap") or _Reader({}, "imap")
    imap = _listen(imap_r, "listen")
    imaps = _listen(imap_r, "listen_tls")
    imap_r.finish()
    if not any((submission, submissions, imap, imaps)):
        raise ConfigError("Configuration key 'smtp.submission' is missing; the gateway would have no listener.")

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
    auth = _auth_section(root)

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

    from gateway.ins_matching.insi_settings import parse_section as insi_section

    insi_mode, insi = insi_section(root, path)
    relay, whitelist, outbound = _relay_sections(root, tls, path)
    documents, upstreams = _documents_sections(root, path, domains)
    card = _card_section(root, path, tls)
    dmp = _dmp_section(root, path)
    metrics, autoconfig = _ops_sections(root)
    web = _web_section(root, path)
    from gateway.hl7.settings import parse_section as hl7_section

    hl7 = hl7_section(root, path)
    from gateway.psc.settings import parse_section as psc_section

    psc = psc_section(root, path)
    from gateway.directory.settings import parse_section as directory_section

    directory = directory_section(root, path)
    root.finish()
    return Config(hostname, domains, patient_domain, url, tls, submission, submissions, imap, imaps,
                  limits, rules, insi_mode, log_level, base_dir, relay, whitelist, outbound,
                  documents=documents, upstreams=upstreams, card=card, dmp=dmp, auth=auth, workers=workers,
                  stop_grace=stop_grace, metrics=metrics, autoconfig=autoconfig, web=web,
                  software_reference=software_reference, log_file=log_file,
                  hl7=hl7, psc=psc, directory=directory, insi=insi)


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: where Prometheus scrapes ``/metrics`` and probes ask ``/healthz`` and ``/readyz``."""

    listen: Listen


@dataclass(frozen=True)
class AutoconfigSettings:
    """``[autoconfig]``: Thunderbird's config-v1.1 and Outlook's autodiscover documents, built from the listeners.

    ``listen`` absent: served on ``[metrics] listen``. ``tls``: the listener speaks HTTPS with ``[tls]``'s
    certificate (otherwise a reverse proxy terminates TLS in front of it).
    """

    listen: Listen | None = None
    tls: bool = False
    display_name: str = "MSSanté"


def _ops_sections(root: _Reader) -> tuple[MetricsSettings | None, AutoconfigSettings | None]:
    """[metrics] and [autoconfig]: the operations HTTP listener(s) of gateway/ops."""
    metrics: MetricsSettings | None = None
    met = root.table("metrics")
    if met is not None:
        listen = _listen(met, "listen")
        if listen is None:
            raise ConfigError("Configuration key 'metrics.listen' is missing; it must look like 'host:port' "
                              "(remove [metrics] to turn the endpoint off).")
        met.finish()
        metrics = MetricsSettings(listen)
    autoconfig: AutoconfigSettings | None = None
    auto = root.table("autoconfig")
    if auto is not None:
        own = _listen(auto, "listen")
        if own is None and metrics is None:
            raise ConfigError("Configuration key 'autoconfig.listen' is missing; it must look like 'host:port' "
                              "when there is no [metrics] listener to share.")
        auto.check("listen", own is None or metrics is None or own != metrics.listen,
                   "must differ from metrics.listen (leave it out to share that listener)")
        tls = auto.get("tls", bool, False)
        auto.check("tls", not tls or own is not None, "needs autoconfig.listen (the metrics listener is plain HTTP)")
        name = auto.get("display_name", str, "MSSanté")
        auto.check("display_name", 0 < len(name) <= 100 and name.isprintable(),
                   "must be a printable name of 1 to 100 characters")
        auto.finish()
        autoconfig = AutoconfigSettings(own, tls, name)
    return metrics, autoconfig


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


_ACCESS_MODES = ("manual", "presence", "systematic")
_VISIBILITY = ("INVISIBLE_PATIENT", "MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX")


#: A code of an ANS terminology (TRE_*): letters, digits, '_' and '-'.
_DMP_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _label(reader: _Reader, name: str) -> str:
    """An optional display name of a code (XDS Name, VIHF displayName)."""
    value = reader.get(name, str, "").strip()
    reader.check(name, len(value) <= 200 and value.isprintable() and "^" not in value,
                 "must be a printable label of at most 200 characters without '^'")
    return value


def _dmp_section(root: _Reader, path: Callable[..., Path | None]) -> DmpSettings | None:
    """[dmp] and [[dmp.professional]]: the DMP endpoint, the structure's certificates and its deposit policy."""
    dmp = root.table("dmp")
    if dmp is None:
        return None
    urls = {}
    for name in ("repository_url", "registry_url"):
        urls[name] = dmp.get(name, str, required=True)
        dmp.check(name, urls[name].startswith("https://"), "must be an https:// URL (the DMP is reached over TLS)")
    files: dict[str, Path] = {}
    for name in ("ca_file", "client_certificate", "client_key", "signing_certificate", "signing_key"):
        p = path(dmp, name)
        assert p is not None
        _readable(dmp, name, p)
        files[name] = p
    mode = dmp.get("default_mode", str, "systematic")
    dmp.check("default_mode", mode in _ACCESS_MODES, f"must be one of {', '.join(_ACCESS_MODES)} (R14)")
    modes = dmp.get("modes", dict, {})
    dmp.check("modes", all(isinstance(v, str) and v in _ACCESS_MODES for v in modes.values()),
              f"must map mailbox addresses to one of {', '.join(_ACCESS_MODES)} (R14)")
    visibility = dmp.get("default_visibility", list, [])
    dmp.check("default_visibility", all(v in _VISIBILITY for v in visibility),
              f"must list codes among {', '.join(_VISIBILITY)} (R16)")
    concurrency = _positive(dmp, "concurrency", 8, int)
    retry_base = _positive(dmp, "retry_base", 30.0, float)
    retry_ceiling = _positive(dmp, "retry_ceiling", 3600.0, float)
    dmp.check("retry_ceiling", retry_ceiling >= retry_base, "must not be below retry_base")
    lease = _positive(dmp, "lease", 300.0, float)
    professionals = []
    for pro in _array_of_tables(dmp, "professional"):
        national_id = pro.get("national_id", str, required=True)
        pro.check("national_id", national_id.isdigit() and len(national_id) == 12 and national_id[0] == "8",
                  "must be '8' followed by the 11-digit RPPS number")
        # Without role or specialty they come from the Annuaire Santé ([directory]); given, they override it.
        role = pro.get("role", str, "")
        pro.check("role", role == "" or (_DMP_CODE.fullmatch(role) is not None and role.isdigit()),
                  "must be a profession code of TRE_G15 such as '10' (médecin), or absent to read it from the "
                  "Annuaire Santé")
        specialty = pro.get("specialty", str, "")
        pro.check("specialty", specialty == "" or _DMP_CODE.fullmatch(specialty) is not None,
                  "must be a specialty code of TRE_R38 such as 'SM26' (médecine générale), or absent to read it "
                  "from the Annuaire Santé")
        professionals.append(DmpProfessional(national_id, pro.get("family", str, required=True),
                                             pro.get("given", str, required=True),
                                             pro.get("mailbox", str, required=True).lower(),
                                             role, _label(pro, "role_name"), specialty,
                                             _label(pro, "specialty_name")))
        pro.finish()
    lps: dict[str, str] = {}
    for name, default in (("lps_homologation", DmpSettings.lps_homologation), ("lps_name", DmpSettings.lps_name),
                          ("lps_version", "")):
        lps[name] = dmp.get(name, str, default).strip()
        dmp.check(name, (lps[name] == "" and name == "lps_version")
                  or (0 < len(lps[name]) <= 64 and lps[name].isprintable() and "^" not in lps[name]),
                  "must be 1 to 64 printable characters without '^' (it is a VIHF attribute)")
    sector = dmp.get("activity_sector", str, DmpSettings.activity_sector)
    dmp.check("activity_sector", len(sector) == 4 and sector.startswith("SA") and sector[2:].isdigit(),
              "must be a TRE_R02 sector code such as 'SA07' (cabinet individuel) or 'SA25' (laboratoire); it is "
              "both the VIHF Secteur_Activite and the healthcareFacilityTypeCode of deposits")
    content_type = dmp.get("content_type_code", str, DmpSettings.content_type_code)
    dmp.check("content_type_code", _DMP_CODE.fullmatch(content_type) is not None,
              "must be a submission set contentTypeCode (1.2.250.1.213.2.2) such as '04'")
    settings = DmpSettings(
        urls["repository_url"], urls["registry_url"], files["ca_file"], files["client_certificate"],
        files["client_key"], files["signing_certificate"], files["signing_key"],
        dmp.get("structure_id", str, required=True), dmp.get("structure_name", str, required=True),
        dmp.get("source_id", str, required=True), mode,
        tuple((k.lower(), v) for k, v in modes.items()), frozenset(visibility), tuple(professionals), concurrency,
        retry_base, retry_ceiling, lease, lps["lps_homologation"], lps["lps_name"], lps["lps_version"], sector,
        _label(dmp, "activity_sector_name"), content_type, _label(dmp, "content_type_name"))
    dmp.finish()
    return settings


def _card_section(root: _Reader, path: Callable[..., Path | None], tls: TLSSettings) -> CardSettings | None:
    """[card]: where smart-card agents report insertions and removals (R14's "patient present" signal)."""
    card = root.table("card")
    if card is None:
        return None
    listen = _listen(card, "listen")
    if listen is None:
        raise ConfigError("Configuration key 'card.listen' is missing; it must look like 'host:port'.")
    client_ca = path(card, "client_ca", required=False) or tls.client_ca
    if client_ca is None:
        raise ConfigError("Configuration key 'card.client_ca' is missing (and tls.client_ca is not set); "
                          "card agents authenticate with certificates.")
    _readable(card, "client_ca", client_ca)
    timeout = _positive(card, "presence_timeout", 3600.0, float)
    card.finish()
    return CardSettings(listen, client_ca, timeout)


def _documents_sections(
    root: _Reader, path: Callable[..., Path | None], domains: frozenset[str]
) -> tuple[DocumentSettings | None, tuple[UpstreamSettings, ...]]:
    """[documents] (which deliveries are filed) and [[upstream]] (operator mailboxes read over IMAP)."""
    documents = None
    docs = root.table("documents")
    if docs is not None:
        listed = docs.get("filing_mailboxes", list, [])
        docs.check("filing_mailboxes", all(isinstance(a, str) and "@" in a for a in listed),
                   "must be a list of mailbox addresses")
        schema = path(docs, "cda_schema", required=False)
        if schema is not None:
            _readable(docs, "cda_schema", schema)
        documents = DocumentSettings(frozenset(a.lower() for a in listed), docs.get("file_all_inboxes", bool, False),
                                     schema, docs.get("package_outgoing", bool, True),
                                     docs.get("compare_birth_place", bool, True))
        docs.finish()
    upstreams = []
    for up in _array_of_tables(root, "upstream"):
        name = up.get("name", str, required=True)
        host = up.get("host", str, required=True)
        port = up.get("port", int, 993)
        up.check("port", 0 < port < 65536, "must be a TCP port")
        username = up.get("username", str, required=True)
        password_file = path(up, "password_file", required=False)
        certificate = path(up, "client_certificate", required=False)
        key = path(up, "client_key", required=False)
        ca_file = path(up, "ca_file", required=False)
        for key_name, p in (("password_file", password_file), ("client_certificate", certificate),
                            ("client_key", key), ("ca_file", ca_file)):
            if p is not None:
                _readable(up, key_name, p)
        up.check("password_file", password_file is not None or certificate is not None,
                 "is missing; give a password_file or a client_certificate")
        up.check("client_key", (certificate is None) == (key is None), "must be given with client_certificate")
        deliver_to = up.get("deliver_to", str, required=True).lower()
        up.check("deliver_to", deliver_to.rpartition("@")[2] in domains, "must be a mailbox of this gateway's domains")
        upstreams.append(UpstreamSettings(
            name, host, port, username, password_file, certificate, key, ca_file, up.get("mailbox", str, "INBOX"),
            deliver_to, up.get("idle_seconds", float, 300.0)))
        up.finish()
    return documents, tuple(upstreams)


def _readable(reader: _Reader, name: str, p: Path | None) -> None:
    if p is not None:
        reader.check(name, p.is_file(), f"names {str(p)!r}, which is not a readable file")


def _relay_sections(
    root: _Reader, tls: TLSSettings, path: Callable[..., Path | None]
) -> tuple[RelaySettings | None, WhitelistSettings | None, OutboundSettings | None]:
    """[relay], [whitelist] and [outbound]: exchanging mail with other operators over mutual TLS."""
    relay: RelaySettings | None = None
    relay_r = root.table("relay")
    anchors_default = tls.client_ca
    if relay_r is not None:
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
        relay = RelaySettings(listen, anchors, crl, match, dedupe_window)
        anchors_default = anchors

    whitelist: WhitelistSettings | None = None
    wl = root.table("whitelist")
    if wl is not None:
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

    outbound: OutboundSettings | None = None
    out = root.table("outbound")
    if out is not None:
        cert = path(out, "certificate", required=False) or tls.certificate
        key = path(out, "private_key", required=False) or tls.private_key
        anchors = path(out, "trust_anchors", required=False) or anchors_default
        if anchors is None:
            raise ConfigError("Configuration key 'outbound.trust_anchors' is missing (and neither relay.trust_anchors"
                              " nor tls.client_ca is set); outbound TLS must verify peers against known CAs.")
        for name, p in (("certificate", cert), ("private_key", key), ("trust_anchors", anchors)):
            _readable(out, name, p)
        if whitelist is None:
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
    return relay, whitelist, outbound


def load(path: Path) -> Config:
    """Read and validate the configuration file at ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Configuration file {str(path)!r} does not exist; run 'gateway init' to create one.") \
            from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Configuration file {str(path)!r} is not valid TOML: {exc}.") from None
    return parse(data, path.parent.resolve())


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


def _web_section(root: _Reader, path: Callable[..., Path | None]) -> WebSettings | None:
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
        oidc = OidcSettings(issuer.rstrip("/"), client_id, secret, public_url, o.get("scope", str, "openid"),
                            ca_file, o.get("subject_claim", str, "sub"))
        o.finish()
    web.finish()
    return WebSettings(listen, value.encode("utf-8"), idle, tls, oidc)
