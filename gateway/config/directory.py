"""``[directory]``: how the gateway reaches the Annuaire Santé (national directory of health professionals).

The structure registers with the ANS for an API key (sent as ``ESANTE-API-KEY``) and names the FHIR base URL;
the key lives in a file of its own (``api_key_file``), never in the configuration. ``check_recipients``
(off by default: the directory lags behind the whitelist) refuses at RCPT a remote MSSanté address the
directory does not publish.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config.reader import _Reader

DEFAULT_BASE_URL = "https://gateway.api.esante.gouv.fr/fhir/v2"


@dataclass(frozen=True)
class DirectorySettings:
    base_url: str
    api_key: str = field(repr=False)
    #: CA bundle for the directory's HTTPS (the simulator's development PKI); the system store when absent.
    ca_file: Path | None = None
    timeout: float = 5.0
    cache_ttl: float = 3600.0
    negative_cache_ttl: float = 300.0
    max_answer_bytes: int = 2_000_000
    max_entries: int = 200
    max_pages: int = 5
    check_recipients: bool = False



def parse_section(root: _Reader, path: Callable[..., Path | None]) -> DirectorySettings | None:
    """[directory]: see :class:`DirectorySettings`; every error names its key."""
    from gateway.config.reader import _positive

    d = root.table("directory")
    if d is None:
        return None
    base_url = d.get("base_url", str, DEFAULT_BASE_URL).rstrip("/")
    d.check("base_url", base_url.startswith("https://"), "must be an https:// URL (the API key travels with it)")
    key_file = path(d, "api_key_file")
    assert key_file is not None
    d.check("api_key_file", key_file.is_file(), f"names {str(key_file)!r}, which is not a readable file")
    api_key = key_file.read_text(encoding="utf-8").strip()
    d.check("api_key_file", 0 < len(api_key) <= 512 and api_key.isprintable(),
            "must hold the ESANTE-API-KEY the ANS issued, on one line")
    ca_file = path(d, "ca_file", required=False)
    if ca_file is not None:
        d.check("ca_file", ca_file.is_file(), f"names {str(ca_file)!r}, which is not a readable file")
    dflt = DirectorySettings(base_url, api_key)
    settings = DirectorySettings(
        base_url, api_key, ca_file,
        timeout=_positive(d, "timeout", dflt.timeout, float),
        cache_ttl=_positive(d, "cache_ttl", dflt.cache_ttl, float),
        negative_cache_ttl=_positive(d, "negative_cache_ttl", dflt.negative_cache_ttl, float),
        max_answer_bytes=_positive(d, "max_answer_bytes", dflt.max_answer_bytes, int),
        max_entries=_positive(d, "max_entries", dflt.max_entries, int),
        max_pages=_positive(d, "max_pages", dflt.max_pages, int),
        check_recipients=d.get("check_recipients", bool, False))
    d.finish()
    return settings
