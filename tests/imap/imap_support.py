"""IMAP test harness (used by tests/imap/conftest.py and the tests).

The IMAP service is started in-process on real loopback sockets with real TLS.

The server runs in its own event loop thread, so blocking clients (imaplib, curl) and asyncio clients
(aioimaplib) can drive it the same way. Accounts and messages are written with gateway.store.mailstore.
"""

from __future__ import annotations

import asyncio
import imaplib
import ssl
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from support.pki import PKIFiles
from support.process import free_port

from gateway.auth.accounts import Authenticator
from gateway.auth.passwords import hash_password
from gateway.auth.throttle import LoginThrottle
from gateway.config import Config, Limits, Listen, TLSSettings
from gateway.imap.engine.server import ImapService, start_imap
from gateway.store import db, mailstore
from gateway.store.changes import ChangeHub, notify_database, take_changed

T = TypeVar("T")
PASSWORD = "correct horse battery"
ALICE = "alice@pro.gateway.test"
BOB = "bob@pro.gateway.test"


def message(subject: str = "Bonjour", body: str = "Texte du message.", sender: str = BOB, to: str = ALICE) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@t>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


@dataclass
class ImapHarness:
    """A running IMAP service on one store, with helpers to write to the store as SMTP would."""

    url: str
    pki: PKIFiles
    limits: Limits
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    thread: threading.Thread | None = None
    service: ImapService | None = None
    hub: ChangeHub = field(default_factory=ChangeHub)
    imap_port: int = 0
    imaps_port: int = 0
    accounts: dict[str, int] = field(default_factory=dict)

    def call(self, coro: Awaitable[T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def start(self) -> ImapHarness:
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        await db.migrate(self.url)
        self.engine = db.create_engine(self.url)
        self.sessions = db.sessionmaker(self.engine)
        tls = TLSSettings(self.pki.server_cert, self.pki.server_key)
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.config = Config(
            hostname="mail.gateway.test", domains=frozenset({"pro.gateway.test"}),
            patient_domain="patient.gateway.test", database_url=self.url, tls=tls, submission=None,
            submissions=None, imap=Listen("127.0.0.1", self.imap_port), imaps=Listen("127.0.0.1", self.imaps_port),
            limits=self.limits)
        authenticator = Authenticator(db.read_sessionmaker(self.engine),
                                      LoginThrottle(self.limits.failed_logins, self.limits.failed_login_window))
        self.service = await start_imap(self.config, self.sessions, authenticator, self.hub)

    def stop(self) -> None:
        async def _stop() -> None:
            if self.service is not None:
                await self.service.close()
            await self.engine.dispose()
        self.call(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(10)
        self.loop.close()

    def restart(self) -> None:
        """Stop the service and start a new one on the same store (new ports)."""
        async def _stop() -> None:
            if self.service is not None:
                await self.service.close()
            await self.engine.dispose()
        self.call(_stop())
        self.hub = ChangeHub()
        self.call(self._start())

    # --- store writes ---------------------------------------------------------------------------------------
    def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        async def main() -> T:
            async with self.sessions() as session:
                result = await work(session)
                await notify_database(session)
                await session.commit()
                self.hub.publish(take_changed(session))
                return result
        return self.call(main())

    def add_account(self, address: str, password: str = PASSWORD) -> int:
        hashed = hash_password(password)
        account = self.run(lambda s: mailstore.create_mailbox(s, address, "PER", password_hash=hashed))
        self.accounts[address] = account
        return account

    def deliver(self, address: str, raw: bytes, folder: str = "INBOX", flags: str = "") -> int:
        async def work(session: Any) -> int:
            folder_id = await mailstore.folder_id(session, self.accounts[address], folder)
            message_id = await mailstore.store_message(session, mailstore.StoredMessage(
                raw=raw, mail_from=BOB, rcpt_to=[address], sender_mailbox_id=None, message_id_header=None,
                subject=None, header_from=None))
            return await mailstore.deliver(session, message_id, folder_id, flags)
        return self.run(work)

    def deliver_many(self, address: str, raws: list[bytes], folder: str = "INBOX") -> list[int]:
        """Deliver many messages in one transaction (a large folder, quickly), each through ``mailstore.deliver``."""
        async def work(session: Any) -> list[int]:
            folder_id = await mailstore.folder_id(session, self.accounts[address], folder)
            uids = []
            for raw in raws:
                message_id = await mailstore.store_message(session, mailstore.StoredMessage(
                    raw=raw, mail_from=BOB, rcpt_to=[address], sender_mailbox_id=None, message_id_header=None,
                    subject=None, header_from=None))
                uids.append(await mailstore.deliver(session, message_id, folder_id))
            return uids
        return self.run(work)

    def deliver_elsewhere(self, address: str, raw: bytes, folder: str = "INBOX") -> int:
        """Deliver as another gateway process would: its own engine, NOTIFY on PostgreSQL, no in-process hub."""
        async def main() -> int:
            engine = db.create_engine(self.url)
            try:
                async with db.sessionmaker(engine)() as session:
                    folder_id = await mailstore.folder_id(session, self.accounts[address], folder)
                    message_id = await mailstore.store_message(session, mailstore.StoredMessage(
                        raw=raw, mail_from=BOB, rcpt_to=[address], sender_mailbox_id=None,
                        message_id_header=None, subject=None, header_from=None))
                    uid = await mailstore.deliver(session, message_id, folder_id)
                    await notify_database(session)
                    await session.commit()
                    return uid
            finally:
                await engine.dispose()
        return asyncio.run(main())

    def events(self, kind_prefix: str) -> list[tuple[str, int | None, dict[str, Any]]]:
        """(kind, mailbox id, detail) of the trail's events whose kind starts with ``kind_prefix`` (R18)."""
        from sqlalchemy import select

        from gateway.store.models import Event

        async def work(session: Any) -> list[tuple[str, int | None, dict[str, Any]]]:
            rows = await session.execute(select(Event.kind, Event.mailbox_id, Event.detail)
                                         .where(Event.kind.startswith(kind_prefix)).order_by(Event.id))
            return [(row.kind, row.mailbox_id, dict(row.detail)) for row in rows]
        return self.run(work)

    # --- clients --------------------------------------------------------------------------------------------
    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_bundle))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def imaps(self, user: str | None = ALICE, password: str = PASSWORD) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=self.client_context(), timeout=30)
        if user is not None:
            client.login(user, password)
        return client

    def imap_starttls(self, user: str | None = ALICE, password: str = PASSWORD) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        client.starttls(ssl_context=self.client_context())
        if user is not None:
            client.login(user, password)
        return client


def make_harness(url: str, pki: PKIFiles, limits: Limits | None = None) -> ImapHarness:
    # The test's server name is not 127.0.0.1: check_hostname is relaxed by the harness's client context users.
    return ImapHarness(url, pki, limits or Limits(message_size=2 * 1024 * 1024, failed_logins=3,
                                                   failed_login_window=600.0)).start()


