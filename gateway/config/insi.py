"""``[insi]``: which INSi the gateway asks (R9): the in-process simulator, or an INSi service over mutual TLS
(the national teleservice, or ``gateway insi-simulator``).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config.reader import ConfigError

if TYPE_CHECKING:
    from gateway.config.reader import _Reader

MODES = ("simulator", "service")


@dataclass(frozen=True)
class InsiSettings:
    """``mode = "service"``: the SOAP client of insi_client.py with these certificate, key and trust anchors."""

    url: str
    client_certificate: Path
    client_key: Path
    ca_file: Path
    timeout: float = 10.0


def parse_section(root: _Reader, path: Callable[..., Path | None]) -> tuple[str, InsiSettings | None]:
    """The INSi mode and, for ``service``, its settings; every wrong value named by its key."""
    from gateway.config.reader import _readable, _Reader

    section = root.table("insi") or _Reader({}, "insi")
    mode = section.get("mode", str, "simulator")
    section.check("mode", mode in MODES, "must be 'simulator' (in-process test identities) or 'service' (an INSi "
                  "endpoint over mutual TLS)")
    if mode == "simulator":
        section.finish()
        return mode, None
    url = section.get("url", str, required=True)
    section.check("url", url.startswith("https://") and len(url) < 500 and not any(c.isspace() for c in url),
                  "must be the service's https:// address")
    files = {}
    for name in ("client_certificate", "client_key", "ca_file"):
        p = path(section, name)
        if p is None:
            raise ConfigError(f"Configuration key 'insi.{name}' is missing; mode 'service' needs it.")
        _readable(section, name, p)
        files[name] = p
    timeout = section.get("timeout", float, 10.0)
    section.check("timeout", 0 < timeout <= 120, "must be between 0 and 120 seconds")
    section.finish()
    return mode, InsiSettings(url, files["client_certificate"], files["client_key"], files["ca_file"], timeout)
