"""The selected folder of one IMAP session: the UIDs the client knows, and what changed since it last looked.

The view keeps the sequence-number → UID map (RFC 9051 2.3.1.2) as an ``array`` of integers (8 bytes a message),
the folder's MODSEQ as of the last refresh, the keywords announced so far and the UID ranges that are
``\\Recent`` for this session. Flags stay in the store and are read for the messages a command names.
:meth:`SelectedView.refresh` learns what changed from the (folder_id, modseq) indexes of ``deliveries`` and
``imap_expunged``; expunges wait while the engine says sequence numbers are in use (RFC 9051 7.5.1).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import sqlite3
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.models import ExpungedUid
from gateway.imap.proto.sequence import SequenceSet
from gateway.imap.view import fast
from gateway.imap.view import flags as flagops
from gateway.imap.view.errors import MailboxNotFound, NotAllowed, StoreUnavailable
from gateway.imap.view.folder_changes import (
    Changes,
    CopyResult,
    Resync,
    all_uids,
    contains,
    folder_delta,
    initial_uids,
    missing,
    missing_ranges,
    remove_deliveries,
)
from gateway.imap.view.numbering import Numbering, spans_of
from gateway.imap.view.rows import FLAGS, MODSEQ, Row, fetch_rows, parse_flags
from gateway.imap.view.store import ViewStore, chunks, new_uids
from gateway.store.changes import mark_changed
from gateway.store.events import record
from gateway.store.models import Delivery, Folder
from gateway.store.sqlite_writes import WriteTx

log = structlog.get_logger("gateway.imap")

#: Most keywords a folder's FLAGS response lists (the DISTINCT read at SELECT stops there).
MAX_KEYWORDS = 1000
#: FETCHes of up to this many messages are tried on the event loop's thread (:class:`SqliteReader`); a longer
#: one would only spend the budget before going to a reader thread.
INLINE_ROWS = 1000
#: Past this many removals at once the UID array is rebuilt in one pass instead of deleted from one by one.
_BULK_REMOVE = 64
#: System flags every folder announces (RFC 9051 7.3.5); ``\\Recent`` only for IMAP4rev1 clients.
SYSTEM_FLAGS = flagops.SYSTEM_FLAGS


def canonical(name: str) -> str:
    """``INBOX`` in any case is INBOX (RFC 9051 5.1)."""
    return "INBOX" if name.upper() == "INBOX" else name


def mailbox_object_id(folder_id: int) -> str:
    """The folder's MAILBOXID (RFC 8474 4): stable across RENAME."""
    return f"F{folder_id}"


def keywords_of(flags: Iterable[str]) -> set[str]:
    return {flag for flag in flags if not flag.startswith("\\")}


class SelectedView(Numbering):
    """One session's selected folder. Create it with :meth:`open` (SELECT/EXAMINE)."""

    def __init__(self, store: ViewStore, account_id: int, folder_id: int, name: str, *, readonly: bool,
                 uidvalidity: int, uidnext: int, highestmodseq: int, uids: array[int]) -> None:
        self.store = store
        self.account_id = account_id
        self.folder_id = folder_id
        self.name = name
        self.readonly = readonly
        self.uidvalidity = uidvalidity
        self.uidnext = uidnext
        #: The folder's MODSEQ as of the last refresh (SELECT's ``HIGHESTMODSEQ``, RFC 7162 3.1.2.1).
        self.highestmodseq = highestmodseq
        self.uids = uids
        #: Sequence number of the first unseen message at SELECT (``OK [UNSEEN n]``), or None.
        self.first_unseen: int | None = None
        #: Keywords announced to the client so far (RFC 9051 7.3.5).
        self.keywords: set[str] = set()
        self._recent: list[tuple[int, int]] = []
        #: The folder's ``recent_uid`` as last read: messages up to it were claimed by some session already.
        self._recent_floor = 0
        self._pending_expunge: set[int] = set()
        self._own: dict[int, int] = {}
        #: (MODSEQ, what changed after it) read with a FETCH's rows, for the refresh that follows (SQLite).
        self._prefetched: tuple[int, Any, asyncio.Event] | None = None

    # --- opening ------------------------------------------------------------------------------------------
    @classmethod
    async def open(cls, store: ViewStore, account_id: int, name: str, *, readonly: bool = False) -> SelectedView:
        """SELECT (``readonly=False``) or EXAMINE: the folder's UIDs, counters, first unseen and keywords.

        A SELECT also claims the messages no session was told about yet as ``\\Recent`` (RFC 3501 2.3.2);
        EXAMINE never changes the folder (RFC 9051 6.3.3).
        """
        name = canonical(name)
        if store.sqlite is not None:
            return await cls._open_sqlite(store, account_id, name, readonly)

        async def work(session: AsyncSession) -> SelectedView:
            row = (await session.execute(select(
                Folder.id, Folder.uidvalidity, Folder.uidnext, Folder.highestmodseq, Folder.recent_uid).where(
                Folder.mailbox_id == account_id, Folder.name == name))).one_or_none()
            if row is None:
                raise MailboxNotFound(f"There is no mailbox named {name}.")
            uids = await initial_uids(store, session, row.id, int(row.highestmodseq))
            view = cls(store, account_id, row.id, name, readonly=readonly, uidvalidity=int(row.uidvalidity),
                       uidnext=int(row.uidnext), highestmodseq=int(row.highestmodseq), uids=uids)
            first = (await session.execute(select(func.min(Delivery.uid)).where(
                Delivery.folder_id == row.id, Delivery.seen.is_(False),
                Delivery.uid <= (uids[-1] if uids else 0)))).scalar_one_or_none()
            view.first_unseen = view.seq_of(first) if first is not None else None
            view._recent_floor = int(row.recent_uid or 0)
            texts = (await session.execute(select(Delivery.flags).where(Delivery.folder_id == row.id)
                                           .distinct().limit(MAX_KEYWORDS))).scalars()
            for text in texts:
                view.keywords |= keywords_of(parse_flags(text))
                if len(view.keywords) >= MAX_KEYWORDS:
                    break
            return view

        view = await store.read(work, "opening the mailbox")
        if not readonly:
            await view._claim_recent()
        return view

    @classmethod
    async def _open_sqlite(cls, store: ViewStore, account_id: int, name: str, readonly: bool) -> SelectedView:
        """:meth:`open` on SQLite: the same reads in one snapshot and one hop (:func:`fast.open_folder`)."""
        assert store.sqlite is not None
        known = store.folder_ids.get((account_id, name))
        entry = store.uid_cache.get(known) if known is not None else None
        cached = (known, *entry) if known is not None and entry is not None else None
        try:
            opened = await store.sqlite.run(lambda c: fast.open_folder(c, account_id, name, cached, MAX_KEYWORDS))
        except sqlite3.Error as exc:
            raise StoreUnavailable("The mail store is unavailable (opening the mailbox); please try again "
                                   "later.") from exc
        if opened is None:
            raise MailboxNotFound(f"There is no mailbox named {name}.")
        (folder_id, uidvalidity, uidnext, highest, recent_uid), uids, first, texts = opened
        if len(store.folder_ids) > 10_000:
            store.folder_ids.clear()
        store.folder_ids[(account_id, name)] = folder_id
        store.uid_cache.put(folder_id, highest, uids)
        view = cls(store, account_id, folder_id, name, readonly=readonly, uidvalidity=uidvalidity,
                   uidnext=uidnext, highestmodseq=highest, uids=uids)
        view.first_unseen = view.seq_of(first) if first is not None else None
        view._recent_floor = recent_uid
        for text in texts:
            view.keywords |= keywords_of(parse_flags(text))
            if len(view.keywords) >= MAX_KEYWORDS:
                break
        if not readonly:
            await view._claim_recent()
        return view

    @property
    def mailbox_id(self) -> str:
        return mailbox_object_id(self.folder_id)

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    @property
    def flags(self) -> list[str]:
        """The FLAGS response: system flags and the keywords announced (RFC 9051 7.3.5)."""
        return [*SYSTEM_FLAGS, *sorted(self.keywords)]

    # --- \Recent (RFC 3501 2.3.2) -------------------------------------------------------------------------
    async def _claim_recent(self) -> bool:
        """Take the messages above the folder's ``recent_uid`` that this view knows; whether any were taken."""
        top = self.max_uid
        if self.readonly or not top or top <= self._recent_floor or (self._recent and self._recent[-1][1] >= top):
            return False  # nothing above what was claimed: no write transaction for a SELECT without new mail
        folder_id = self.folder_id

        async def work(session: AsyncSession) -> int | None:
            done, before = await fast.on_writer(session, lambda c: fast.claim_recent(c, folder_id, top))
            if done:
                return before
            query = select(Folder.recent_uid).where(Folder.id == folder_id)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()
            before = (await session.execute(query)).scalar_one_or_none()
            if before is None or before >= top:
                return None
            await session.execute(update(Folder).where(Folder.id == folder_id).values(recent_uid=top))
            return int(before)

        claim = self.store.recent_claim(folder_id)
        async with claim.lock:  # the sessions woken together by a delivery wait for the first one's claim
            if claim.top >= top:  # taken by a session of this process a moment ago
                return False
            before = await self.store.write_fast(lambda tx: fast.claim_recent(tx.connection, folder_id, top), work,
                                                 "claiming recent messages", synced=False)
            claim.top = max(claim.top, top)
            self._recent_floor = max(self._recent_floor, top)
        if before is None:
            return False
        self._recent.append((before + 1, top))
        return True

    def note_keywords(self, rows: Iterable[Row]) -> list[str]:
        """Keywords in ``rows`` the client was not told of yet; the engine sends FLAGS/PERMANENTFLAGS first."""
        fresh: set[str] = set()
        for row in rows:
            if row.flags:
                for flag in row.flags:
                    if not flag.startswith("\\") and flag not in self.keywords:
                        fresh.add(flag)
        self.keywords |= fresh
        return sorted(fresh)

    def with_recent(self, row: Row) -> tuple[str, ...]:
        """A row's flags as this session shows them: ``\\Recent`` added where it applies (IMAP4rev1)."""
        flags = row.flags or ()
        return (*flags, flagops.RECENT) if self.is_recent(row.uid) else flags

    # --- reading ------------------------------------------------------------------------------------------
    async def fetch(self, sequence: SequenceSet, *, uid: bool, columns: Collection[str] = (FLAGS,),
                    changedsince: int | None = None, saved: Sequence[int] | None = None) -> list[tuple[int, Row]]:
        """FETCH's rows ``(sequence number, row)`` for the messages ``sequence`` names, in order.

        One query for a contiguous set (``1:*``); messages expunged by another session meanwhile are absent
        (the engine may answer them ``NO [EXPUNGEISSUED]``-free, RFC 9051 7.4.1 lets it omit them).
        """
        return await self.fetch_ranges(self.index_ranges(sequence, uid=uid, saved=saved), columns=columns,
                                       changedsince=changedsince)

    async def fetch_ranges(self, ranges: Sequence[tuple[int, int]], *, columns: Collection[str] = (FLAGS,),
                           changedsince: int | None = None) -> list[tuple[int, Row]]:
        """:meth:`fetch` of positions already resolved by :meth:`index_ranges` (a long FETCH read in steps)."""
        if not ranges:
            return []
        spans = self.uid_spans(ranges)
        folder_id = self.folder_id

        async def work(session: AsyncSession) -> list[Row]:
            return await fetch_rows(session, folder_id, spans, columns, changedsince=changedsince)

        if self.store.sqlite is None:
            rows = await self.store.read(work, "reading messages")
            return self.numbered(ranges, rows)
        since = self.highestmodseq

        def sync(connection: sqlite3.Connection) -> tuple[list[Row], Any]:
            return (fast.fetch_rows(connection, folder_id, spans, columns, changedsince),
                    fast.folder_delta(connection, folder_id, since))

        self._drop_prefetched()
        published = self.store.hub.watch(folder_id)  # before the read: a change published after it voids it
        try:
            rows, delta = await self.store.sqlite.run(sync, inline=sum(b - a for a, b in ranges) <= INLINE_ROWS)
        except sqlite3.Error as exc:
            self.store.hub.unwatch(folder_id, published)
            raise StoreUnavailable("The mail store is unavailable (reading messages); please try again "
                                   "later.") from exc
        except BaseException:
            self.store.hub.unwatch(folder_id, published)
            raise
        # What changed since the last refresh, read in the same snapshot: the refresh after this command uses
        # it instead of asking again (RFC 9051 7: updates as of this moment are as good as a moment later),
        # unless a write of this process (or a worker's, as they are announced) was published meanwhile.
        self._prefetched = (since, delta, published)
        return self.numbered(ranges, rows)

    async def vanished_since(self, modseq: int, sequence: SequenceSet | None = None) -> list[tuple[int, int]]:
        """UID ranges expunged after ``modseq`` within ``sequence`` (UIDs), for ``UID FETCH ... (CHANGEDSINCE n
        VANISHED)`` and SELECT QRESYNC (RFC 7162 3.2.5, 3.2.6); pruned records fall back to comparing UIDs."""
        folder_id, uidnext = self.folder_id, self.uidnext
        current = self.uids

        async def work(session: AsyncSession) -> list[tuple[int, int]]:
            top = max(uidnext - 1, current[-1] if current else 0)
            spans = sequence.resolve(top) if sequence is not None and not sequence.saved else [(1, top)]
            floor = (await session.execute(select(Folder.expunged_floor).where(Folder.id == folder_id))).scalar()
            if floor is not None and modseq < floor:
                return missing_ranges(spans, current)
            gone = (await session.execute(select(ExpungedUid.uid).where(
                ExpungedUid.folder_id == folder_id, ExpungedUid.modseq > modseq))).scalars().all()
            wanted = set()
            for uid in gone:
                index = bisect_right(spans, (uid, 2**64)) - 1
                if index >= 0 and spans[index][0] <= uid <= spans[index][1] and not contains(current, uid):
                    wanted.add(uid)
            return spans_of(wanted)

        return await self.store.read(work, "reading expunged messages")

    async def resync(self, modseq: int, known_uids: SequenceSet | None = None) -> Resync:
        """SELECT ... (QRESYNC (uidvalidity modseq [known-uids])): what the client must learn (RFC 7162 3.2.5.1).

        The engine checks the UIDVALIDITY first (a mismatch means no resynchronisation at all).
        """
        vanished = await self.vanished_since(modseq, known_uids)
        changed = await self.fetch(SequenceSet(((1, None),)), uid=True, columns=(FLAGS, MODSEQ),
                                   changedsince=modseq)
        return Resync(vanished, changed)

    # --- refresh ------------------------------------------------------------------------------------------
    async def refresh(self, *, expunges: bool = True) -> Changes:
        """What changed since the last refresh: new messages, others' flag changes, expunges (RFC 9051 7).

        ``expunges=False`` during FETCH, STORE and SEARCH by sequence number: the expunged UIDs stay in the view
        (numbers do not move under the client) and are reported by a later refresh. Raises
        :class:`MailboxNotFound` when the folder was deleted.
        """
        folder_id, since, store = self.folder_id, self.highestmodseq, self.store
        prefetched = self._prefetched
        self._drop_prefetched()
        if prefetched is not None and prefetched[0] == since and not prefetched[2].is_set():
            delta = prefetched[1]
        else:
            delta = await store.feed.get(folder_id, since, lambda: store.read_fast(
                lambda c: fast.folder_delta(c, folder_id, since),
                lambda session: folder_delta(session, folder_id, since), "reading mailbox changes"))
        if delta.floor is not None and since < delta.floor:  # expunge records pruned: compare UIDs
            known = self.uids
            current = await store.read(lambda session: all_uids(session, folder_id), "reading mailbox changes")
            gone = missing(known, current)
        else:
            gone = sorted(uid for uid in delta.gone if contains(self.uids, uid))
        changes = Changes()
        rows = delta.rows
        # Rows committed after the counter was read are learned now; commits follow MODSEQ order (the folder
        # row lock), so everything below the highest MODSEQ seen is in this answer too.
        self.highestmodseq = max([delta.highestmodseq, *(row.modseq or 0 for row in rows)])
        self.uidnext = max(self.uidnext, delta.uidnext)
        self._learn(rows, gone, changes)
        if self._pending_expunge and expunges:
            changes.expunged = sorted(self._pending_expunge)
            changes.expunged_seqs = self._remove(changes.expunged)
            self._pending_expunge.clear()
            for uid in changes.expunged:
                self._own.pop(uid, None)
        if changes.new and await self._claim_recent():
            changes.recent_changed = True
        if changes.expunged and self._recent:
            changes.recent_changed = True
        changes.exists = self.exists
        changes.recent = self.recent
        return changes

    def close(self) -> None:
        """The session leaves the folder (or ends): nothing of this view stays registered with the store."""
        self._drop_prefetched()

    def _drop_prefetched(self) -> None:
        if self._prefetched is not None:
            self.store.hub.unwatch(self.folder_id, self._prefetched[2])
            self._prefetched = None

    def _learn(self, rows: list[Row], gone: list[int], changes: Changes) -> None:
        fresh: list[int] = []
        top = self.max_uid
        for row in rows:
            if row.uid > top:
                fresh.append(row.uid)
            elif self._own.get(row.uid) == row.modseq:
                del self._own[row.uid]
            elif row.uid not in self._pending_expunge and contains(self.uids, row.uid):
                self._own.pop(row.uid, None)
                changes.flags.append(row)
        changes.new_keywords = self.note_keywords(rows)
        if fresh:
            self.uids.extend(fresh)
            changes.new = fresh
        gone_set = set(gone)
        self._pending_expunge |= gone_set
        if gone_set:
            changes.flags = [row for row in changes.flags if row.uid not in gone_set]

    def _remove(self, removed: list[int]) -> list[int]:
        """Remove UIDs from the view; their sequence numbers before removal, highest first (EXPUNGE order)."""
        present = [uid for uid in removed if contains(self.uids, uid)]
        seqs = sorted((bisect_left(self.uids, uid) + 1 for uid in present), reverse=True)
        if len(present) > _BULK_REMOVE:
            gone = set(present)
            self.uids = new_uids(uid for uid in self.uids if uid not in gone)
        else:
            for seq in seqs:
                del self.uids[seq - 1]
        return seqs

    # --- writing ------------------------------------------------------------------------------------------
    def _writable(self) -> None:
        if self.readonly:
            raise NotAllowed("The mailbox is open read-only (EXAMINE).", code="READ-ONLY")

    async def store_flags(self, sequence: SequenceSet, *, uid: bool, mode: flagops.Mode, flags: Iterable[str],
                          unchangedsince: int | None = None, saved: Sequence[int] | None = None
                          ) -> tuple[list[tuple[int, Row]], list[tuple[int, int]]]:
        """STORE: ``(seq, row(uid, flags, modseq))`` of every named message still present, and ``(seq, uid)`` of
        those left alone because they changed after ``UNCHANGEDSINCE`` (RFC 7162 3.1.3 ``MODIFIED``)."""
        self._writable()
        self._drop_prefetched()  # the refresh after a write reads again
        ranges = self.index_ranges(sequence, uid=uid, saved=saved)
        if not ranges:
            return [], []
        spans, folder_id, wanted = self.uid_spans(ranges), self.folder_id, tuple(flags)

        async def work(session: AsyncSession) -> flagops.StoreResult:
            return await flagops.store_flags(session, folder_id, spans, mode, wanted, unchangedsince)

        def sync(tx: WriteTx) -> flagops.StoreResult:
            stored, changed = flagops.store_sqlite(tx.connection, folder_id, spans, mode, wanted, unchangedsince)
            if changed:
                tx.mark(folder_id)
            return stored

        result = await self.store.write_fast(sync, work, "storing flags", synced=False)
        for row in result.rows:
            if row.modseq is not None:
                self._own[row.uid] = row.modseq
        self.note_keywords(result.rows)
        modified = [(seq, uid) for uid in result.modified if (seq := self.seq_of(uid)) is not None]
        return self.numbered(ranges, result.rows), modified

    async def expunge(self, uids: SequenceSet | None = None) -> list[int]:
        """EXPUNGE (or UID EXPUNGE within ``uids``, RFC 4315 2.1): remove the known messages flagged
        ``\\Deleted``; returns their UIDs. The engine then calls :meth:`refresh` for the EXPUNGE responses."""
        self._writable()
        self._drop_prefetched()
        top = self.max_uid
        if not top:
            return []
        spans = uids.resolve(top) if uids is not None and not uids.saved else [(1, top)]
        if not spans:
            return []
        folder_id, account_id = self.folder_id, self.account_id

        async def work(session: AsyncSession) -> list[int]:
            from gateway.imap.view.rows import uid_condition

            done, fast_found = await fast.on_writer(session, lambda c: fast.expunge_deleted(c, folder_id, spans))
            if done:
                if fast_found:
                    mark_changed(session, folder_id)
                    await record(session, "imap.expunged", "ok", rule="R18", mailbox_id=account_id,
                                 folder_id=folder_id, count=len(fast_found))
                return fast_found or []
            found: list[tuple[int, int]] = []
            for part in chunks(spans):
                result = await session.execute(select(Delivery.id, Delivery.uid).where(
                    Delivery.folder_id == folder_id, uid_condition(part), flagops.has_flag("\\Deleted")))
                found.extend((r.id, r.uid) for r in result)
            if not found:
                return []
            modseq = await flagops.bump_modseq(session, folder_id)
            await remove_deliveries(session, folder_id, found, modseq)
            await record(session, "imap.expunged", "ok", rule="R18", mailbox_id=account_id, folder_id=folder_id,
                         count=len(found))
            return sorted(uid for _, uid in found)

        def sync(tx: WriteTx) -> list[int]:
            found = fast.expunge_deleted(tx.connection, folder_id, spans)
            if found:
                tx.mark(folder_id)
                tx.record("imap.expunged", "ok", rule="R18", mailbox_id=account_id, folder_id=folder_id,
                          count=len(found))
            return found

        return await self.store.write_fast(sync, work, "expunging messages", synced=False)

    async def copy(self, sequence: SequenceSet, destination: str, *, uid: bool, move: bool = False,
                   quota: int | None = None, saved: Sequence[int] | None = None) -> CopyResult:
        """COPY or MOVE (RFC 6851) in one transaction, with COPYUID data (RFC 4315). MOVE records the source
        expunges; the engine sends the COPYUID ``OK`` first, then :meth:`refresh`'s EXPUNGEs (RFC 6851 4.3)."""
        from gateway.imap.view import mutate

        if move:
            self._writable()
        ranges = self.index_ranges(sequence, uid=uid, saved=saved)
        spans = self.uid_spans(ranges)
        return await mutate.copy_messages(self.store, self.account_id, self.folder_id, spans,
                                          canonical(destination), move=move, quota=quota)
