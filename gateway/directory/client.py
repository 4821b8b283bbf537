"""The Annuaire Santé client: FHIR R4 searches over HTTPS (aiohttp) with the ``ESANTE-API-KEY`` header.

Every answer is read bounded (``max_answer_bytes``, ``max_entries`` per Bundle, ``max_pages`` of ``next``
links, followed only on the configured origin so the API key never leaves it) and parsed by
:mod:`gateway.directory.fhir`.

The cache is in memory, per process, with a TTL (``cache_ttl``; answers that found nothing for
``negative_cache_ttl``): the directory is public reference data that changes by the day, so losing it at a
restart only costs fresh lookups, nothing of a patient is kept, and the store needs no table nor migration
for it. Errors are never cached: the next lookup asks again.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
import structlog

from gateway.directory import fhir
from gateway.directory.fhir import AnswerRefused, Mailbox, Organisation, Practitioner

if TYPE_CHECKING:
    from gateway.config.directory import DirectorySettings

log = structlog.get_logger("gateway.directory")

API_KEY_HEADER = "ESANTE-API-KEY"
#: Entries the cache holds at most; the oldest go first.
CACHE_SIZE = 10_000
#: Answers larger than this are parsed in a thread, so that sessions waiting on the loop are not held up.
OFF_LOOP_BYTES = 256 * 1024


class DirectoryError(Exception):
    """The directory could not answer (unreachable, refused the key, answered out of bounds)."""


class DirectoryUnavailable(DirectoryError):
    """No usable answer now (connection, timeout, HTTP 5xx or 429): worth asking again later."""


class DirectoryRefused(DirectoryError):
    """The answer was refused by the gateway (too large, too deep, too many entries, not FHIR) or the directory
    refused the request (HTTP 4xx, e.g. a wrong API key)."""


@dataclass(frozen=True)
class Limits:
    max_answer_bytes: int = 2_000_000
    max_entries: int = 200
    max_pages: int = 5


class SearchResult(list[Practitioner]):
    """The professionals a search found; ``truncated`` when more pages were left unread (narrow the search)."""

    def __init__(self, found: Iterable[Practitioner] = (), truncated: bool = False) -> None:
        super().__init__(found)
        self.truncated = truncated


@dataclass(frozen=True)
class MailboxOwner:
    """Who publishes ``address``: a professional (personal or role mailbox) or an organisation."""

    mailbox: Mailbox
    practitioner: Practitioner | None = None
    organisation: Organisation | None = None

    def as_json(self) -> dict[str, Any]:
        org = self.organisation
        return {"address": self.mailbox.address, "type": self.mailbox.kind,
                "practitioner": self.practitioner.as_json() if self.practitioner else None,
                "organisation": None if org is None else {"identifier": org.identifier, "name": org.name,
                                                          "city": org.city}}


class DirectoryClient:
    """Searches of the Annuaire Santé; one per process (it holds the HTTP connection pool and the cache)."""

    def __init__(self, base_url: str, api_key: str, *, ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 5.0, cache_ttl: float = 3600.0, negative_cache_ttl: float = 300.0,
                 limits: Limits | None = None, clock: Any = time.monotonic) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.api_key = api_key
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.negative_cache_ttl = negative_cache_ttl
        self.limits = limits or Limits()
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> DirectoryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- Searches -----------------------------------------------------------------------------------------
    async def practitioner(self, national_id: str) -> Practitioner | None:
        """The professional with this national id (``8`` + RPPS), with their practice situations."""
        national_id = national_id.strip()
        found = await self._cached(("practitioner", national_id), lambda: self._by_identifier(national_id))
        return found[0] if found else None

    async def search(self, *, name: str | None = None, rpps: str | None = None,
                     city: str | None = None) -> SearchResult:
        """Professionals by name, by RPPS (11 digits, or the national id ``8`` + RPPS) or by the city of the
        organisation they practise in; criteria given together must all match. A wide search stops after
        ``max_pages`` pages with ``truncated`` set, rather than failing."""
        if not (name or rpps or city):
            raise ValueError("A directory search needs a name, an RPPS number or a city.")
        key = f"{name or ''}|{rpps or ''}|{city or ''}".lower()
        result: SearchResult = await self._cached(("search", key), lambda: self._search(name, rpps, city))
        return result

    async def mailbox(self, address: str) -> MailboxOwner | None:
        """Who publishes this MSSanté address; None when it is not published (or red-listed)."""
        address = address.strip().lower()
        result: list[MailboxOwner] = await self._cached(("mailbox", address), lambda: self._mailbox(address))
        return result[0] if result else None

    # --- Implementation -----------------------------------------------------------------------------------
    async def _cached(self, key: tuple[str, str], fetch: Any) -> Any:
        now = self.clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = await fetch()
        ttl = self.cache_ttl if value else self.negative_cache_ttl
        if len(self._cache) >= CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (now + ttl, value)
        return value

    async def _by_identifier(self, national_id: str) -> list[Practitioner]:
        ident = f"{fhir.SYSTEM_IDNAT_PS}|{national_id}"
        return [p for p in await self._with_roles({"identifier": ident}) if p.national_id == national_id]

    async def _search(self, name: str | None, rpps: str | None, city: str | None) -> SearchResult:
        partial: list[bool] = []
        if rpps:
            digits = rpps.strip()
            national_id = digits if len(digits) == 12 and digits.startswith("8") else f"8{digits}"
            found = await self._by_identifier(national_id)
        elif name:
            found = await self._with_roles({"name": name.strip()}, partial)
        else:
            assert city
            resources = await self._get("PractitionerRole", {
                "organization.address-city": city.strip(),
                "_include": ["PractitionerRole:practitioner", "PractitionerRole:organization"]}, partial)
            found = fhir.assemble(resources)
        if name:
            wanted = name.strip().lower()
            found = [p for p in found if wanted in f"{p.family} {p.given}".lower()]
        if city:
            wanted = city.strip().lower()
            found = [p for p in found if any(r.organisation and r.organisation.city.lower() == wanted
                                             for r in p.roles)]
        return SearchResult(found, truncated=bool(partial))

    async def _with_roles(self, query: Mapping[str, str], partial: list[bool] | None = None) -> list[Practitioner]:
        """Practitioners matching ``query``, then their roles and organisations in one more request."""
        resources = [r for r in await self._get("Practitioner", query, partial)
                     if r.get("resourceType") == "Practitioner"]
        ids = [str(r.get("id")) for r in resources if isinstance(r.get("id"), str)]
        if ids:
            resources += await self._get("PractitionerRole", {
                "practitioner": ",".join(f"Practitioner/{i}" for i in ids),
                "_include": ["PractitionerRole:organization"]}, partial)
        return fhir.assemble(resources)

    async def _mailbox(self, address: str) -> list[MailboxOwner]:
        def box_of(boxes: Sequence[Mailbox]) -> Mailbox | None:
            return next((b for b in boxes if b.address == address), None)

        for p in await self._with_roles({fhir.SEARCH_MAILBOX: address}):
            for box in (box_of(p.mailboxes), *(box_of(r.mailboxes) for r in p.roles)):
                if box is not None:
                    return [MailboxOwner(box, p)]
        roles = await self._get("PractitionerRole", {
            fhir.SEARCH_MAILBOX: address,
            "_include": ["PractitionerRole:practitioner", "PractitionerRole:organization"]})
        for p in fhir.assemble(roles):
            for r in p.roles:
                box = box_of(r.mailboxes)
                if box is not None:
                    return [MailboxOwner(box, p, r.organisation)]
        for org in fhir.organisations(await self._get("Organization", {fhir.SEARCH_MAILBOX: address})):
            box = box_of(org.mailboxes)
            if box is not None:
                return [MailboxOwner(box, None, org)]
        return []

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={API_KEY_HEADER: self.api_key, "Accept": "application/fhir+json"})
        return self._session

    async def _get(self, kind: str, query: Mapping[str, str | list[str]],
                   partial: list[bool] | None = None) -> list[dict[str, Any]]:
        """Every resource of a search, following ``next`` links on the configured origin, within the limits.

        With ``partial`` (a wide search), reaching ``max_pages`` ends the reading and appends True to it;
        otherwise it is an error (a lookup by id or address that runs over pages is not an answer)."""
        pairs = [(k, v) for k, values in query.items() for v in (values if isinstance(values, list) else [values])]
        url: str | None = urljoin(self.base_url, kind) + "?" + urlencode(pairs)
        origin = urlsplit(self.base_url)[:2]
        resources: list[dict[str, Any]] = []
        pages = 0
        while url is not None:
            if pages == self.limits.max_pages:
                if partial is not None:
                    partial.append(True)
                    break
                raise DirectoryRefused(f"The directory's answer runs over more than {self.limits.max_pages} pages.")
            if urlsplit(url)[:2] != origin:
                raise DirectoryRefused("The directory's next page is on another origin; it is not followed.")
            pages += 1
            try:
                page, url = fhir.bundle_resources(await self._fetch(url), self.limits.max_entries - len(resources))
            except AnswerRefused as exc:
                log.warning("directory.answer_refused", reason=str(exc))
                raise DirectoryRefused(f"{exc} (at most {self.limits.max_entries} entries are read in all).") \
                    from None
            resources += page
        return resources

    async def _fetch(self, url: str) -> Any:
        self.requests += 1
        started = time.monotonic()
        try:
            async with self._http().get(url, ssl=self.ssl_context, allow_redirects=False) as response:
                body = await _read_bounded(response, self.limits.max_answer_bytes)
                status = response.status
        except AnswerRefused as exc:
            log.warning("directory.answer_refused", reason=str(exc))
            raise DirectoryRefused(str(exc)) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("directory.unavailable", error=type(exc).__name__)
            raise DirectoryUnavailable(f"The Annuaire Santé cannot be reached ({type(exc).__name__}: "
                                       f"{str(exc)[:200] or 'no answer in time'}).") from None
        log.debug("directory.request", status=status, ms=round((time.monotonic() - started) * 1000, 1))
        if status >= 500 or status == 429:
            raise DirectoryUnavailable(f"The Annuaire Santé answered HTTP {status}; it will be asked again later.")
        if status in (401, 403):
            raise DirectoryRefused(f"The Annuaire Santé refused the API key (HTTP {status}); check "
                                   "[directory] api_key_file.")
        if status != 200:
            raise DirectoryRefused(f"The Annuaire Santé answered HTTP {status} to a search.")
        try:
            if len(body) > OFF_LOOP_BYTES:  # a large answer is checked and parsed off the event loop
                return await asyncio.to_thread(fhir.load_json, body, self.limits.max_answer_bytes)
            return fhir.load_json(body, self.limits.max_answer_bytes)
        except AnswerRefused as exc:
            log.warning("directory.answer_refused", reason=str(exc))
            raise DirectoryRefused(str(exc)) from None


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise AnswerRefused(f"The directory's answer is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise AnswerRefused(f"The directory's answer is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def client_for(settings: DirectorySettings) -> DirectoryClient:
    """A client for ``[directory]`` (one per process: it holds the connection pool and the cache)."""
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return DirectoryClient(settings.base_url, settings.api_key, ssl_context=ctx, timeout=settings.timeout,
                           cache_ttl=settings.cache_ttl, negative_cache_ttl=settings.negative_cache_ttl,
                           limits=Limits(settings.max_answer_bytes, settings.max_entries, settings.max_pages))
