"""What changed in a folder since a MODSEQ, read from the store, and the UID-list arithmetic views need for it.

Reads use the (folder_id, modseq) indexes of ``deliveries`` and ``imap_expunged``; when expunge records may have
been pruned (``folders.expunged_floor``), the UIDs gone are found by comparing UID lists instead. Expunging
writes the records those reads find (:func:`remove_deliveries`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.models import ExpungedUid
from gateway.imap.view.errors import MailboxNotFound
from gateway.imap.view.rows import Row, parse_flags
from gateway.imap.view.store import ViewStore, chunks, new_uids
from gateway.store.models import Delivery, Folder


@dataclass
class Changes:
    """What a refresh learned, in the order the engine reports it (RFC 9051 7.4.1, 7.3.1, 7.5.2).

    ``expunged`` are UIDs (for VANISHED, RFC 7162 3.2.10) and ``expunged_seqs`` their sequence numbers, highest
    first (each ``* n EXPUNGE`` then stays right as the ones before it are applied). ``flags`` are rows
    ``(uid, flags, modseq)`` of known messages another session changed; ``new_keywords`` must be announced in
    ``FLAGS``/``PERMANENTFLAGS`` before any FETCH shows them.
    """

    expunged: list[int] = field(default_factory=list)
    expunged_seqs: list[int] = field(default_factory=list)
    new: list[int] = field(default_factory=list)
    flags: list[Row] = field(default_factory=list)
    new_keywords: list[str] = field(default_factory=list)
    exists: int = 0
    recent: int = 0
    recent_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.expunged or self.new or self.flags or self.new_keywords or self.recent_changed)


@dataclass(frozen=True)
class Resync:
    """QRESYNC at SELECT (RFC 7162 3.2.5): UID ranges gone since the client's MODSEQ, and rows changed since."""

    vanished: list[tuple[int, int]]
    changed: list[tuple[int, Row]]


@dataclass(frozen=True)
class CopyResult:
    """COPYUID data (RFC 4315 3): the destination's UIDVALIDITY, source UIDs and the UIDs they got, in order."""

    uidvalidity: int
    source_uids: list[int]
    dest_uids: list[int]


async def all_uids(session: AsyncSession, folder_id: int) -> array[int]:
    """The folder's UIDs, ascending, in one aggregated value (a row per message costs three times as much)."""
    of_folder = Delivery.folder_id == folder_id
    if session.get_bind().dialect.name == "postgresql":
        query = select(func.array_agg(aggregate_order_by(Delivery.uid, Delivery.uid))).where(of_folder)
        return new_uids((await session.execute(query)).scalar_one() or ())
    text = (await session.execute(select(func.group_concat(Delivery.uid)).where(of_folder))).scalar_one()
    return new_uids(sorted(map(int, text.split(","))) if text else ())


async def changes_since(session: AsyncSession, folder_id: int, since: int, known: Sequence[int]
                        ) -> tuple[list[Row], list[int]]:
    """Rows added or re-flagged after MODSEQ ``since``, and the ``known`` UIDs expunged after it.

    When expunge records after ``since`` may have been pruned (``folders.expunged_floor``, read after them so a
    concurrent pruning is noticed), the UIDs gone are found by comparing ``known`` with the folder instead.
    """
    changed = await session.execute(select(Delivery.uid, Delivery.flags, Delivery.modseq).where(
        Delivery.folder_id == folder_id, Delivery.modseq > since).order_by(Delivery.uid))
    rows = [Row(r.uid, parse_flags(r.flags), r.modseq) for r in changed]
    gone = set((await session.execute(select(ExpungedUid.uid).where(
        ExpungedUid.folder_id == folder_id, ExpungedUid.modseq > since))).scalars())
    floor = (await session.execute(select(Folder.expunged_floor).where(Folder.id == folder_id))).scalar()
    if floor is not None and since < floor:
        current = await all_uids(session, folder_id)
        return rows, missing(known, current)
    return rows, sorted(uid for uid in gone if contains(known, uid))


@dataclass(frozen=True)
class FolderDelta:
    """What changed in a folder after a MODSEQ, as every view of it needs it (shared through the
    :class:`~gateway.imap.view.store.ChangeFeed`): the counters, rows added or re-flagged, all UIDs expunged
    (each view keeps those it knows) and the expunge floor."""

    highestmodseq: int
    uidnext: int
    rows: list[Row]
    gone: frozenset[int]
    floor: int | None


async def folder_delta(session: AsyncSession, folder_id: int, since: int) -> FolderDelta:
    """One indexed read of the folder row, and when its MODSEQ moved, the (folder_id, modseq) ranges of
    ``deliveries`` and ``imap_expunged``; raises :class:`MailboxNotFound` for a deleted folder."""
    row = (await session.execute(select(Folder.highestmodseq, Folder.uidnext).where(
        Folder.id == folder_id))).one_or_none()
    if row is None:
        raise MailboxNotFound("The selected mailbox no longer exists.")
    highest, uidnext = int(row.highestmodseq), int(row.uidnext)
    if highest == since:
        return FolderDelta(highest, uidnext, [], frozenset(), None)
    changed = await session.execute(select(Delivery.uid, Delivery.flags, Delivery.modseq).where(
        Delivery.folder_id == folder_id, Delivery.modseq > since).order_by(Delivery.uid))
    rows = [Row(r.uid, parse_flags(r.flags), r.modseq) for r in changed]
    gone = frozenset((await session.execute(select(ExpungedUid.uid).where(
        ExpungedUid.folder_id == folder_id, ExpungedUid.modseq > since))).scalars())
    # Read after the records, so a pruning that raced them is noticed (as in changes_since).
    floor = (await session.execute(select(Folder.expunged_floor).where(Folder.id == folder_id))).scalar()
    return FolderDelta(highest, uidnext, rows, gone, None if floor is None else int(floor))


def contains(uids: Sequence[int], uid: int) -> bool:
    """Whether the ascending ``uids`` hold ``uid``."""
    index = bisect_left(uids, uid)
    return index < len(uids) and uids[index] == uid


def missing(known: Iterable[int], current: Sequence[int]) -> list[int]:
    """The UIDs of ``known`` (ascending) that ``current`` (ascending) lacks, in one merge pass."""
    gone: list[int] = []
    position, size = 0, len(current)
    for uid in known:
        while position < size and current[position] < uid:
            position += 1
        if position >= size or current[position] != uid:
            gone.append(uid)
    return gone


def missing_ranges(spans: Sequence[tuple[int, int]], present: Sequence[int]) -> list[tuple[int, int]]:
    """The parts of the inclusive ``spans`` (sorted) holding no UID of ``present`` (ascending), as ranges."""
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        start = bisect_left(present, lo)
        stop = bisect_right(present, hi)
        cursor = lo
        for index in range(start, stop):
            uid = present[index]
            if uid > cursor:
                out.append((cursor, uid - 1))
            cursor = uid + 1
        if cursor <= hi:
            out.append((cursor, hi))
    return out


async def remove_deliveries(session: AsyncSession, folder_id: int, rows: Sequence[tuple[int, int]],
                            modseq: int) -> None:
    """Delete deliveries ``(id, uid)`` and record their UIDs as expunged at ``modseq`` (QRESYNC VANISHED)."""
    for part in chunks([delivery_id for delivery_id, _ in rows]):
        await session.execute(delete(Delivery).where(Delivery.id.in_(part)))
    at = datetime.now(UTC)
    records: list[dict[str, Any]] = [{"folder_id": folder_id, "uid": uid, "modseq": modseq, "expunged_at": at}
                                     for _, uid in rows]
    for part_records in chunks(records):
        await session.execute(insert(ExpungedUid), list(part_records))


async def initial_uids(store: ViewStore, session: AsyncSession, folder_id: int, highest: int) -> array[int]:
    """The folder's UIDs as of MODSEQ ``highest``; large folders come from the process cache plus what changed."""
    cached = store.uid_cache.get(folder_id)
    if cached is not None and cached[0] <= highest:
        since, uids = cached
        if since != highest:
            rows, gone = await changes_since(session, folder_id, since, uids)
            gone_set = set(gone)
            top = uids[-1] if uids else 0
            kept = new_uids(uid for uid in uids if uid not in gone_set) if gone_set else uids
            kept.extend(row.uid for row in rows if row.uid > top)
            uids = kept
    else:
        uids = await all_uids(session, folder_id)
    store.uid_cache.put(folder_id, highest, uids)
    return uids
