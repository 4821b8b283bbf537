"""[tls], [smtp] and [imap]: the addresses the listeners bind to and the certificate they present.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config.reader import ConfigError, PathOf, _readable, _Reader

#: TLS 1.2 cipher suites named by the ANS client profile (domain.md section 6); TLS 1.3 suites are fixed.
ANS_TLS12_CIPHERS = (
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"
)



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



def _listen(reader: _Reader, name: str) -> Listen | None:
    if name not in reader._data:
        reader._seen.add(name)
        return None
    value = reader.get(name, str)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"Configuration key '{reader.key(name)}' must look like 'host:port', not {value!r}.")
    return Listen(host.strip("[]"), int(port))



def _tls_section(root: _Reader, path: PathOf) -> TLSSettings:
    """[tls]: the listeners' certificate and key, the lowest TLS version and the TLS 1.2 ciphers (ANS profile)."""
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
    return TLSSettings(cert, key, minimum, ciphers, client_ca)


def _listeners(root: _Reader) -> tuple[Listen | None, Listen | None, Listen | None, Listen | None]:
    """[smtp] and [imap]: submission (STARTTLS), submissions (implicit TLS), IMAP and IMAPS; at least one."""
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
    return submission, submissions, imap, imaps
