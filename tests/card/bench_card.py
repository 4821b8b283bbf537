"""Figures for the card agent, on the real PC/SC stack of the tests. Run as root from the repository:

    .venv/bin/python tests/card/bench_card.py [--cycles 30]

Prints: the cost of one APDU through pcscd and the virtual reader with and without TCP_QUICKACK on the card's
socket; the delay from a card's insertion (the virtual card connected) to the gateway's trail; events per
second through the mutual-TLS endpoint; and the cost of ``patient_present`` among many windows.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from card.cardkit import (
    _SOCKET_DIR,
    CardGateway,
    PcscStack,
    RunningAgent,
    make_card_gateway,
    missing_pieces,
    write_config,
)
from sqlalchemy import select
from support.pki import make_pki

from gateway.card import presence
from gateway.card.atr import CPS_AID, select_apdu
from gateway.ins_matching.insi import TEST_PATIENT

VITALE2 = "3B751300004509EA9000"
CPS3 = "3BAC00402A001225006480000310009000"


def apdu_cost(stack: PcscStack, quickack: bool, count: int = 100) -> float:
    """Mean milliseconds per SELECT sent through pyscard → pcscd → vpcd → virtual card."""
    from smartcard import scard

    card = stack.insert(CPS3, CPS_AID.hex(), quickack=quickack)
    stack.wait_card(present=True)
    try:
        _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        deadline = time.monotonic() + 10
        while True:
            hresult, handle, protocol = scard.SCardConnect(context, stack.reader, scard.SCARD_SHARE_SHARED,
                                                           scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
            if hresult == scard.SCARD_S_SUCCESS:
                break
            assert time.monotonic() < deadline, "card not connectable"
            time.sleep(0.02)
        apdu = select_apdu(CPS_AID)
        start = time.perf_counter()
        for _ in range(count):
            hresult, response = scard.SCardTransmit(handle, protocol, apdu)
            assert hresult == 0 and list(response[-2:]) == [0x90, 0x00]
        elapsed = time.perf_counter() - start
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(context)
        return elapsed / count * 1000
    finally:
        stack.remove(card)
        stack.wait_card(present=False)


async def insertion_delay(stack: PcscStack, gw: CardGateway, folder: Path, cycles: int) -> list[float]:
    """Milliseconds from the virtual card being in the reader to its insertion being in the gateway's trail."""
    config, path = write_config(gw, folder, gw.port)
    delays = []
    with RunningAgent(config, path):
        await gw.until(lambda: gw.events("card.agent.started"), "the agent")
        for n in range(1, cycles + 1):
            card = await asyncio.to_thread(stack.insert, VITALE2)  # returns once the card is in the reader
            start = time.perf_counter()

            async def seen(n: int = n) -> bool:
                return len(await gw.events("card.inserted")) >= n
            await gw.until(seen, "the insertion")
            delays.append((time.perf_counter() - start) * 1000)
            await asyncio.to_thread(stack.remove, card)

            async def gone(n: int = n) -> bool:
                return len(await gw.events("card.removed")) >= n
            await gw.until(gone, "the removal")
    return delays


async def endpoint_rate(gw: CardGateway, count: int = 300) -> float:
    client = gw.client()

    def run() -> float:
        start = time.perf_counter()
        for _ in range(count):
            event = {"type": "inserted", "workstation": "consultation-1", "professional": gw.professional,
                     "insertion": str(uuid.uuid4()), "reader": "bench", "kind": "unknown", "atr": "3b00"}
            assert client.send(event).value == "delivered"
        return count / (time.perf_counter() - start)
    return await asyncio.to_thread(run)


async def presence_cost(gw: CardGateway, windows: int = 5000, lookups: int = 500) -> float:
    async with gw.sessions() as s, s.begin():
        agent = await presence.agent_by_fingerprint(
            s, (await s.execute(select(presence.CardAgent.fingerprint))).scalars().first() or "")
        assert agent is not None
        now = presence.utcnow()
        for n in range(windows):
            s.add(presence.CardPresence(
                agent_id=agent.id, insertion=str(uuid.uuid4()), reader=f"r{n}", kind="vitale", atr="3b",
                professional_mailbox_id=gw.pro, inserted_at=now, matricule=f"{n:015d}", opened_at=now,
                expires_at=now, closed_at=now, close_reason="removed"))
    start = time.perf_counter()
    async with gw.sessions() as s:
        for _ in range(lookups):
            await presence.patient_present(s, gw.pro, TEST_PATIENT.matricule)
    return (time.perf_counter() - start) / lookups * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--store", type=Path, help="folder of the SQLite store (default: a temporary folder)")
    args = parser.parse_args()
    missing = missing_pieces()
    if missing:
        sys.exit("The PC/SC stack is missing: " + ", ".join(missing))
    import os

    os.environ["PCSCLITE_CSOCK_NAME"] = str(_SOCKET_DIR / "pcscd.comm")
    folder = Path(tempfile.mkdtemp(prefix="card-bench-"))
    stack = PcscStack(folder / "pcsc")
    stack.start()
    try:
        with_ack = apdu_cost(stack, quickack=True)
        without = apdu_cost(stack, quickack=False, count=30)
        print(f"APDU through pcscd+vpcd: {with_ack:.2f} ms with TCP_QUICKACK, {without:.2f} ms without")
        store = (args.store or folder) / f"gw-{uuid.uuid4().hex[:8]}.sqlite3"
        gw = await make_card_gateway(f"sqlite+aiosqlite:///{store}", make_pki(folder / "pki"), folder / "gw")
        await gw.listen()
        try:
            delays = await insertion_delay(stack, gw, folder, args.cycles)
            q = statistics.quantiles(delays, n=20)
            print(f"insertion → gateway trail over {len(delays)} cycles: median {statistics.median(delays):.0f} ms, "
                  f"p95 {q[18]:.0f} ms, max {max(delays):.0f} ms (agent poll 100 ms)")
            print(f"endpoint over mutual TLS, one agent, sequential: {await endpoint_rate(gw):.0f} events/s (SQLite)")
            print(f"patient_present among 5000 closed windows: {await presence_cost(gw):.0f} µs per call (SQLite)")
        finally:
            await gw.close()
    finally:
        stack.stop()


if __name__ == "__main__":
    asyncio.run(main())
