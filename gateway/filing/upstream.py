"""Reading a mailbox at another MSSanté operator over IMAP (aioimaplib), so its documents are filed here.

Each new upstream message is imported into a local mailbox (``deliver_to``) together with a record of its
(UIDVALIDITY, UID) and a filing job, in one transaction; only then is it marked on the server with the
keyword ``$GatewayImported``. After a restart — even between the commit and the mark — the record says it
was imported, so it is only marked, never imported twice. IDLE wakes the connector when mail arrives. The
import is accepted by the same planner as submitted and relayed mail, so it gets the same effects.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass

import aioimaplib
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import Config, UpstreamSettings
from gateway.filing.models import UpstreamMessage
from gateway.routing.delivery import Arrival, plan_acceptance
from gateway.routing.headers import HeaderError, Summary, summarise
from gateway.routing.policy import Target
from gateway.store.bulk import Plan
from gateway.store.committer import GroupCommitter
from gateway.store.effects import Rows
from gateway.store.events import now
from gateway.store.models import Mailbox
from gateway.tasks import Background
from gateway.tlsctx import client_context

log = structlog.get_logger("gateway.upstream")

KEYWORD = "$GatewayImported"
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_UID = re.compile(rb"UID (\d+)")
MAX_MESSAGE = 50 * 1024 * 1024


class UpstreamError(Exception):
    pass


@dataclass
class Counters:
    imported: int = 0
    marked_only: int = 0


class UpstreamConnector(Background):
    def __init__(self, config: Config, settings: UpstreamSettings, committer: GroupCommitter,
                 reads: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self.name = f"upstream-{settings.name}"
        self.config = config
        self.settings = settings
        self._committer = committer
        self._reads = reads
        self.counters = Counters()
        self.synced = asyncio.Event()  # set after each complete pass (tests wait on it)

    def _tls(self) -> ssl.SSLContext:
        context = client_context(self.config.tls, self.settings.ca_file)
        if self.settings.client_certificate is not None and self.settings.client_key is not None:
            context.load_cert_chain(str(self.settings.client_certificate), str(self.settings.client_key))
        return context

    async def main(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("upstream.disconnected", source=self.settings.name, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _session(self) -> None:
        s = self.settings
        client = aioimaplib.IMAP4_SSL(host=s.host, port=s.port, ssl_context=self._tls(), timeout=60)
        await client.wait_hello_from_server()
        password = s.password_file.read_text(encoding="utf-8").strip() if s.password_file else ""
        response = await client.login(s.username, password)
        if response.result != "OK":
            raise UpstreamError("login refused by the upstream server")
        response = await client.select(s.mailbox)
        if response.result != "OK":
            raise UpstreamError(f"cannot select {s.mailbox}")
        uidvalidity = _uidvalidity(response.lines)
        log.info("upstream.connected", source=s.name)
        try:
            while True:
                await self.sync(client, uidvalidity)
                self.synced.set()
                idle = await client.idle_start(timeout=s.idle_seconds)
                try:
                    await client.wait_server_push(timeout=s.idle_seconds)
                except TimeoutError:
                    pass
                client.idle_done()
                await asyncio.wait_for(idle, 30)
        finally:
            try:
                await asyncio.wait_for(client.logout(), 5)
            except Exception:  # noqa: S110 - the connection may already be gone
                pass

    async def sync(self, client: aioimaplib.IMAP4_SSL, uidvalidity: int) -> None:
        """Import every message not yet marked, then mark it."""
        response = await client.uid_search(f"UNKEYWORD {KEYWORD}", charset=None)
        if response.result != "OK":
            raise UpstreamError("UID SEARCH failed")
        uids = [int(u) for line in response.lines[:-1] for u in bytes(line).split() if u.isdigit()]
        for uid in uids:
            if not await self._already_imported(uidvalidity, uid):
                raw = await self._fetch(client, uid)
                await self._import(uidvalidity, uid, raw)
                self.counters.imported += 1
            else:
                self.counters.marked_only += 1
            marked = await client.uid("store", str(uid), "+FLAGS.SILENT", f"({KEYWORD} \\Seen)")
            if marked.result != "OK":
                raise UpstreamError("UID STORE failed")

    async def _already_imported(self, uidvalidity: int, uid: int) -> bool:
        async with self._reads() as session:
            query = select(UpstreamMessage.id).where(
                UpstreamMessage.source == self.settings.name, UpstreamMessage.uidvalidity == uidvalidity,
                UpstreamMessage.uid == uid)
            return (await session.execute(query)).first() is not None

    async def _fetch(self, client: aioimaplib.IMAP4_SSL, uid: int) -> bytes:
        response = await client.uid("fetch", str(uid), "(BODY.PEEK[])")
        if response.result != "OK":
            raise UpstreamError("UID FETCH failed")
        literals = [bytes(line) for line in response.lines if isinstance(line, bytearray)]
        if len(literals) != 1 or len(literals[0]) > MAX_MESSAGE:
            raise UpstreamError("unexpected FETCH answer")
        return literals[0]

    async def _import(self, uidvalidity: int, uid: int, raw: bytes) -> None:
        settings = self.settings

        async def unit(session: AsyncSession) -> Plan:
            mailbox_id = (await session.execute(
                select(Mailbox.id).where(Mailbox.address == settings.deliver_to))).scalar_one()
            return plan_import(settings.name, settings.deliver_to, mailbox_id, uidvalidity, uid, raw)

        await self._committer.run(unit)


def plan_import(source: str, deliver_to: str, mailbox_id: int, uidvalidity: int, uid: int, raw: bytes) -> Plan:
    """One transaction: the message, the record of its (UIDVALIDITY, UID), and the effects any message to
    ``deliver_to`` gets from :func:`gateway.routing.delivery.plan_acceptance` (filed, R10)."""
    try:
        summary: Summary | None = summarise(raw)
    except HeaderError:
        summary = None
    arrival = Arrival.imported(source, uidvalidity, uid, summary.header_from_raw or "" if summary else "")
    seen = Rows(UpstreamMessage, (dict(source=source, uidvalidity=uidvalidity, uid=uid, imported_at=now()),))
    target = Target(deliver_to, mailbox_id, "remote-to-pro", files=True)
    return plan_acceptance(arrival, [target], raw, summary, extra=[seen])


def _uidvalidity(lines: list[bytes | bytearray]) -> int:
    for line in lines:
        match = _UIDVALIDITY.search(bytes(line))
        if match:
            return int(match.group(1))
    raise UpstreamError("the upstream server gave no UIDVALIDITY")
