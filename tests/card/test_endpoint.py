"""The gateway's card endpoint over real mutual TLS, driven by the agent's own client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support.pki import PKIFiles

from gateway.card import presence
from gateway.card.agent import certificate_fingerprint
from gateway.card.client import GatewayClient, client_ssl_context
from gateway.card.endpoint import CardEndpoint, endpoint_ssl_context, start_card_endpoint
from gateway.card.spool import Delivery
from gateway.ins_matching import identities
from gateway.ins_matching.insi import TEST_PATIENT
from gateway.pki import DevelopmentPKI
from gateway.store import db, mailstore
from gateway.store.models import Event

PRO = "dr.house@pro.gateway.test"
WORKSTATION = "consultation-1"
VITALE_ATR = "3b751300004509ea9000"


@dataclass
class Setup:
    sessions: async_sessionmaker[AsyncSession]
    endpoint: CardEndpoint
    pro: int
    folder: Path
    pki: PKIFiles

    def client(self, stem: str = "agent") -> GatewayClient:
        ctx = client_ssl_context(self.folder / f"{stem}.crt", self.folder / f"{stem}.key", self.pki.ca_bundle)
        return GatewayClient(f"https://localhost:{self.endpoint.port}", ctx, timeout=5)

    async def events(self, prefix: str) -> list[Event]:
        async with self.sessions() as s:
            return list((await s.execute(
                select(Event).where(Event.kind.startswith(prefix)).order_by(Event.id))).scalars().all())

    async def present(self) -> bool:
        async with self.sessions() as s:
            return await presence.patient_present(s, self.pro, TEST_PATIENT.matricule)


def event(event_type: str, **fields: Any) -> dict[str, Any]:
    return {"type": event_type, "workstation": WORKSTATION, "professional": PRO, "at": presence.utcnow().isoformat(),
            **fields}


async def send(client: GatewayClient, payload: dict[str, Any]) -> Delivery:
    return await asyncio.to_thread(client.send, payload)


async def start(store_url: str, pki: PKIFiles, folder: Path, timeout: float = 3600.0,
                sweep_interval: float | None = None) -> Setup:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    sessions = db.sessionmaker(engine)
    pki.pki.software(WORKSTATION).write(folder / "agent.crt", folder / "agent.key")
    pki.pki.software("stranger").write(folder / "stranger.crt", folder / "stranger.key")
    async with sessions() as s, s.begin():
        pro = await mailstore.create_mailbox(s, PRO, "PER")
        await identities.add_identity(s, TEST_PATIENT.matricule, TEST_PATIENT.oid, TEST_PATIENT.traits, "test",
                                      allow_test=True)
        await presence.register_agent(s, certificate_fingerprint(folder / "agent.crt"), WORKSTATION, PRO, "admin")
    context = endpoint_ssl_context(pki.server_cert, pki.server_key, pki.ca_bundle)
    endpoint = await start_card_endpoint("127.0.0.1", 0, context, sessions,
                                         presence.PresenceSettings(timeout), sweep_interval)
    return Setup(sessions, endpoint, pro, folder, pki)


@pytest.fixture
async def setup(sqlite_url: str, pki: PKIFiles, tmp_path: Path) -> AsyncIterator[Setup]:
    s = await start(sqlite_url, pki, tmp_path)
    yield s
    await s.endpoint.close()


async def test_r14_registered_agent_opens_and_closes_a_window_over_mutual_tls(setup: Setup):
    client = setup.client()
    insertion = str(uuid.uuid4())
    assert await send(client, event("agent_started")) is Delivery.DELIVERED
    assert await send(client, event("inserted", insertion=insertion, reader="Reader 0", kind="vitale",
                                    atr=VITALE_ATR, model="Vitale 2")) is Delivery.DELIVERED
    assert not await setup.present()
    assert await send(client, event("bound", insertion=insertion, matricule=TEST_PATIENT.matricule,
                                    actor="secretary")) is Delivery.DELIVERED
    assert await setup.present()
    assert await send(client, event("removed", insertion=insertion)) is Delivery.DELIVERED
    assert not await setup.present()
    opened = await setup.events("card.presence.opened")
    assert [e.actor for e in opened] == [f"card-agent:{WORKSTATION}:secretary"]
    client.close()


async def test_resent_event_after_a_lost_reply_is_accepted_and_applied_once(setup: Setup):
    client = setup.client()
    payload = event("inserted", insertion=str(uuid.uuid4()), reader="Reader 0", kind="vitale", atr=VITALE_ATR)
    assert await send(client, payload) is Delivery.DELIVERED
    assert await send(client, payload) is Delivery.DELIVERED
    assert len(await setup.events("card.inserted")) == 1


async def test_unregistered_certificate_is_refused_and_the_agent_keeps_its_events(setup: Setup):
    outcome = await send(setup.client("stranger"), event("agent_started"))
    assert outcome is Delivery.RETRY, "registering the certificate later must still deliver what waited"
    assert [e.outcome for e in await setup.events("card.agent.refused")] == ["unknown-certificate"]


async def test_no_client_certificate_fails_the_handshake(setup: Setup):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(setup.pki.ca_bundle))
    client = GatewayClient(f"https://localhost:{setup.endpoint.port}", context, timeout=5)
    assert await send(client, event("agent_started")) is Delivery.RETRY
    assert [e.kind for e in await setup.events("card.")] == ["card.agent.registered"]


async def test_certificate_from_another_ca_fails_the_handshake(setup: Setup, tmp_path: Path):
    DevelopmentPKI.create("Elsewhere").software(WORKSTATION).write(tmp_path / "forged.crt", tmp_path / "forged.key")
    assert await send(setup.client("forged"), event("agent_started")) is Delivery.RETRY
    assert [e.kind for e in await setup.events("card.")] == ["card.agent.registered"]


async def test_agent_cannot_speak_for_another_workstation_or_mailbox(setup: Setup):
    client = setup.client()
    assert await send(client, {**event("agent_started"), "workstation": "reception"}) is Delivery.RETRY
    assert await send(client, {**event("agent_started"), "professional": "dr.other@pro.gateway.test"}) \
        is Delivery.RETRY
    assert [e.outcome for e in await setup.events("card.agent.refused")] == ["wrong-workstation"] * 2


@pytest.mark.parametrize("payload", [
    {"type": "inserted"},
    event("teleported"),
    event("inserted", insertion="not-a-uuid", reader="R", kind="vitale", atr=VITALE_ATR),
    event("inserted", insertion=str(uuid.uuid4()), reader="R", kind="passport", atr=VITALE_ATR),
    event("inserted", insertion=str(uuid.uuid4()), reader="R", kind="vitale", atr="zz"),
    event("inserted", insertion=str(uuid.uuid4()), reader="R\x00", kind="vitale", atr=VITALE_ATR),
    event("bound", insertion=str(uuid.uuid4()), matricule="1" * 16),
    {**event("agent_started"), "at": "yesterday"},
    {**event("agent_started"), "at": "2026-11-22T10:00:00"},
])
async def test_malformed_events_are_rejected_for_good(setup: Setup, payload: dict[str, Any]):
    assert await send(setup.client(), payload) is Delivery.REJECTED


async def test_oversized_event_is_rejected(setup: Setup):
    assert await send(setup.client(), {**event("agent_started"), "pad": "x" * 20000}) is Delivery.REJECTED


async def test_r14_binding_an_unknown_patient_is_rejected_with_a_sentence(setup: Setup):
    client = setup.client()
    insertion = str(uuid.uuid4())
    await send(client, event("inserted", insertion=insertion, reader="R", kind="vitale", atr=VITALE_ATR))
    assert await send(client, event("bound", insertion=insertion, matricule="180077511200267")) \
        is Delivery.REJECTED
    assert "repository" in client.last_message


async def test_r14_sweeper_closes_a_window_at_its_timeout(sqlite_url: str, pki: PKIFiles, tmp_path: Path):
    s = await start(sqlite_url, pki, tmp_path, timeout=0.3, sweep_interval=0.05)
    try:
        client = s.client()
        insertion = str(uuid.uuid4())
        await send(client, event("inserted", insertion=insertion, reader="R", kind="vitale", atr=VITALE_ATR))
        await send(client, event("bound", insertion=insertion, matricule=TEST_PATIENT.matricule))
        deadline = asyncio.get_running_loop().time() + 10
        while not await s.events("card.presence.closed"):
            assert asyncio.get_running_loop().time() < deadline, "the sweeper never closed the window"
            await asyncio.sleep(0.05)
        assert [e.outcome for e in await s.events("card.presence.closed")] == ["timeout"]
        assert not await s.present()
    finally:
        await s.endpoint.close()


async def test_endpoint_refuses_a_context_without_required_client_certificates(sqlite_url: str, pki: PKIFiles):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    with pytest.raises(ValueError, match="client certificates"):
        await start_card_endpoint("127.0.0.1", 0, context, db.sessionmaker(db.create_engine(sqlite_url)))
