"""The selected mailbox as the client knows it, and the untagged updates that keep it in step (RFC 9051 7.5, 5.2).

The store view keeps the sequence-number → UID array; it changes only when the client is told (EXPUNGE or
VANISHED, then EXISTS), so numbers never shift under a client between two announcements, whatever the store
did meanwhile. A keyword seen for the first time is announced in untagged ``FLAGS`` and ``PERMANENTFLAGS``
before any ``FETCH FLAGS`` that carries it (RFC 9051 7.3.5); ``\\*`` only appears in PERMANENTFLAGS.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gateway.imap.changes import Wakeup
from gateway.imap.engine.state import Bye
from gateway.imap.proto import sequence
from gateway.imap.proto.sequence import SequenceSet

if TYPE_CHECKING:
    from gateway.imap.engine.session import Session


def flags_text(flags: Iterable[str]) -> str:
    return "(" + " ".join(flags) + ")"


class Selected:
    """The client's view of the selected folder: the store's :class:`~gateway.imap.view.selected.SelectedView`
    (sequence numbers, pending expunges, keywords announced) and the wake-up event IDLE waits on."""

    __slots__ = ("_event", "folder_id", "readonly", "session", "view")

    def __init__(self, session: Session, view: Any, *, readonly: bool) -> None:
        self.session = session
        self.view = view
        self.folder_id: int = view.folder_id
        self.readonly = readonly
        watcher = session.context.watcher
        self._event: Wakeup | None = watcher.watch(self.folder_id, view.highestmodseq)

    @property
    def changed(self) -> Wakeup:
        assert self._event is not None
        return self._event

    def close(self) -> None:
        if self._event is not None:
            self.session.context.watcher.unwatch(self.folder_id, self._event)
            self._event = None

    # --- numbers --------------------------------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return int(self.view.exists)

    def seq_of(self, uid: int) -> int | None:
        seq: int | None = self.view.seq_of(uid)
        return seq

    def resolve(self, seqset: SequenceSet, *, uid: bool) -> list[int]:
        """The UIDs a sequence set names, ascending (RFC 9051 6.4.8: ``*`` is the largest in use; ``$``: RFC 5182)."""
        return list(self.view.named(seqset, uid=uid, saved=self.session.saved))

    def check_numbers(self, seqset: SequenceSet, *, uid: bool) -> None:
        """RFC 9051 6.4.5 / 9: a message sequence number above EXISTS is a client error (``BAD``)."""
        from gateway.imap.engine.state import Bad

        if uid or seqset.saved:
            return
        exists = self.exists
        for first, last in seqset.ranges:
            for bound in (first, last):
                if bound is not None and bound > exists:
                    raise Bad("Message sequence number out of range.", "CLIENTBUG")

    # --- keywords -------------------------------------------------------------------------------------------
    async def announce_rows(self, rows: Iterable[Any]) -> None:
        """Untagged FLAGS/PERMANENTFLAGS before a FETCH carrying a keyword the client has not been told of."""
        if self.view.note_keywords(rows):
            await self.send_flags()

    async def send_flags(self) -> None:
        flags = list(self.view.flags)
        await self.session.untagged("FLAGS " + flags_text(flags))
        permanent = [] if self.readonly else [*flags, "\\*"]
        await self.session.untagged("OK [PERMANENTFLAGS " + flags_text(permanent) + "] Flags permitted.")

    def flags_of(self, row: Any) -> tuple[str, ...]:
        """The flags shown: the stored ones, and for an IMAP4rev1 client ``\\Recent`` on the messages this session
        is the first to see (RFC 3501 2.3.2, as SELECT's RECENT counts them); RFC 9051 removed it."""
        if self.session.rev2:
            return tuple(row.flags or ())
        return tuple(self.view.with_recent(row))

    # --- updates --------------------------------------------------------------------------------------------
    async def announce(self, session: Session, *, expunges: bool) -> None:
        """Send what changed since the last announcement (RFC 9051 7.5); ``expunges=False`` while the client's
        numbers are in use (FETCH/STORE/SEARCH, RFC 9051 7.5.1): the view keeps them for later."""
        from gateway.imap.view.errors import MailboxNotFound

        try:
            changes = await self.view.refresh(expunges=expunges)
        except MailboxNotFound:
            raise Bye("The selected folder was deleted.", "NONEXISTENT") from None
        if changes.empty:
            return
        if changes.new_keywords:
            await self.send_flags()
        if changes.expunged:
            if session.qresync:
                await session.untagged("VANISHED " + sequence.from_numbers(changes.expunged))
            else:
                for seq in changes.expunged_seqs:
                    await session.untagged(f"{seq} EXPUNGE")
        if changes.new:  # EXPUNGE/VANISHED already told the client the new count (RFC 9051 7.4.1)
            await session.untagged(f"{changes.exists} EXISTS")
        if changes.recent_changed and not session.rev2:  # RFC 3501 7.3.2: SEARCH RECENT agrees with it
            await session.untagged(f"{changes.recent} RECENT")
        for row in changes.flags:
            seq = self.seq_of(row.uid)
            if seq is None:
                continue
            items = [f"FLAGS {flags_text(self.flags_of(row))}"]
            if session.condstore:
                items.insert(0, f"UID {row.uid}")
                items.append(f"MODSEQ ({row.modseq})")
            await session.untagged(f"{seq} FETCH (" + " ".join(items) + ")")
