"""Two instances drain one outbound queue while the peer is slow to answer: the instance delivering renews its
claim's lease, so the other never takes the group over and the peer gets the message once (only a dead
instance's lease runs out)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select
from support.pki import PKIFiles
from support.ports import free_port
from support.store import Store

from gateway.config import parse
from gateway.smtp.outbound import OutboundWorker
from gateway.store import db
from gateway.store.changes import ChangeHub
from gateway.store.committer import GroupCommitter
from gateway.store.mailstore import StoredMessage, store_message
from gateway.store.models import OutboundRecipient

LEASE = 2.0
SENDER, RECIPIENT = "dr.alpha@pro.a.test", "dr.beta@pro.b.test"
RAW = (f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: Lent\r\nMessage-ID: <slow-1@pro.a.test>\r\n\r\n"
       "Texte.\r\n").encode()


class SlowPeer:
    """A plain SMTP sink with STARTTLS whose answer to DATA waits until the test lets it go."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.data_started = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        self.received.append(envelope.content)
        return "250 2.0.0 Stored"


def _config(pki: PKIFiles, tmp_path: Path, url: str, port: int) -> Any:
    (tmp_path / "wl.xml").write_text("")
    return parse({
        "gateway": {"hostname": "mx.a.test", "domains": ["pro.a.test"], "patient_domain": "patient.a.test"},
        "database": {"url": url},
        "tls": {"certificate": str(pki.server_cert), "private_key": str(pki.server_key),
                "client_ca": str(pki.ca_bundle)},
        "smtp": {"submission": "127.0.0.1:2587"},
        "whitelist": {"source": str(tmp_path / "wl.xml")},
        "outbound": {"routes": {"pro.b.test": f"127.0.0.1:{port}"}, "lease": LEASE, "poll_interval": 0.1,
                     "retry_schedule": [60]},
    }, tmp_path)


def test_a_slow_delivery_keeps_its_lease_and_two_instances_send_it_once(
        pki: PKIFiles, tmp_path: Path, store_url: str) -> None:
    store = Store(store_url)
    sender = store.add_mailbox(SENDER)
    peer = SlowPeer()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    port = free_port()
    controller = Controller(peer, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    controller.start()
    config = _config(pki, tmp_path, store_url, port)
    try:
        row = asyncio.run(_two_instances(config, store_url, sender, peer))
    finally:
        peer.release.set()
        controller.stop()
    assert len(peer.received) == 1 and (row.state, row.attempts) == ("sent", 1)


async def _two_instances(config: Any, url: str, sender: int, peer: SlowPeer) -> OutboundRecipient:
    engines = [db.create_engine(url) for _ in range(2)]
    instances = []
    for engine in engines:
        hub = ChangeHub()
        committer = GroupCommitter(db.sessionmaker(engine), hub)
        committer.start()
        instances.append((committer, OutboundWorker(config, committer, hub)))
    sessions = db.sessionmaker(engines[0])
    try:
        async with sessions() as session, session.begin():
            message_id = await store_message(session, StoredMessage(
                raw=RAW, mail_from=SENDER, rcpt_to=[RECIPIENT], sender_mailbox_id=sender,
                message_id_header="<slow-1@pro.a.test>", subject="Lent", header_from=SENDER))
            at = datetime.now(UTC)
            session.add(OutboundRecipient(message_id=message_id, sender_mailbox_id=sender, mail_from=SENDER,
                                          recipient=RECIPIENT, domain="pro.b.test", state="queued", attempts=0,
                                          next_attempt_at=at, created_at=at))
        for _, worker in instances:
            worker.start()
        assert await asyncio.to_thread(peer.data_started.wait, 30)
        first_until = (await _row(sessions)).next_attempt_at.replace(tzinfo=UTC)
        async with asyncio.timeout(30):  # the first lease's end passes while the delivery is still in flight
            while datetime.now(UTC) < first_until + timedelta(seconds=LEASE / 2):
                await asyncio.sleep(0.05)
        held = await _row(sessions)
        assert held.next_attempt_at.replace(tzinfo=UTC) > datetime.now(UTC)  # renewed, not due for the other
        peer.release.set()
        async with asyncio.timeout(30):
            while (row := await _row(sessions)).state != "sent":
                await asyncio.sleep(0.05)
        return row
    finally:
        for committer, worker in instances:
            await worker.stop()
            await committer.stop()
        for engine in engines:
            await engine.dispose()


async def _row(sessions: Any) -> OutboundRecipient:
    async with sessions() as session:
        return (await session.execute(select(OutboundRecipient))).scalar_one()
