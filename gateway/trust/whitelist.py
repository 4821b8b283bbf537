"""The national whitelist of trusted domains (*liste blanche* MSSanté): parse it safely, refresh it, keep the last good.

Format: XML in the namespace ``https://listeblanche.mssante.fr/schema``; every ``//Domaine/Nom`` is a domain of the
trust space. Names may be in Unicode and are kept as IDNA (A-labels), lower case, as they appear on the wire.
The parser is bounded: size limit, no DTD, no entities, no network, no huge trees, and a cap on the number of
domains. A refresh that fails (unreachable, too large, malformed, empty) leaves the list in effect unchanged.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import urllib.request
from pathlib import Path

import structlog
from lxml import etree

from gateway.config import TrustedDomains, WhitelistSettings
from gateway.tasks import cancel_and_wait

NAMESPACE = "https://listeblanche.mssante.fr/schema"
MAX_DOMAINS = 500_000
FETCH_TIMEOUT = 60.0
log = structlog.get_logger("gateway.trust")


class WhitelistError(ValueError):
    """The whitelist could not be read: the list in effect is kept."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           dtd_validation=False, remove_comments=True, remove_pis=True)


def idna_domain(name: str) -> str | None:
    """A domain name in IDNA ASCII form, lower case, or None when it is not a usable domain name."""
    name = name.strip().rstrip(".")
    if not name or len(name) > 253 or any(c.isspace() for c in name):
        return None
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except (UnicodeError, ValueError):
        return None
    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(0 < len(lbl) < 64 and lbl.replace("-", "").isalnum() and lbl[0] != "-"
                                  and lbl[-1] != "-" for lbl in labels):
        return None
    return ascii_name


def parse(data: bytes, max_size: int = 8 * 1024 * 1024) -> frozenset[str]:
    """The domains of a whitelist document; raises :class:`WhitelistError` when it is unusable."""
    if len(data) > max_size:
        raise WhitelistError(f"the whitelist is larger than {max_size} bytes")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise WhitelistError(f"the whitelist is not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise WhitelistError("the whitelist carries a DTD, which is refused")
    names = root.xpath("//w:Domaine/w:Nom/text()", namespaces={"w": NAMESPACE})
    assert isinstance(names, list)
    if len(names) > MAX_DOMAINS:
        raise WhitelistError(f"the whitelist names more than {MAX_DOMAINS} domains")
    domains = {d for d in (idna_domain(str(n)) for n in names) if d is not None}
    if not domains:
        raise WhitelistError("the whitelist names no valid domain")
    skipped = len(names) - len(domains)
    if skipped:
        log.info("whitelist.skipped", count=skipped)
    return frozenset(domains)


def _fetch_url(url: str, max_size: int) -> bytes:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    request = urllib.request.Request(url, headers={"User-Agent": "mss-gateway whitelist refresh"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT, context=context) as response:  # noqa: S310
        data: bytes = response.read(max_size + 1)
    return data


def _read_file(path: Path, max_size: int) -> bytes:
    with path.open("rb") as f:
        return f.read(max_size + 1)


class WhitelistLoader:
    """Loads ``settings.source`` into ``trusted`` now and every ``refresh_interval`` seconds."""

    def __init__(self, settings: WhitelistSettings, trusted: TrustedDomains) -> None:
        self.settings = settings
        self.trusted = trusted
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    async def _fetch(self) -> bytes:
        source, limit = self.settings.source, self.settings.max_size
        if source.startswith("https://"):
            return await asyncio.to_thread(_fetch_url, source, limit)
        return await asyncio.to_thread(_read_file, Path(source), limit)

    async def refresh(self) -> bool:
        """One refresh; True when a new list is in effect. A failure keeps the last good list."""
        try:
            data = await self._fetch()
            domains = parse(data, self.settings.max_size)
        except (OSError, WhitelistError, ValueError) as exc:
            self.failures += 1
            log.warning("whitelist.refresh", outcome="failed", reason=str(exc)[:300],
                        kept=len(self.trusted.domains))
            if not self.trusted.loaded:
                self._load_cache()
            return False
        self.trusted.replace(domains)
        log.info("whitelist.refresh", outcome="ok", domains=len(domains))
        self._save_cache(data)
        return True

    def _save_cache(self, data: bytes) -> None:
        cache = self.settings.cache
        if cache is None:
            return
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(cache.suffix + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, cache)
        except OSError as exc:
            log.warning("whitelist.cache", outcome="not_written", reason=str(exc)[:200])

    def _load_cache(self) -> None:
        cache = self.settings.cache
        if cache is None or not cache.is_file():
            return
        try:
            self.trusted.replace(parse(_read_file(cache, self.settings.max_size), self.settings.max_size))
            log.info("whitelist.cache", outcome="loaded", domains=len(self.trusted.domains))
        except (OSError, WhitelistError) as exc:
            log.warning("whitelist.cache", outcome="unreadable", reason=str(exc)[:200])

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="whitelist-refresh")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_interval)
            await self.refresh()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None


def covering_domain(name: str, domains: TrustedDomains | frozenset[str]) -> str | None:
    """The whitelisted domain that ``name`` is, or is a subdomain of (``mx.b.example`` → ``b.example``)."""
    labels = name.lower().rstrip(".").split(".")
    for i in range(len(labels) - 1):
        candidate = ".".join(labels[i:])
        if candidate in domains:
            return candidate
    return None
