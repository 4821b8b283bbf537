"""End to end on a real PC/SC stack: pcscd, the virtual reader (vpcd), virtual cards (vpicc), the card agent,
and the gateway's mutual-TLS endpoint. Inserting the patient's Vitale card and saying who it stands for opens
the presence window (R14); removing it closes it. The agent survives pcscd restarting and the gateway being
away, and every step is in the trail (R18).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

from card.cardkit import PRO, WORKSTATION, CardGateway, PcscStack

from gateway.card import agent as agent_cli
from gateway.card.agent import Agent, AgentConfig
from gateway.card.atr import CPS_AID
from gateway.ins_matching.insi import TEST_PATIENT

VITALE2 = "3B751300004509EA9000"
CPS3 = "3BAC00402A001225006480000310009000"
CPS = CPS_AID.hex().upper()
OTHER_CARD = "3B6800000073C84013009000"


class RunningAgent:
    """The card agent in a thread of the test process, as ``gateway card-agent run`` runs it."""

    def __init__(self, config: AgentConfig, config_file: Path) -> None:
        self.config = config
        self.config_file = config_file
        self.stop = threading.Event()
        self.agent = Agent(config)
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), name="test-card-agent")

    def __enter__(self) -> RunningAgent:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the agent did not stop"

    def bind(self, matricule: str, actor: str | None = None) -> int:
        """What ``gateway card-agent bind --matricule ...`` does (the CLI itself is tested in a subprocess)."""
        code, _ = agent_cli.bind(self.config, matricule, actor=actor)
        return code


def write_config(gw: CardGateway, folder: Path, port: int) -> tuple[AgentConfig, Path]:
    path = folder / "card-agent.toml"
    path.write_text(
        f'gateway_url = "https://localhost:{port}"\nworkstation = "{WORKSTATION}"\nprofessional = "{PRO}"\n'
        f'certificate = "{gw.folder / "agent.crt"}"\nprivate_key = "{gw.folder / "agent.key"}"\n'
        f'trust_anchors = "{gw.pki.ca_bundle}"\ndata_dir = "agent-data"\n'
        "retry_initial = 0.1\nretry_max = 0.5\npoll_ms = 100\n")
    return agent_cli.load_config(path), path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def inserted(gw: CardGateway, count: int = 1) -> list[str]:
    async def check() -> list[str] | None:
        rows = await gw.events("card.inserted")
        return [e.outcome for e in rows] if len(rows) >= count else None
    return await gw.until(check, f"{count} card insertion(s) at the gateway")


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
        await asyncio.to_thread(_wait, lambda: _spooled(running) >= 2)  # hello + insertion queued
        assert await asyncio.to_thread(running.bind, TEST_PATIENT.matricule) == 3  # queued
        pcsc.remove(first)
        pcsc.insert(CPS3, CPS)
        await asyncio.to_thread(_wait, lambda: _spooled(running) >= 5)
        assert [e.kind for e in await card_gateway.events("card.")] == ["card.agent.registered"]

        await card_gateway.listen(port)  # the gateway is back
        await card_gateway.until(lambda: _count(card_gateway, "card.inserted", 2), "the queued events")
        await asyncio.to_thread(_wait, lambda: _spooled(running) == 0)
    trail = [(e.kind, e.outcome) for e in await card_gateway.events("card.")][1:]
    assert trail == [("card.agent.started", "ok"), ("card.inserted", "vitale"), ("card.presence.opened", "open"),
                     ("card.removed", "removed"), ("card.presence.closed", "removed"), ("card.inserted", "cps")]
    assert not await card_gateway.present()


def _spooled(running: RunningAgent) -> int:
    return len(running.agent.spool)


def _wait(check: object, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting for the agent"
        time.sleep(0.05)
