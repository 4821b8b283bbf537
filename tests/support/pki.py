"""A development PKI generated once per test session (never committed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.pki import DevelopmentPKI

HOSTNAME = "mail.gateway.test"


@dataclass(frozen=True)
class PKIFiles:
    pki: DevelopmentPKI
    folder: Path
    ca_bundle: Path
    server_cert: Path
    server_key: Path


def make_pki(folder: Path) -> PKIFiles:
    pki = DevelopmentPKI.create()
    pki.save(folder)
    pki.server(HOSTNAME).write(folder / "server.crt", folder / "server.key")
    return PKIFiles(pki, folder, folder / "ca-bundle.crt", folder / "server.crt", folder / "server.key")
