"""End to end on a real PC/SC stack: pcscd, the virtual reader (vpcd), virtual cards (vpicc), the card agent,
and the gateway's mutual-TLS endpoint. Inserting the patient's Vitale card and saying who it stands for opens
the presence window (R14); removing it closes it. The agent survives pcscd restarting and the gateway being
away, and every step is in the trail (R18).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from card.cardkit import CardGateway, PcscStack, RunningAgent, inserted, write_config
from support.ports import free_port
from support.wait import until

from gateway.card.atr import CPS_AID
from gateway.ins_matching.insi import TEST_PATIENT

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

VITALE2 = "3B751300004509EA9000"
CPS3 = "3BAC00402A001225006480000310009000"
CPS = CPS_AID.hex().upper()
OTHER_CARD = "3B6800000073C84013009000"


async def test_r14_vitale_card_in_the_reader_opens_the_window_and_removal_closes_it(
        pcsc: PcscStack, card_gateway: CardGateway, tmp_path: Path):
    config, path = write_config(card_gateway, tmp_path, card_gateway.port)
    with RunningAgent(config, path) as running:
        await card_gateway.until(lambda: card_gateway.events("card.agent.started"), "the agent's hello")
        card = pcsc.insert(VITALE2)
        assert await inserted(card_gateway) == ["vitale"]
        assert not await card_gateway.present(), "nobody said yet which patient the card stands for"

        code = await asyncio.to_thread(running.bind, TEST_PATIENT.matricule, "secretary")
        assert code == 0
        assert await card_gateway.present()

        pcsc.remove(card)
        await card_gateway.until(lambda: _not(card_gateway.present()), "the window to close on removal")
    trail = [(e.kind, e.outcome) for e in await card_gateway.events("card.")]
    assert trail[-5:] == [("card.agent.started", "ok"), ("card.inserted", "vitale"),
                          ("card.presence.opened", "open"), ("card.removed", "removed"),
                          ("card.presence.closed", "removed")]


async def _not(value: object) -> bool:
    return not await value  # type: ignore[misc]


async def test_cards_are_recognised_from_atr_and_application_and_unknown_ones_reported_as_such(
        pcsc: PcscStack, card_gateway: CardGateway, tmp_path: Path):
    config, path = write_config(card_gateway, tmp_path, card_gateway.port)
    with RunningAgent(config, path):
        for count, (atr, aids) in enumerate([(CPS3, (CPS,)), (CPS3, ()), (OTHER_CARD, ()), (VITALE2, ())], 1):
            card = pcsc.insert(atr, *aids)
            await inserted(card_gateway, count)
            pcsc.remove(card)
            await card_gateway.until(lambda c=count: _count(card_gateway, "card.removed", c), "the removal")
    assert await inserted(card_gateway, 4) == ["cps", "unknown", "unknown", "vitale"]


async def _count(gw: CardGateway, kind: str, at_least: int) -> bool:
    return len(await gw.events(kind)) >= at_least


async def test_bind_refuses_when_no_vitale_card_is_inserted(pcsc: PcscStack, card_gateway: CardGateway,
                                                            tmp_path: Path):
    config, path = write_config(card_gateway, tmp_path, card_gateway.port)
    with RunningAgent(config, path) as running:
        pcsc.insert(CPS3, CPS)
        assert await inserted(card_gateway) == ["cps"]
        assert await asyncio.to_thread(running.bind, TEST_PATIENT.matricule) == 2
    assert not await card_gateway.present()


async def test_r14_pcscd_restart_closes_the_window_and_the_agent_carries_on(
        pcsc: PcscStack, card_gateway: CardGateway, tmp_path: Path):
    config, path = write_config(card_gateway, tmp_path, card_gateway.port)
    with RunningAgent(config, path) as running:
        pcsc.insert(VITALE2)
        await inserted(card_gateway)
        assert await asyncio.to_thread(running.bind, TEST_PATIENT.matricule) == 0
        assert await card_gateway.present()

        pcsc.stop()  # the service goes away, and the reader with it: nobody knows which card is there now
        await card_gateway.until(lambda: _not(card_gateway.present()), "the window to close when pcscd stops")
        removed = await card_gateway.events("card.removed")
        assert [e.outcome for e in removed] == ["service_lost"]

        pcsc.start()
        pcsc.insert(VITALE2)
        assert await inserted(card_gateway, 2) == ["vitale", "vitale"]
        assert not await card_gateway.present(), "a card seen again is a new insertion: say again who it is"
        assert await asyncio.to_thread(running.bind, TEST_PATIENT.matricule) == 0
        assert await card_gateway.present()


async def test_gateway_away_events_wait_on_disk_and_arrive_in_order(
        pcsc: PcscStack, card_gateway: CardGateway, tmp_path: Path):
    assert card_gateway.endpoint is not None
    await card_gateway.endpoint.close()  # the gateway is down while the patient comes and goes
    port = free_port()
    config, path = write_config(card_gateway, tmp_path, port)
    with RunningAgent(config, path) as running:
        first = pcsc.insert(VITALE2)
        await until(lambda: _spooled(running) >= 2, 20, "the agent to spool hello and the insertion")
        assert await asyncio.to_thread(running.bind, TEST_PATIENT.matricule) == 3  # queued
        pcsc.remove(first)
        pcsc.insert(CPS3, CPS)
        await until(lambda: _spooled(running) >= 5, 20, "the agent to spool five events")
        assert [e.kind for e in await card_gateway.events("card.")] == ["card.agent.registered"]

        await card_gateway.listen(port)  # the gateway is back
        await card_gateway.until(lambda: _count(card_gateway, "card.inserted", 2), "the queued events")
        await until(lambda: _spooled(running) == 0, 20, "the agent to empty its spool")
    trail = [(e.kind, e.outcome) for e in await card_gateway.events("card.")][1:]
    assert trail == [("card.agent.started", "ok"), ("card.inserted", "vitale"), ("card.presence.opened", "open"),
                     ("card.removed", "removed"), ("card.presence.closed", "removed"), ("card.inserted", "cps")]
    assert not await card_gateway.present()


def _spooled(running: RunningAgent) -> int:
    return len(running.agent.spool)

