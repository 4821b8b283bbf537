"""Following PC/SC readers and cards with pyscard, through the loss of readers and of the PC/SC service.

pyscard's ``CardMonitor`` stops for good when ``pcscd`` goes away and compares cards by reader and ATR (two
cards with the same ATR swapped between two polls look like no change), so this watcher drives pyscard's
``smartcard.scard`` layer itself: one ``SCardGetStatusChange`` over every reader plus the PnP pseudo-reader,
the per-reader event counter to see a swap, and a fresh context after the service comes back. What it reports
is deliberately pessimistic: whenever it cannot be sure a card stayed in its reader (reader unplugged, service
restarted), the card is reported removed, and reported inserted again once seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.card import atr as atr_rules

log = structlog.get_logger("gateway.card.agent")

PNP = "\\\\?PnP?\\Notification"
#: Most readers the agent follows at once (a workstation has one or two).
MAX_READERS = 16


@dataclass(frozen=True)
class CardInserted:
    reader: str
    atr: bytes
    classification: atr_rules.Classification


@dataclass(frozen=True)
class CardRemoved:
    reader: str
    reason: str  # "removed" | "reader_gone" | "service_lost"


@dataclass(frozen=True)
class ReaderChange:
    reader: str
    present: bool


@dataclass(frozen=True)
class ServiceChange:
    available: bool


WatchEvent = CardInserted | CardRemoved | ReaderChange | ServiceChange


def _scard() -> Any:
    """pyscard's PC/SC layer (the optional ``card`` extra); imported late so the gateway does not need it."""
    from smartcard import scard

    return scard


class PcscWatcher:
    """Reports card and reader changes to ``emit`` from its own thread until ``stop`` is set."""

    def __init__(self, emit: Callable[[WatchEvent], None], *, poll_ms: int = 500, retry: float = 1.0,
                 classify: Callable[[bytes, atr_rules.Selector | None], atr_rules.Classification] | None = None,
                 scard_module: Any = None) -> None:
        self.emit = emit
        self.poll_ms = poll_ms
        self.retry = retry
        self.classify = classify or (lambda a, s: atr_rules.classify(a, s))
        self.sc = scard_module or _scard()
        self._context: Any = None
        #: reader -> (card present, event counter, last state reported by PC/SC; None before the first report)
        self._cards: dict[str, tuple[bool, int, int | None]] = {}
        self._service = False

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop``; never raises for PC/SC trouble (it waits and starts again)."""
        while not stop.is_set():
            try:
                self._session(stop)
            except Exception:
                log.exception("card.agent.watcher_error")
            self._lost("service_lost")
            stop.wait(self.retry)

    def cancel(self) -> None:
        """Wake a blocked status-change call (from another thread) so that ``stop`` is seen at once."""
        context = self._context
        if context is not None:
            self.sc.SCardCancel(context)

    def _lost(self, reason: str) -> None:
        for reader, (present, _, _) in sorted(self._cards.items()):
            if present:
                self.emit(CardRemoved(reader, reason))
            self.emit(ReaderChange(reader, False))
        self._cards.clear()
        if self._service:
            self._service = False
            self.emit(ServiceChange(False))
        context, self._context = self._context, None
        if context is not None:
            self.sc.SCardReleaseContext(context)

    # --- one PC/SC context --------------------------------------------------------------------------------------

    def _session(self, stop: threading.Event) -> None:
        sc = self.sc
        hresult, context = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
        if hresult != sc.SCARD_S_SUCCESS:
            return
        self._context = context
        pnp_state = sc.SCARD_STATE_UNAWARE
        use_pnp = True
        while not stop.is_set():
            readers = self._readers(context)
            if readers is None:
                return
            if not self._service:
                self._service = True
                self.emit(ServiceChange(True))
            self._sync_readers(readers)
            states = [(r, self._known_state(r)) for r in readers]
            if use_pnp:
                states.append((PNP, pnp_state))
            hresult, changes = sc.SCardGetStatusChange(context, self.poll_ms, states)
            if hresult == sc.SCARD_E_TIMEOUT:
                continue
            if hresult in (sc.SCARD_E_UNKNOWN_READER, sc.SCARD_E_READER_UNAVAILABLE) and use_pnp and not readers:
                use_pnp = False  # no PnP support: plain polling
                continue
            if hresult in (sc.SCARD_E_UNKNOWN_READER, sc.SCARD_E_READER_UNAVAILABLE):
                continue  # a reader went between listing and waiting: list again
            if hresult == sc.SCARD_E_CANCELLED:
                return
            if hresult != sc.SCARD_S_SUCCESS:
                log.info("card.agent.pcsc_lost", error=sc.SCardGetErrorMessage(hresult))
                return
            for reader, event_state, card_atr in changes:
                if reader == PNP:
                    pnp_state = event_state & ~sc.SCARD_STATE_CHANGED
                    continue
                self._reader_state(context, reader, event_state, bytes(card_atr))

    def _readers(self, context: Any) -> list[str] | None:
        sc = self.sc
        hresult, readers = sc.SCardListReaders(context, [])
        if hresult == sc.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult != sc.SCARD_S_SUCCESS:
            log.info("card.agent.pcsc_lost", error=sc.SCardGetErrorMessage(hresult))
            return None
        return [r for r in readers if len(r) <= 200][:MAX_READERS]

    def _sync_readers(self, readers: list[str]) -> None:
        for reader in sorted(set(self._cards) - set(readers)):
            present, _, _ = self._cards.pop(reader)
            if present:
                self.emit(CardRemoved(reader, "reader_gone"))
            self.emit(ReaderChange(reader, False))
        for reader in readers:
            if reader not in self._cards:
                self._cards[reader] = (False, -1, None)
                self.emit(ReaderChange(reader, True))

    def _known_state(self, reader: str) -> int:
        """What we last heard (so that PC/SC answers only when something changed), or "unaware"."""
        _, _, state = self._cards.get(reader, (False, -1, None))
        return int(self.sc.SCARD_STATE_UNAWARE) if state is None else int(state & ~self.sc.SCARD_STATE_CHANGED)

    def _reader_state(self, context: Any, reader: str, event_state: int, card_atr: bytes) -> None:
        sc = self.sc
        if reader not in self._cards:
            return
        was_present, old_counter, _ = self._cards[reader]
        counter = (event_state >> 16) & 0xFFFF
        present = bool(event_state & sc.SCARD_STATE_PRESENT) and not event_state & sc.SCARD_STATE_MUTE
        if event_state & (sc.SCARD_STATE_UNAVAILABLE | sc.SCARD_STATE_IGNORE):
            present = False
        # pcsc-lite counts insertions and removals per reader: a jump while present means the card was swapped.
        swapped = was_present and present and old_counter >= 0 and counter != old_counter
        if was_present and (not present or swapped):
            self.emit(CardRemoved(reader, "removed"))
        self._cards[reader] = (present, counter, event_state)
        if present and (not was_present or swapped):
            self.emit(CardInserted(reader, card_atr, self._classify(context, reader, card_atr)))

    def _classify(self, context: Any, reader: str, card_atr: bytes) -> atr_rules.Classification:
        """Recognise the card; it is talked to only for application selections (SELECT, P2 = 0x0C)."""
        sc = self.sc
        hresult, card, protocol = sc.SCardConnect(context, reader, sc.SCARD_SHARE_SHARED,
                                                  sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1)
        if hresult != sc.SCARD_S_SUCCESS:
            return self.classify(card_atr, None)

        def select(aid: bytes) -> bool:
            hr, response = sc.SCardTransmit(card, protocol, atr_rules.select_apdu(aid))
            return hr == sc.SCARD_S_SUCCESS and list(response[-2:]) == [0x90, 0x00]

        try:
            return self.classify(card_atr, select)
        finally:
            sc.SCardDisconnect(card, sc.SCARD_LEAVE_CARD)
