"""The PC/SC watcher's rules over a scripted PC/SC layer: swaps, unplugged readers, the service going away.

The real stack is in test_card_e2e.py; here the cases a virtual reader cannot produce on demand (a card swapped
between two polls, a reader unplugged while pcscd runs) are played exactly.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.card.atr import CardKind
from gateway.card.watcher import PNP, CardInserted, CardRemoved, PcscWatcher, ReaderChange, ServiceChange

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

VITALE2 = bytes.fromhex("3b751300004509ea9000")
OTHER = bytes.fromhex("3b6800000073c84013009000")


class FakePcsc:
    """Enough of pyscard's ``smartcard.scard`` for the watcher, with readers and cards the test changes."""

    S = SimpleNamespace(
        SCARD_S_SUCCESS=0, SCARD_E_TIMEOUT=0x8010000A, SCARD_E_NO_SERVICE=0x8010001D,
        SCARD_E_CANCELLED=0x80100002, SCARD_E_UNKNOWN_READER=0x80100009, SCARD_E_READER_UNAVAILABLE=0x80100017,
        SCARD_E_NO_READERS_AVAILABLE=0x8010002E, SCARD_SCOPE_USER=0, SCARD_STATE_UNAWARE=0, SCARD_STATE_IGNORE=1,
        SCARD_STATE_CHANGED=2, SCARD_STATE_UNAVAILABLE=8, SCARD_STATE_EMPTY=0x10, SCARD_STATE_PRESENT=0x20,
        SCARD_STATE_MUTE=0x200, SCARD_SHARE_SHARED=2, SCARD_PROTOCOL_T0=1, SCARD_PROTOCOL_T1=2, SCARD_LEAVE_CARD=0,
        SCARD_E_NO_SMARTCARD=0x8010000C)

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.service = True
        self.cards: dict[str, tuple[bool, int, bytes]] = {}  # reader -> (present, counter, atr)
        for name, value in vars(self.S).items():
            setattr(self, name, value)

    # --- what the test does ---------------------------------------------------------------------------------------
    def change(self, **what: Any) -> None:
        with self.cond:
            for reader, card in what.get("cards", {}).items():
                if card is None:
                    self.cards.pop(reader, None)
                else:
                    self.cards[reader] = card
            if "service" in what:
                self.service = what["service"]
            self.cond.notify_all()

    def insert(self, reader: str, atr: bytes) -> None:
        _, counter, _ = self.cards[reader]
        self.change(cards={reader: (True, counter + 1, atr)})

    def remove(self, reader: str) -> None:
        _, counter, _ = self.cards[reader]
        self.change(cards={reader: (False, counter + 1, b"")})

    # --- what pyscard offers ------------------------------------------------------------------------------------
    def SCardEstablishContext(self, scope: int) -> tuple[int, object]:
        return (0, object()) if self.service else (self.SCARD_E_NO_SERVICE, None)

    def SCardReleaseContext(self, context: object) -> int:
        return 0

    def SCardCancel(self, context: object) -> int:
        return 0

    def SCardGetErrorMessage(self, hresult: int) -> str:
        return hex(hresult)

    def SCardListReaders(self, context: object, groups: list[str]) -> tuple[int, list[str]]:
        with self.cond:
            if not self.service:
                return self.SCARD_E_NO_SERVICE, []
            if not self.cards:
                return self.SCARD_E_NO_READERS_AVAILABLE, []
            return 0, sorted(self.cards)

    def _state(self, reader: str) -> int:
        present, counter, _ = self.cards[reader]
        return (counter << 16) | (self.SCARD_STATE_PRESENT if present else self.SCARD_STATE_EMPTY)

    def SCardGetStatusChange(self, context: object, timeout_ms: int,
                             states: list[tuple[str, int]]) -> tuple[int, list[tuple[str, int, list[int]]]]:
        with self.cond:
            def changed() -> list[tuple[str, int, list[int]]] | int:
                if not self.service:
                    return self.SCARD_E_NO_SERVICE
                out, any_change = [], False
                for reader, current in states:
                    if reader == PNP:
                        now = len(self.cards) << 16
                    elif reader not in self.cards:
                        return self.SCARD_E_UNKNOWN_READER
                    else:
                        now = self._state(reader)
                    differs = (current & ~self.SCARD_STATE_CHANGED) != now
                    any_change |= differs
                    atr = list(self.cards[reader][2]) if reader in self.cards else []
                    out.append((reader, now | (self.SCARD_STATE_CHANGED if differs else 0), atr))
                return out if any_change else 0
            result = changed()
            if result == 0:
                self.cond.wait(timeout_ms / 1000)
                result = changed()
            if isinstance(result, int):
                return (self.SCARD_E_TIMEOUT if result == 0 else result), []
            return 0, result

    def SCardConnect(self, context: object, reader: str, share: int, protocols: int) -> tuple[int, object, int]:
        return self.SCARD_E_NO_SMARTCARD, None, 0  # the card cannot be talked to: ATR-only recognition


@pytest.fixture
def pcsc() -> FakePcsc:
    fake = FakePcsc()
    fake.change(cards={"Reader A": (False, 0, b"")})
    return fake


@pytest.fixture
def seen(pcsc: FakePcsc) -> Iterator[queue.Queue[object]]:
    events: queue.Queue[object] = queue.Queue()
    watcher = PcscWatcher(events.put, poll_ms=50, retry=0.01, scard_module=pcsc)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    yield events
    stop.set()
    pcsc.change()
    thread.join(10)
    assert not thread.is_alive()


def take(events: queue.Queue[object], count: int) -> list[object]:
    return [events.get(timeout=10) for _ in range(count)]


def test_start_reports_service_and_reader_then_insertion_and_removal(pcsc: FakePcsc, seen: queue.Queue[object]):
    assert take(seen, 2) == [ServiceChange(True), ReaderChange("Reader A", True)]
    pcsc.insert("Reader A", VITALE2)
    [inserted] = take(seen, 1)
    assert isinstance(inserted, CardInserted) and inserted.classification.kind is CardKind.VITALE
    pcsc.remove("Reader A")
    assert take(seen, 1) == [CardRemoved("Reader A", "removed")]


def test_card_swapped_between_two_polls_is_a_removal_and_an_insertion(pcsc: FakePcsc, seen: queue.Queue[object]):
    take(seen, 2)
    pcsc.insert("Reader A", VITALE2)
    take(seen, 1)
    _, counter, _ = pcsc.cards["Reader A"]
    pcsc.change(cards={"Reader A": (True, counter + 2, VITALE2)})  # out and in again, same ATR
    removed, inserted = take(seen, 2)
    assert removed == CardRemoved("Reader A", "removed")
    assert isinstance(inserted, CardInserted) and inserted.atr == VITALE2


def test_unplugged_reader_ends_its_card(pcsc: FakePcsc, seen: queue.Queue[object]):
    take(seen, 2)
    pcsc.insert("Reader A", OTHER)
    [inserted] = take(seen, 1)
    assert isinstance(inserted, CardInserted) and inserted.classification.kind is CardKind.UNKNOWN
    pcsc.change(cards={"Reader A": None, "Reader B": (False, 0, b"")})
    assert take(seen, 3) == [CardRemoved("Reader A", "reader_gone"), ReaderChange("Reader A", False),
                             ReaderChange("Reader B", True)]


def test_service_lost_ends_every_card_and_the_watcher_starts_again(pcsc: FakePcsc, seen: queue.Queue[object]):
    take(seen, 2)
    pcsc.insert("Reader A", VITALE2)
    take(seen, 1)
    pcsc.change(service=False)
    assert take(seen, 3) == [CardRemoved("Reader A", "service_lost"), ReaderChange("Reader A", False),
                             ServiceChange(False)]
    pcsc.change(service=True)
    back = take(seen, 3)
    assert back[:2] == [ServiceChange(True), ReaderChange("Reader A", True)]
    assert isinstance(back[2], CardInserted), "a card seen again after the outage is a new insertion"
