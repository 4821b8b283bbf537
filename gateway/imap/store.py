"""pymap's mailbox interfaces over the store: folders, deliveries (UID, flags, MODSEQ) and message bytes.

Every query is scoped to the logged-in account's folders and uses an index: (folder_id, uid) for messages,
(folder_id, modseq) for changes since a MODSEQ, the primary key for message bytes. Writes bump the folder's
``highestmodseq`` first (one row update: it orders concurrent writers of a folder on PostgreSQL and SQLite),
mark the folder changed, send ``pg_notify`` in the transaction and publish to this process's hub after commit,
exactly like SMTP delivery does.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import email.utils
from array import array
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar, cast

import structlog
from pymap.concurrent import Event
from pymap.flags import FlagOp, SessionFlags
from pymap.listtree import ListTree
from pymap.mailbox import MailboxSnapshot
from pymap.mime import MessageContent
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials import FetchRequirement, ObjectId, SequenceSet
from pymap.parsing.specials.flag import Deleted, Flag, Recent, Wildcard, get_system_flags
from pymap.selected import SelectedMailbox, SelectedSet
from sqlalchemy import ColumnElement, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.imap.changes import FolderWatcher
from gateway.imap.mime import LoadedMessage
from gateway.imap.models import ExpungedUid
from gateway.imap.selected import StoreSelected, UidList, index_ranges, new_uids
from gateway.store import mailstore
from gateway.store.changes import ChangeHub, mark_changed
from gateway.store.committer import GroupCommitter
from gateway.store.events import record
from gateway.store.models import Delivery, Folder, Message

log = structlog.get_logger("gateway.imap")
T = TypeVar("T")

#: Hierarchy delimiter of folder names.
DELIMITER = "/"
#: Longest folder name we accept (the column is 400 characters).
MAX_FOLDER_NAME = 400
#: Most folders one account may have: LIST stays cheap and a client cannot fill the table.
MAX_FOLDERS = 1000
#: Rows per ``IN (...)`` list, well under SQLite's and asyncpg's parameter limits.
CHUNK = 500
#: Message bytes loaded ahead for one FETCH or SEARCH, in messages; the rest load one by one while written.
PREFETCH = 200
#: Folders smaller than this are read in full at each SELECT; larger ones are cached per process.
CACHE_MIN_MESSAGES = 2000
#: UIDs kept in the per-process cache of selected folders, all folders together (8 bytes each: 16 MB).
CACHE_MAX_MESSAGES = 2_000_000
#: Folders the account cannot delete or rename: clients and SMTP rely on them.
PROTECTED = frozenset(name for name, _ in mailstore.DEFAULT_FOLDERS)


def _chunks(values: Sequence[int], size: int = CHUNK) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


@lru_cache(maxsize=4096)
def parse_flags(text: str) -> frozenset[Flag]:
    """The stored flags column ("\\Seen $Label1") as pymap flags; cached, a folder has few distinct values."""
    return frozenset(Flag(token.encode("utf-8", "replace")) for token in text.split())


def format_flags(flags: Iterable[Flag]) -> str:
    return " ".join(sorted(str(flag) for flag in flags if flag != Recent))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class StoreMessage:
    """A delivery as pymap sees it (``CachedMessage`` and ``MessageInterface``); its bytes (``messages.raw``)
    are read only when a command needs them.

    Deliberately slim (no per-message object ids or timezone conversion until asked): SELECT of a large
    folder builds one of these per message.
    """

    __slots__ = ["_date", "_flags", "_folder", "_raw", "expunged", "flags_key", "message_id", "uid"]

    def __init__(self, uid: int, internal_date: datetime, permanent_flags: frozenset[Flag], *,
                 message_id: int, folder: FolderData, expunged: bool = False) -> None:
        self.uid = uid
        self.expunged = expunged
        self.message_id = message_id
        self.flags_key = (uid, permanent_flags)
        self._date = internal_date
        self._flags = permanent_flags
        self._folder = folder
        self._raw: bytes | None = None

    @property
    def internal_date(self) -> datetime:
        return _utc(self._date)

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        return self._flags

    @property
    def email_id(self) -> ObjectId:
        return ObjectId(b"M%d" % self.message_id)

    @property
    def thread_id(self) -> ObjectId:
        return ObjectId(None)

    def get_flags(self, session_flags: SessionFlags) -> frozenset[Flag]:
        extra = session_flags.get(self.uid)
        return self._flags | extra if extra else self._flags

    def with_flags(self, flags: frozenset[Flag]) -> StoreMessage:
        return StoreMessage(self.uid, self._date, flags, message_id=self.message_id, folder=self._folder)

    def with_raw(self, raw: bytes | None) -> StoreMessage:
        """A copy carrying its bytes for one command (views and the cache never hold message bytes)."""
        copy = StoreMessage(self.uid, self._date, self._flags, message_id=self.message_id, folder=self._folder,
                            expunged=self.expunged)
        copy._raw = raw
        return copy

    @classmethod
    def bare(cls, uid: int, folder: FolderData) -> StoreMessage:
        """A message known by its UID only: a SEARCH result the store decided, answered by number."""
        return cls(uid, datetime.now(UTC), frozenset(), message_id=0, folder=folder)

    @classmethod
    def gone(cls, uid: int, folder: FolderData) -> StoreMessage:
        """A message a command named but another session expunged meanwhile (``NO [EXPUNGEISSUED]``)."""
        return cls(uid, datetime.now(UTC), frozenset(), message_id=0, folder=folder, expunged=True)

    def expunged_copy(self) -> StoreMessage:
        return StoreMessage(self.uid, self._date, self._flags, message_id=self.message_id, folder=self._folder,
                            expunged=True)

    def __repr__(self) -> str:
        return f"<StoreMessage uid={self.uid} flags={self._flags}>"

    async def load_content(self, requirement: FetchRequirement) -> LoadedMessage:
        if requirement & FetchRequirement.CONTENT:
            raw = self._raw
            if raw is None:
                raw = await self._folder.load_raw(self.message_id)
            if not requirement & FetchRequirement.BODY:
                # Headers only (ENVELOPE, BODY[HEADER...], SEARCH FROM/SUBJECT): do not walk the body.
                raw = header_block(raw)
            return LoadedMessage(self, requirement, MessageContent.parse(raw))  # type: ignore[arg-type]
        return LoadedMessage(self, requirement, None)  # type: ignore[arg-type]


def header_block(raw: bytes) -> bytes:
    """The header section of a message, with the blank line that ends it (all of it if there is no body)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[:end + len(separator)]
    return raw


def _requirement_of(command: Any) -> FetchRequirement:
    attributes = getattr(command, "attributes", None) or ()
    return FetchRequirement.reduce(getattr(attr, "requirement", FetchRequirement.NONE) for attr in attributes)


class ViewCache:
    """The UID lists of recently selected large folders, by folder id, with the MODSEQ they reflect.

    Bounded by a total number of UIDs (least recently used folders go first); folders under
    :data:`CACHE_MIN_MESSAGES` are cheap to read and not kept. A session gets its own copy of the array (a
    memory copy, 8 bytes a message), so the next SELECT of a folder reads only what changed since.
    """

    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self._entries: dict[int, tuple[int, array[int]]] = {}

    def get(self, folder_id: int) -> tuple[int, array[int]] | None:
        entry = self._entries.pop(folder_id, None)
        if entry is None:
            return None
        self._entries[folder_id] = entry  # most recently used last
        return entry[0], array(entry[1].typecode, entry[1])

    def put(self, folder_id: int, modseq: int, uids: array[int]) -> None:
        self._entries.pop(folder_id, None)
        if len(uids) < CACHE_MIN_MESSAGES or len(uids) > self.max_messages:
            return
        self._entries[folder_id] = (modseq, array(uids.typecode, uids))
        total = sum(len(entry) for _, entry in self._entries.values())
        while total > self.max_messages:
            oldest = next(iter(self._entries))
            total -= len(self._entries.pop(oldest)[1])


class Store:
    """Sessions and change signalling shared by every IMAP connection of the process."""

    def __init__(self, writes: async_sessionmaker[AsyncSession], reads: async_sessionmaker[AsyncSession],
                 hub: ChangeHub, watcher: FolderWatcher) -> None:
        self.writes = writes
        self.reads = reads
        self.hub = hub
        self.watcher = watcher
        self.committer = GroupCommitter(writes, hub, reads=reads)
        self.views = ViewCache(CACHE_MAX_MESSAGES)

    async def transact(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``work`` in a write transaction shared with concurrent IMAP writers (one commit, one fsync).

        The committer sends NOTIFY in the transaction and wakes this process's waiters after the commit.
        ``work`` may run twice (alone, after a shared transaction failed): it must keep its results local.
        """
        return cast(T, await self.committer.run(work))


class FolderData:
    """One folder of the account (pymap's ``MailboxDataInterface``)."""

    def __init__(self, store: Store, folder_id: int, name: str, uidvalidity: int,
                 selected_set: SelectedSet, account_id: int) -> None:
        self.store = store
        self.account_id = account_id
        self.folder_id = folder_id
        self.name = name
        self._uid_validity = uidvalidity
        self._mailbox_id = ObjectId(b"F%d" % folder_id)
        self._selected_set = selected_set
        #: (unseen, first unseen sequence number) of the last initial load, for SELECT's untagged responses.
        self.initial_counts: tuple[int, int | None] = (0, None)

    # --- pymap properties -----------------------------------------------------------------------------------
    @property
    def mailbox_id(self) -> ObjectId:
        return self._mailbox_id

    @property
    def readonly(self) -> bool:
        return False

    @property
    def uid_validity(self) -> int:
        return self._uid_validity

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        return (get_system_flags() - {Recent}) | {Wildcard}

    @property
    def session_flags(self) -> frozenset[Flag]:
        return frozenset({Recent})

    @property
    def selected_set(self) -> SelectedSet:
        return self._selected_set

    # --- reading --------------------------------------------------------------------------------------------
    def _message(self, uid: int, flags: str, internal_date: datetime, message_id: int) -> StoreMessage:
        return StoreMessage(uid, internal_date, parse_flags(flags), message_id=message_id, folder=self)

    async def load_raw(self, message_id: int) -> bytes:
        async with self.store.reads() as session:
            raw = (await session.execute(select(Message.raw).where(Message.id == message_id))).scalar_one()
        return bytes(raw)

    async def load_messages(self, uids: Sequence[int]) -> dict[int, StoreMessage]:
        """The deliveries of ``uids`` (sorted) still in the folder, by UID: flags, date and message id.

        Runs of close UIDs are read as one UID range of the (folder_id, uid) index, scattered ones by ``IN``
        lists: a page of a large folder costs one small query whatever the folder's size.
        """
        found: dict[int, StoreMessage] = {}
        columns = (Delivery.uid, Delivery.flags, Delivery.internal_date, Delivery.message_id)
        async with self.store.reads() as session:
            for chunk in _chunks(uids):
                where = Delivery.folder_id == self.folder_id
                if chunk[-1] - chunk[0] < 2 * len(chunk):
                    query = select(*columns).where(where, Delivery.uid.between(chunk[0], chunk[-1]))
                else:
                    query = select(*columns).where(where, Delivery.uid.in_(chunk))
                for row in await session.execute(query):
                    found[row.uid] = self._message(*row)
        return found

    async def prefetch(self, messages: Sequence[StoreMessage]) -> list[StoreMessage]:
        """Copies of ``messages`` of which the first :data:`PREFETCH` carry their bytes, read in a few queries."""
        wanted = [msg.message_id for msg in messages[:PREFETCH]]
        if not wanted:
            return list(messages)
        raws: dict[int, bytes] = {}
        async with self.store.reads() as session:
            for chunk in _chunks(wanted):
                rows = await session.execute(select(Message.id, Message.raw).where(Message.id.in_(chunk)))
                raws.update((row.id, bytes(row.raw)) for row in rows)
        head = [msg.with_raw(raws.get(msg.message_id)) for msg in messages[:PREFETCH]]
        return head + list(messages[PREFETCH:])

    async def _counters(self, session: AsyncSession) -> tuple[int, int]:
        row = (await session.execute(
            select(Folder.highestmodseq, Folder.uidnext).where(Folder.id == self.folder_id))).one_or_none()
        if row is None:
            raise KeyError(self.name)
        return int(row.highestmodseq), int(row.uidnext)

    async def _changes(self, session: AsyncSession, since: int, known: Sequence[int]
                       ) -> tuple[list[tuple[int, frozenset[Flag]]], list[int]]:
        """Rows added or re-flagged, and UIDs expunged, after MODSEQ ``since`` (the two (folder, modseq) indexes).

        When expunge records after ``since`` may have been pruned (the folder's floor, read after them so that a
        concurrent pruning is noticed), the UIDs gone are found by comparing ``known`` with the folder instead.
        """
        changed = await session.execute(select(Delivery.uid, Delivery.flags).where(
            Delivery.folder_id == self.folder_id, Delivery.modseq > since))
        gone = list((await session.execute(select(ExpungedUid.uid).where(
            ExpungedUid.folder_id == self.folder_id, ExpungedUid.modseq > since))).scalars())
        floor = (await session.execute(select(Folder.expunged_floor).where(Folder.id == self.folder_id))).scalar()
        if floor is not None and since < floor:
            current = set(await self._all_uids(session))
            gone = [uid for uid in known if uid not in current]
        return [(uid, parse_flags(flags)) for uid, flags in changed], gone

    async def update_selected(self, selected: SelectedMailbox, *, wait_on: Event | None = None) -> SelectedMailbox:
        """Bring ``selected`` up to date: its UIDs at first, afterwards only what changed since its MODSEQ.

        The folder's MODSEQ is read before the changed rows, so a change committed in between is seen again
        next time rather than missed.
        """
        assert isinstance(selected, StoreSelected)
        if wait_on is not None:
            await self._wait(selected, wait_on)
        try:
            async with self.store.reads() as session:
                highest, _ = await self._counters(session)
                last = selected.mod_sequence
                if last is None:
                    uids = await self._initial_uids(session, highest)
                    first_unseen = (await session.execute(select(func.min(Delivery.uid)).where(
                        Delivery.folder_id == self.folder_id, Delivery.seen.is_(False)))).scalar_one_or_none()
                    selected.load(uids, first_unseen)
                elif highest != last:
                    selected.learn(*await self._changes(session, last, selected.messages.uids))
        except KeyError:
            selected.set_deleted()
            return selected
        selected.mod_sequence = highest
        return selected

    async def _initial_uids(self, session: AsyncSession, highest: int) -> array[int]:
        """Every UID of the folder in order, as of MODSEQ ``highest``.

        Large folders are kept in a per-process cache (:class:`ViewCache`): the next SELECT of the folder, by
        any session, reads only the rows changed since the cached MODSEQ through the (folder_id, modseq) index.
        """
        cached = self.store.views.get(self.folder_id)
        if cached is not None and cached[0] <= highest:
            since, uids = cached
            if since != highest:
                changed, gone = await self._changes(session, since, uids)
                known = UidList(uids)
                known.remove(gone)
                known.add(uid for uid, _ in changed)
                uids = known.uids
        else:
            uids = await self._all_uids(session)
        self.store.views.put(self.folder_id, highest, uids)
        return uids

    async def _all_uids(self, session: AsyncSession) -> array[int]:
        """The folder's UIDs in one aggregated value: a row per message costs three times as much to read."""
        of_folder = Delivery.folder_id == self.folder_id
        if session.get_bind().dialect.name == "postgresql":
            query = select(func.array_agg(aggregate_order_by(Delivery.uid, Delivery.uid))).where(of_folder)
            return new_uids((await session.execute(query)).scalar_one() or ())
        text = (await session.execute(select(func.group_concat(Delivery.uid)).where(of_folder))).scalar_one()
        return new_uids(sorted(map(int, text.split(","))) if text else ())

    async def _wait(self, selected: SelectedMailbox, done: Event) -> None:
        """IDLE: return when this folder changes (this process, NOTIFY or poll), when DONE arrives, or after 30 s."""
        changed = self.store.watcher.watch(self.folder_id, selected.mod_sequence)
        try:
            async with self.store.reads() as session:
                highest, _ = await self._counters(session)
            if selected.mod_sequence is not None and highest != selected.mod_sequence:
                return
            waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(done.wait(timeout=30.0))]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        except KeyError:
            return
        finally:
            self.store.watcher.unwatch(self.folder_id, changed)

    async def snapshot(self) -> MailboxSnapshot:
        """STATUS counters from the indexes (no message bytes, no scan of the flags)."""
        async with self.store.reads() as session:
            _, uidnext = await self._counters(session)
            exists = (await session.execute(
                select(func.count()).where(Delivery.folder_id == self.folder_id))).scalar_one()
            unseen = (await session.execute(select(func.count()).where(
                Delivery.folder_id == self.folder_id, Delivery.seen.is_(False)))).scalar_one()
        return MailboxSnapshot(self.mailbox_id, self.readonly, self.uid_validity, self.permanent_flags,
                               self.session_flags, exists, 0, unseen, None, uidnext)

    def snapshot_of(self, selected: StoreSelected, uidnext: int) -> MailboxSnapshot:
        """SELECT's counters from the initial load of ``selected``.

        The unseen count is not part of a SELECT response (only the first unseen message is), so it is not
        counted here; STATUS counts it.
        """
        return MailboxSnapshot(self.mailbox_id, self.readonly, self.uid_validity, self.permanent_flags,
                               self.session_flags, selected.messages.exists, 0, 0, selected.first_unseen, uidnext)

    async def uidnext(self) -> int:
        async with self.store.reads() as session:
            return (await self._counters(session))[1]

    async def find(self, seq_set: SequenceSet, selected: SelectedMailbox) -> AsyncIterable[tuple[int, StoreMessage]]:
        assert isinstance(selected, StoreSelected)
        pairs = selected.messages.get_uids(seq_set)
        for start in range(0, len(pairs), CHUNK):
            batch = pairs[start:start + CHUNK]
            found = await self.load_messages([uid for _, uid in batch])
            for seq, uid in batch:
                if uid in found:
                    yield seq, found[uid]

    async def _uids_where(self, seq_set: SequenceSet, selected: StoreSelected,
                          conditions: Sequence[ColumnElement[bool]], *columns: Any) -> tuple[list[tuple[int, int]],
                                                                                              dict[int, Any]]:
        """``(seq, uid)`` of the messages ``seq_set`` names that the store finds with ``conditions``, and the rows."""
        uids = selected.messages.uids
        ranges = index_ranges(seq_set, uids)
        if not ranges:
            return [], {}
        within = Delivery.uid.between(uids[ranges[0][0]], uids[ranges[-1][1] - 1])
        async with self.store.reads() as session:
            rows = await session.execute(select(Delivery.uid, *columns).where(
                Delivery.folder_id == self.folder_id, within, *conditions))
            found = {row[0]: row for row in rows}
        return selected.messages.select_named(seq_set, found), found

    async def find_where(self, seq_set: SequenceSet, selected: SelectedMailbox,
                         conditions: Sequence[ColumnElement[bool]]) -> list[tuple[int, StoreMessage]]:
        """The messages ``seq_set`` names that the store finds with ``conditions`` (SEARCH's prefilter)."""
        assert isinstance(selected, StoreSelected)
        named, rows = await self._uids_where(seq_set, selected, conditions, Delivery.flags, Delivery.internal_date,
                                             Delivery.message_id)
        return [(seq, self._message(*rows[uid])) for seq, uid in named]

    async def find_uids_where(self, seq_set: SequenceSet, selected: SelectedMailbox,
                              conditions: Sequence[ColumnElement[bool]]) -> list[tuple[int, StoreMessage]]:
        """Like :meth:`find_where` when only the UIDs matter (a search the conditions decide alone)."""
        assert isinstance(selected, StoreSelected)
        named, _ = await self._uids_where(seq_set, selected, conditions)
        return [(seq, StoreMessage.bare(uid, self)) for seq, uid in named]

    async def find_deleted(self, seq_set: SequenceSet, selected: SelectedMailbox) -> Sequence[int]:
        """UIDs flagged \\Deleted in the store (not only in this session's view) within ``seq_set``.

        The store is asked for the folder's \\Deleted messages (few, whatever the folder's size) and those are
        kept that the session knows and ``seq_set`` names.
        """
        found = await self.find_where(seq_set, selected, [Delivery.flags.like("%Deleted%")])
        return [msg.uid for _, msg in found if Deleted in msg.permanent_flags]

    # --- writing --------------------------------------------------------------------------------------------
    async def _bump(self, session: AsyncSession) -> int:
        """Take a new MODSEQ for this folder (the row lock orders this transaction after concurrent ones)."""
        result = await session.execute(
            update(Folder).where(Folder.id == self.folder_id)
            .values(highestmodseq=Folder.highestmodseq + 1).returning(Folder.highestmodseq))
        modseq = result.scalar_one_or_none()
        if modseq is None:
            raise KeyError(self.name)
        mark_changed(session, self.folder_id)
        return int(modseq)

    async def append(self, append_msg: AppendMessage, *, recent: bool = False) -> StoreMessage:
        """APPEND: store the bytes exactly as sent and deliver them here (the shared UID allocation path)."""
        raw = bytes(append_msg.literal)
        when = _utc(append_msg.when) if append_msg.when else datetime.now(UTC)
        flags = frozenset(append_msg.flag_set) - {Recent}
        headers = _summary_headers(raw)

        async def work(session: AsyncSession) -> tuple[int, int]:
            message_id = await mailstore.store_message(session, mailstore.StoredMessage(
                raw=raw, mail_from="", rcpt_to=[], sender_mailbox_id=None, **headers))
            uid = await mailstore.deliver(session, message_id, self.folder_id, format_flags(flags), when)
            return message_id, uid

        message_id, uid = await self.store.transact(work)
        return StoreMessage(uid, when, frozenset(flags), message_id=message_id, folder=self)

    async def copy_many(self, uids: Sequence[int], destination: FolderData, *,
                        move: bool) -> list[tuple[int, int]]:
        """COPY or MOVE in one transaction: new UIDs in ``destination``, source UIDs expunged when moving."""
        if not uids:
            return []

        async def work(session: AsyncSession) -> list[tuple[int, int]]:
            pairs: list[tuple[int, int]] = []
            modseq = await self._bump(session) if move else 0
            rows: list[Any] = []
            for chunk in _chunks(sorted(uids)):
                rows.extend(await session.execute(
                    select(Delivery.id, Delivery.uid, Delivery.message_id, Delivery.flags, Delivery.internal_date)
                    .where(Delivery.folder_id == self.folder_id, Delivery.uid.in_(chunk))))
            rows.sort(key=lambda row: row.uid)
            for row in rows:
                dest_uid = await mailstore.deliver(session, row.message_id, destination.folder_id, row.flags,
                                                   _utc(row.internal_date))
                pairs.append((row.uid, dest_uid))
            if move and rows:
                await self._expunge_rows(session, [(row.id, row.uid) for row in rows], modseq)
                # R18: removing mail from a folder is traced (how many, from where to where; never content).
                await record(session, "imap.moved", "ok", rule="R18", mailbox_id=self.account_id,
                             folder_id=self.folder_id, to_folder_id=destination.folder_id, count=len(rows))
            return pairs

        return list(await self.store.transact(work))

    async def _expunge_rows(self, session: AsyncSession, rows: Sequence[tuple[int, int]], modseq: int) -> None:
        ids = [delivery_id for delivery_id, _ in rows]
        for chunk in _chunks(ids):
            await session.execute(delete(Delivery).where(Delivery.id.in_(chunk)))
        at = datetime.now(UTC)
        await session.execute(insert(ExpungedUid), [
            {"folder_id": self.folder_id, "uid": uid, "modseq": modseq, "expunged_at": at} for _, uid in rows])

    async def delete(self, uids: Iterable[int]) -> None:
        """EXPUNGE: remove the deliveries (the message bytes stay for other recipients and the trail)."""
        wanted = sorted(set(uids))
        if not wanted:
            return

        async def work(session: AsyncSession) -> None:
            modseq = await self._bump(session)
            rows: list[tuple[int, int]] = []
            for chunk in _chunks(wanted):
                result = await session.execute(select(Delivery.id, Delivery.uid).where(
                    Delivery.folder_id == self.folder_id, Delivery.uid.in_(chunk)))
                rows.extend((row.id, row.uid) for row in result)
            if rows:
                await self._expunge_rows(session, rows, modseq)
                await record(session, "imap.expunged", "ok", rule="R18", mailbox_id=self.account_id,
                             folder_id=self.folder_id, count=len(rows))

        await self.store.transact(work)

    async def update_flags(self, uids: Sequence[int], flag_set: frozenset[Flag],
                           mode: FlagOp) -> dict[int, StoreMessage | None]:
        """STORE on many messages in one transaction; each UID's message with its new flags (None: expunged)."""
        if not uids:
            return {}
        flag_set = frozenset(flag_set) - {Recent}

        async def work(session: AsyncSession) -> dict[int, StoreMessage | None]:
            result: dict[int, StoreMessage | None] = dict.fromkeys(uids)
            modseq = await self._bump(session)
            changes: list[dict[str, Any]] = []
            for chunk in _chunks(sorted(result)):
                rows = await session.execute(
                    select(Delivery.id, Delivery.uid, Delivery.flags, Delivery.internal_date, Delivery.message_id)
                    .where(Delivery.folder_id == self.folder_id, Delivery.uid.in_(chunk)))
                for row in rows:
                    before = parse_flags(row.flags)
                    after = frozenset(mode.apply(before, flag_set))
                    result[row.uid] = StoreMessage(row.uid, row.internal_date, after, message_id=row.message_id,
                                                   folder=self)
                    if after != before:
                        text = format_flags(after)
                        changes.append({"b_id": row.id, "b_flags": text, "b_seen": mailstore.is_seen(text),
                                        "b_modseq": modseq})
            if changes:
                table = cast(Table, Delivery.__table__)
                await session.execute(
                    update(table).where(table.c.id == bindparam("b_id"))
                    .values(flags=bindparam("b_flags"), seen=bindparam("b_seen"), modseq=bindparam("b_modseq")),
                    changes)
            return result

        return dict(await self.store.transact(work))


def _summary_headers(raw: bytes) -> dict[str, str | None]:
    """Message-ID, Subject and From of an APPENDed message, for the ``messages`` columns (bounded read)."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32

    head = raw[:65536].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")

    def value(name: str, limit: int) -> str | None:
        text = parsed.get(name)
        return str(text)[:limit] if text is not None else None

    sender = value("From", 998)
    if sender:
        sender = email.utils.parseaddr(sender)[1] or sender
    return {"message_id_header": value("Message-ID", 998), "subject": value("Subject", 4000),
            "header_from": sender}


class FolderSet:
    """The account's folders (pymap's ``MailboxSetInterface``); every query is filtered by the account id."""

    def __init__(self, store: Store, account_id: int) -> None:
        self.store = store
        self.account_id = account_id
        self._selected_sets: dict[int, SelectedSet] = {}

    @property
    def delimiter(self) -> str:
        return DELIMITER

    @staticmethod
    def canonical(name: str) -> str:
        return "INBOX" if name.upper() == "INBOX" else name

    @staticmethod
    def check_name(name: str) -> None:
        """Refuse names a client could use to confuse the hierarchy or other software."""
        if (not name or len(name) > MAX_FOLDER_NAME or any(ord(c) < 32 or c == "\x7f" for c in name)
                or name.startswith(DELIMITER) or name.endswith(DELIMITER) or DELIMITER * 2 in name
                or any(part in {".", ".."} for part in name.split(DELIMITER)) or "*" in name or "%" in name):
            raise ValueError("invalid folder name")

    async def _names(self, subscribed_only: bool = False) -> list[tuple[str, str | None]]:
        query = select(Folder.name, Folder.special_use).where(Folder.mailbox_id == self.account_id)
        if subscribed_only:
            query = query.where(Folder.subscribed.is_(True))
        async with self.store.reads() as session:
            return [(row.name, row.special_use) for row in await session.execute(query)]

    async def special_uses(self) -> dict[str, str]:
        return {name: special for name, special in await self._names() if special}

    async def set_subscribed(self, name: str, subscribed: bool) -> None:

        async def work(session: AsyncSession) -> None:
            await session.execute(update(Folder).where(
                Folder.mailbox_id == self.account_id, Folder.name == self.canonical(name))
                .values(subscribed=subscribed))

        await self.store.transact(work)

    async def list_subscribed(self) -> ListTree:
        return ListTree(DELIMITER).update("INBOX", *(n for n, _ in await self._names(True)))

    async def list_mailboxes(self) -> ListTree:
        return ListTree(DELIMITER).update("INBOX", *(n for n, _ in await self._names()))

    async def get_mailbox(self, name: str) -> FolderData:
        name = self.canonical(name)
        async with self.store.reads() as session:
            row = (await session.execute(select(Folder.id, Folder.uidvalidity).where(
                Folder.mailbox_id == self.account_id, Folder.name == name))).one_or_none()
        if row is None:
            raise KeyError(name)
        selected_set = self._selected_sets.setdefault(row.id, SelectedSet())
        return FolderData(self.store, row.id, name, int(row.uidvalidity), selected_set, self.account_id)

    async def add_mailbox(self, name: str) -> ObjectId:
        name = self.canonical(name)
        self.check_name(name)

        async def work(session: AsyncSession) -> int:
            existing = (await session.execute(select(Folder.name).where(
                Folder.mailbox_id == self.account_id))).scalars().all()
            if name in existing:
                raise ValueError(name)
            parts = name.split(DELIMITER)
            # RFC 9051 6.3.4: create the missing superior names too, so they can be selected and renamed.
            missing = [p for p in (DELIMITER.join(parts[:n]) for n in range(1, len(parts) + 1))
                       if p not in existing]
            if len(existing) + len(missing) > MAX_FOLDERS:
                raise OverflowError(name)
            folder_id = 0
            for folder_name in missing:
                folder_id = await mailstore.create_folder(session, self.account_id, folder_name)
            return folder_id

        return ObjectId(b"F%d" % await self.store.transact(work))

    async def delete_mailbox(self, name: str) -> None:
        name = self.canonical(name)
        if name in PROTECTED:
            raise PermissionError(name)

        async def work(session: AsyncSession) -> None:
            folder = (await session.execute(select(Folder.id).where(
                Folder.mailbox_id == self.account_id, Folder.name == name))).scalar_one_or_none()
            if folder is None:
                raise KeyError(name)
            removed = (await session.execute(select(func.count()).where(Delivery.folder_id == folder))).scalar_one()
            await session.execute(delete(Delivery).where(Delivery.folder_id == folder))
            await session.execute(delete(ExpungedUid).where(ExpungedUid.folder_id == folder))
            await session.execute(delete(Folder).where(Folder.id == folder))
            await record(session, "imap.folder_deleted", "ok", rule="R18", mailbox_id=self.account_id,
                         folder_id=folder, count=removed)
            mark_changed(session, folder)

        await self.store.transact(work)

    async def rename_mailbox(self, before: str, after: str) -> None:
        """RENAME with its children; UIDs and UIDVALIDITY move with them (a re-created old name gets a new one)."""
        before, after = self.canonical(before), self.canonical(after)
        if before in PROTECTED:
            raise PermissionError(before)
        self.check_name(after)

        async def work(session: AsyncSession) -> None:
            rows = (await session.execute(select(Folder.id, Folder.name).where(
                Folder.mailbox_id == self.account_id))).all()
            names = {row.name: row.id for row in rows}
            if before not in names:
                raise KeyError(before)
            if after in names:
                raise ValueError(after)
            prefix = before + DELIMITER
            for name, folder in names.items():
                if name == before or name.startswith(prefix):
                    new_name = after + name[len(before):]
                    self.check_name(new_name)
                    if new_name in names:
                        raise ValueError(new_name)
                    await session.execute(update(Folder).where(Folder.id == folder).values(name=new_name))
                    mark_changed(session, folder)

        await self.store.transact(work)
