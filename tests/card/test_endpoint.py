"""The gateway's card endpoint over real mutual TLS, driven by the agent's own client."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from card.cardkit import PRO, WORKSTATION, CardGateway, make_card_gateway
from support.pki import PKIFiles
from support.wait import until

from gateway.card import presence
from gateway.card.client import GatewayClient
from gateway.card.endpoint import start_card_endpoint
from gateway.card.spool import Delivery
from gateway.ins_matching.insi import TEST_PATIENT
from gateway.pki import DevelopmentPKI
from gateway.store import db

VITALE_ATR = "3b751300004509ea9000"


def event(event_type: str, **fields: Any) -> dict[str, Any]:
    return {"type": event_type, "workstation": WORKSTATION, "professional": PRO, "at": presence.utcnow().isoformat(),
            **fields}


async def send(client: GatewayClient, payload: dict[str, Any]) -> Delivery:
    return await asyncio.to_thread(client.send, payload)


@pytest.fixture
def setup(card_gateway: CardGateway) -> CardGateway:
    return card_gateway


async def test_r14_registered_agent_opens_and_closes_a_window_over_mutual_tls(setup: CardGateway):
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


async def test_resent_event_after_a_lost_reply_is_accepted_and_applied_once(setup: CardGateway):
    client = setup.client()
    payload = event("inserted", insertion=str(uuid.uuid4()), reader="Reader 0", kind="vitale", atr=VITALE_ATR)
    assert await send(client, payload) is Delivery.DELIVERED
    assert await send(client, payload) is Delivery.DELIVERED
    assert len(await setup.events("card.inserted")) == 1


async def test_unregistered_certificate_is_refused_and_the_agent_keeps_its_events(setup: CardGateway):
    outcome = await send(setup.client("stranger"), event("agent_started"))
    assert outcome is Delivery.RETRY, "registering the certificate later must still deliver what waited"
    assert [e.outcome for e in await setup.events("card.agent.refused")] == ["unknown-certificate"]


async def test_no_client_certificate_fails_the_handshake(setup: CardGateway):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(setup.pki.ca_bundle))
    client = GatewayClient(setup.url, context, timeout=5)
    setup.clients.append(client)
    assert await send(client, event("agent_started")) is Delivery.RETRY
    assert [e.kind for e in await setup.events("card.")] == ["card.agent.registered"]


async def test_certificate_from_another_ca_fails_the_handshake(setup: CardGateway, tmp_path: Path):
    DevelopmentPKI.create("Elsewhere").software(WORKSTATION).write(setup.folder / "forged.crt",
                                                                   setup.folder / "forged.key")
    assert await send(setup.client("forged"), event("agent_started")) is Delivery.RETRY
    assert [e.kind for e in await setup.events("card.")] == ["card.agent.registered"]


async def test_agent_cannot_speak_for_another_workstation_or_mailbox(setup: CardGateway):
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
async def test_malformed_events_are_rejected_for_good(setup: CardGateway, payload: dict[str, Any]):
    assert await send(setup.client(), payload) is Delivery.REJECTED


async def test_deeply_nested_body_is_rejected_not_a_server_error(setup: CardGateway):
    import http.client

    client = setup.client()
    body = b"[" * 8000
    client._conn = http.client.HTTPSConnection("localhost", setup.port, context=client.context, timeout=5)
    await asyncio.to_thread(client._conn.request, "POST", "/v1/card/events", body,
                            {"Content-Type": "application/json"})
    response = await asyncio.to_thread(client._conn.getresponse)
    assert response.status == 400
    response.read()


async def test_oversized_event_is_rejected(setup: CardGateway):
    assert await send(setup.client(), {**event("agent_started"), "pad": "x" * 20000}) is Delivery.REJECTED


async def test_r14_binding_an_unknown_patient_is_rejected_with_a_sentence(setup: CardGateway):
    client = setup.client()
    insertion = str(uuid.uuid4())
    await send(client, event("inserted", insertion=insertion, reader="R", kind="vitale", atr=VITALE_ATR))
    assert await send(client, event("bound", insertion=insertion, matricule="180077511200267")) \
        is Delivery.REJECTED
    assert "repository" in client.last_message


async def test_r14_sweeper_closes_a_window_at_its_timeout(sqlite_url: str, pki: PKIFiles, tmp_path: Path):
    s = await make_card_gateway(sqlite_url, pki, tmp_path, timeout=0.3)
    await s.listen(sweep_interval=0.05)
    try:
        client = s.client()
        insertion = str(uuid.uuid4())
        await send(client, event("inserted", insertion=insertion, reader="R", kind="vitale", atr=VITALE_ATR))
        await send(client, event("bound", insertion=insertion, matricule=TEST_PATIENT.matricule))
        await until(lambda: s.events("card.presence.closed"), 10, "the sweeper to close the window", interval=0.05)
        assert [e.outcome for e in await s.events("card.presence.closed")] == ["timeout"]
        assert not await s.present()
    finally:
        await s.close()


async def test_endpoint_refuses_a_context_without_required_client_certificates(sqlite_url: str, pki: PKIFiles):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    with pytest.raises(ValueError, match="client certificates"):
        await start_card_endpoint("127.0.0.1", 0, context, db.sessionmaker(db.create_engine(sqlite_url)))
