"""The INSi client (R9): the three operations of insi_messages.py over HTTPS with the structure's certificate
(mutual TLS), as an :class:`~gateway.ins_matching.insi.InsiService`.

A service that cannot be reached, times out or answers something unreadable raises :class:`InsiUnavailable`:
the caller leaves the identity as it is and traces the error; business answers (found, none, several) are values.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import ssl

import aiohttp
import structlog

from gateway.ins_matching import insi_messages as m
from gateway.ins_matching.identities import Traits
from gateway.ins_matching.insi import InsiIdentity, InsiResult

log = structlog.get_logger("gateway.ins_matching.insi")


class InsiUnavailable(Exception):
    """INSi could not answer (network, TLS, timeout, HTTP error, unreadable answer); the text says which."""


def client_context(certificate: str, key: str, ca_file: str) -> ssl.SSLContext:
    """TLS 1.2+ with the structure's client certificate, trusting only ``ca_file`` for the service."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certificate, key)
    return ctx


class InsiClient:
    """One INSi endpoint; each call is one HTTPS request (INSi is asked a few times a day per identity)."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext, timeout: float = 10.0) -> None:
        self.url = url
        self.ssl_context = ssl_context
        self.timeout = timeout

    async def _call(self, req: m.Request) -> m.Answer:
        data = m.request(req)
        action = f"{m.NS_INSI}:{req.operation}"
        try:
            connector = aiohttp.TCPConnector(ssl=self.ssl_context)
            async with aiohttp.ClientSession(connector=connector,
                                             timeout=aiohttp.ClientTimeout(total=self.timeout)) as session:
                async with session.post(self.url, data=data, headers={
                        "Content-Type": f'application/soap+xml; charset=UTF-8; action="{action}"'}) as resp:
                    payload = await resp.content.read(m.MAX_MESSAGE + 1)
                    if resp.status >= 500 or (resp.status >= 400 and not payload):
                        raise InsiUnavailable(f"INSi answered HTTP {resp.status}.")
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise InsiUnavailable(f"INSi could not be reached: {exc.__class__.__name__} {exc}".rstrip() + ".") from exc
        try:
            return m.read_answer(m.parse(payload), req.operation)
        except m.InsiMessageError as exc:
            raise InsiUnavailable(f"INSi's answer could not be read: {exc}") from exc

    @staticmethod
    def _result(answer: m.Answer, asked: str = "") -> InsiResult:
        if answer.code != m.CR_FOUND or answer.person is None:
            return InsiResult(answer.outcome)
        person = answer.person
        identity = InsiIdentity(person.matricule, person.oid, person.traits)
        replaced = person.matricule if asked and person.matricule != asked else None
        return InsiResult("found", identity, replaced=replaced)

    async def search(self, traits: Traits) -> InsiResult:
        """rechercherInsAvecTraitsIdentite."""
        return self._result(await self._call(m.Request(m.OP_TRAITS, traits)))

    async def search_by_card(self, holder: str, birth_date: str, rank: str = "1") -> InsiResult:
        """rechercherInsAvecCarteVitale: the card holder's NIR and birth date (and birth rank for twins)."""
        return self._result(await self._call(m.Request(m.OP_CARD, matricule=holder, birth_date=birth_date,
                                                       rank=rank)))

    async def verify(self, matricule: str, traits: Traits) -> InsiResult:
        """The verification of an INS against the traits; an obsolete matricule comes back with its principal."""
        return self._result(await self._call(m.Request(m.OP_VERIFY, traits, matricule)), asked=matricule)
