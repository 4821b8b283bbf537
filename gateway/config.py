"""The gateway's configuration: one TOML file, validated once at start.

Every value is checked here so that the daemon never starts half-configured: a bad file raises
:class:`ConfigError` whose message is one sentence naming the offending key. Other modules receive
typed, frozen dataclasses and never read the TOML themselves.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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
    imap_literal_unauthenticated: int = 4096
    imap_literal_authenticated: int = 65536


@dataclass(frozen=True)
class Rules:
    #: Mailboxes (addresses) that patients may write to first: the pharmacy exception of R1.
    patients_may_write_first: frozenset[str] = frozenset()
    #: Accept test-OID INS (1.2.250.1.213.1.4.10/.11) as real identities (R8); never in production.
    allow_test_identities: bool = False


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

    def serves(self, domain: str) -> bool:
        """Whether mail for ``domain`` is ours (a professional domain or the patient domain)."""
        domain = domain.lower()
        return domain in self.domains or domain == self.patient_domain


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


def _positive(reader: _Reader, name: str, default: T, convert: Callable[[Any], T]) -> T:
    value = reader.get(name, type(default), default)
    reader.check(name, value > 0, "must be greater than zero")  # type: ignore[operator]
    return convert(value)


def _domain(reader: _Reader, name: str, value: str) -> str:
    value = value.strip().lower().rstrip(".")
    labels = value.split(".")
    ok = len(labels) >= 2 and all(lbl and len(lbl) < 64 and lbl.replace("-", "").isalnum() for lbl in labels)
    reader.check(name, ok, f"must hold domain names, and {value!r} is not one")
    return value


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
        tls_r.check(name, p.is_file(), f"names {str(p)!r}, which is not a readable file")
    minimum = tls_r.get("minimum_version", str, "1.2")
    tls_r.check("minimum_version", minimum in {"1.2", "1.3"}, "must be '1.2' or '1.3' (older TLS is refused)")
    ciphers = tls_r.get("ciphers", str, ANS_TLS12_CIPHERS)
    client_ca = path(tls_r, "client_ca", required=False)
    if client_ca is not None:
        tls_r.check("client_ca", client_ca.is_file(), f"names {str(client_ca)!r}, which is not a readable file")
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
        imap_literal_unauthenticated=_positive(
            lim, "imap_literal_unauthenticated", d.imap_literal_unauthenticated, int),
        imap_literal_authenticated=_positive(lim, "imap_literal_authenticated", d.imap_literal_authenticated, int),
    )
    lim.finish()

    rules_r = root.table("rules") or _Reader({}, "rules")
    first = rules_r.get("patients_may_write_first", list, [])
    rules_r.check("patients_may_write_first", all(isinstance(a, str) and "@" in a for a in first),
                  "must be a list of mailbox addresses")
    rules = Rules(frozenset(a.lower() for a in first), rules_r.get("allow_test_identities", bool, False))
    rules_r.finish()

    insi = root.table("insi") or _Reader({}, "insi")
    insi_mode = insi.get("mode", str, "simulator")
    insi.check("mode", insi_mode == "simulator", "must be 'simulator' (the national INSi service is unreachable here)")
    insi.finish()
    root.finish()
    return Config(hostname, domains, patient_domain, url, tls, submission, submissions, imap, imaps,
                  limits, rules, insi_mode, log_level, base_dir)


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
