"""The selected-folder state of one IMAP session, kept small: the UIDs the client knows, and what to tell it.

pymap's own ``SelectedMailbox`` keeps a Python object, a flags entry and a sequence number per message, and copies
all of it after every command to find what changed: SELECT, FETCH and STORE cost O(messages) whatever they touch,
about 50 ms on a 100,000-message INBOX. Here the session keeps only its sequence-number → UID map (RFC 9051
2.3.1.2) as an ``array`` of integers (8 bytes a message, copied at C speed), flags stay in the store and are read
for the messages a command names, and the changes to report are accumulated as they are learned (from the
folder's MODSEQ) instead of being found by comparing snapshots. A command costs what it touches.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from pymap.flags import PermanentFlags, SessionFlags
from pymap.parsing.command import Command
from pymap.parsing.primitives import List, Number
from pymap.parsing.response import ResponseBye, UntaggedResponse
from pymap.parsing.response.specials import ExistsResponse, ExpungeResponse, FetchResponse, RecentResponse
from pymap.parsing.specials import FetchAttribute, FetchValue, ObjectId, SequenceSet
from pymap.parsing.specials.flag import Flag
from pymap.parsing.specials.sequenceset import MaxValue
from pymap.selected import SelectedMailbox, SelectedSet

__all__ = ["StoreSelected", "UidList", "index_ranges"]

_FLAGS = FetchAttribute(b"FLAGS")
_UID = FetchAttribute(b"UID")
#: Past this many removals at once, the list is rebuilt in one pass rather than deleted from one by one.
_BULK_REMOVE = 64


def new_uids(values: Iterable[int] = ()) -> array[int]:
    """A UID array (unsigned 64-bit: the store's UIDs are BIGINT)."""
    return array("Q", values)


def _bound(value: int | MaxValue, maximum: int) -> int:
    return maximum if isinstance(value, MaxValue) else value


def index_ranges(seq_set: SequenceSet, uids: Sequence[int]) -> list[tuple[int, int]]:
    """The positions of ``uids`` (sorted) that ``seq_set`` names, as sorted, merged ``[start, stop)`` ranges.

    Sequence numbers index the list directly and UIDs are found by bisection: the cost follows the number of
    ranges, not the size of the folder. ``*`` is the last message (or the highest UID), as RFC 9051 9 says;
    ``n:*`` with ``n`` above it still names the last message.
    """
    count = len(uids)
    if not count:
        return []
    top = uids[-1] if seq_set.uid else count
    found: list[tuple[int, int]] = []
    for elem in seq_set.sequences:
        left, right = elem if isinstance(elem, tuple) else (elem, elem)
        low, high = sorted((_bound(left, top), _bound(right, top)))
        if low > top:
            continue
        high = min(high, top)
        if seq_set.uid:
            start, stop = bisect_left(uids, low), bisect_right(uids, high)
        else:
            start, stop = low - 1, high
        if start < stop:
            found.append((start, stop))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, stop in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((start, stop))
    return merged


class UidList:
    """The messages as the client knows them: ``uids[n - 1]`` is the UID of sequence number ``n``.

    Provides what pymap's commands and search read from ``selected.messages`` (``exists``, ``max_uid``) and
    the look-ups our session makes; it never holds flags or message objects.
    """

    __slots__ = ["uids"]

    def __init__(self, uids: array[int] | None = None) -> None:
        self.uids = uids if uids is not None else new_uids()

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq_of(self, uid: int) -> int | None:
        index = bisect_left(self.uids, uid)
        return index + 1 if index < len(self.uids) and self.uids[index] == uid else None

    def get_uids(self, seq_set: SequenceSet) -> list[tuple[int, int]]:
        """``(sequence number, UID)`` of the messages ``seq_set`` names, in order, each once."""
        uids = self.uids
        return [(index + 1, uids[index]) for start, stop in index_ranges(seq_set, uids)
                for index in range(start, stop)]

    def select_named(self, seq_set: SequenceSet, candidates: Iterable[int]) -> list[tuple[int, int]]:
        """``(sequence number, UID)`` of those ``candidates`` the client knows and ``seq_set`` names, in order.

        For UIDs the store found by a query of its own (a search, the \\Deleted messages): the cost follows the
        candidates, not the folder.
        """
        ranges = index_ranges(seq_set, self.uids)
        starts = [start for start, _ in ranges]
        named = []
        for uid in sorted(set(candidates)):
            seq = self.seq_of(uid)
            if seq is None:
                continue
            at = bisect_right(starts, seq - 1) - 1
            if at >= 0 and seq - 1 < ranges[at][1]:
                named.append((seq, uid))
        return named

    def add(self, added: Iterable[int]) -> int:
        """Add UIDs not known yet (new mail: normally above every known UID); returns how many were added."""
        fresh = sorted(uid for uid in set(added) if self.seq_of(uid) is None)
        if not fresh:
            return 0
        if not self.uids or fresh[0] > self.uids[-1]:
            self.uids.extend(fresh)
        else:
            self.uids = new_uids(sorted({*self.uids, *fresh}))
        return len(fresh)

    def remove(self, removed: Iterable[int]) -> list[int]:
        """Remove UIDs; returns their sequence numbers before removal, highest first (the EXPUNGE order)."""
        present = sorted((uid for uid in set(removed) if self.seq_of(uid) is not None), reverse=True)
        seqs = [bisect_left(self.uids, uid) + 1 for uid in present]
        if len(present) > _BULK_REMOVE:
            gone = set(present)
            self.uids = new_uids(uid for uid in self.uids if uid not in gone)
        else:
            for seq in seqs:
                del self.uids[seq - 1]
        return seqs


class StoreSelected(SelectedMailbox):
    """pymap's selected mailbox over a :class:`UidList`, with changes accumulated as they are learned.

    The backend calls :meth:`learn` with what changed in the store since the last MODSEQ it saw, and
    :meth:`own_flags` with the flags this session's STORE wrote (already answered in the STORE response, so not
    repeated). :meth:`fork` turns the rest into untagged EXPUNGE, EXISTS, RECENT and FETCH responses. Expunges
    stay pending while pymap forbids them (``hide_expunged``, during FETCH, STORE and SEARCH by sequence
    number): the client's sequence numbers must not move under a command that uses them.
    """

    __slots__ = ["_first_unseen", "_list", "_own", "_pending_expunge", "_pending_flags", "_reported_exists",
                 "_reported_recent"]

    def __init__(self, mailbox_id: ObjectId, readonly: bool, permanent_flags: PermanentFlags,
                 session_flags: SessionFlags, selected_set: SelectedSet | None = None, lookup: Any = None,
                 **kwargs: Any) -> None:
        self._list: UidList = kwargs.pop("_list", None) or UidList()
        self._pending_expunge: set[int] = kwargs.pop("_pending_expunge", None) or set()
        self._pending_flags: dict[int, frozenset[Flag]] = {}
        self._own: dict[int, frozenset[Flag]] = kwargs.pop("_own", None) or {}
        self._reported_exists: int | None = kwargs.pop("_reported_exists", None)
        self._reported_recent: int = kwargs.pop("_reported_recent", 0)
        #: Sequence number of the first unseen message at SELECT (``OK [UNSEEN n]``), or None.
        self._first_unseen: int | None = None
        super().__init__(mailbox_id, readonly, permanent_flags, session_flags, selected_set, lookup,
                         _messages=self._list, **kwargs)

    @property
    def messages(self) -> UidList:  # type: ignore[override]
        return self._list

    @property
    def first_unseen(self) -> int | None:
        return self._first_unseen

    def load(self, uids: array[int], first_unseen_uid: int | None) -> None:
        """The initial state at SELECT: the folder's UIDs, and the first unseen one for ``OK [UNSEEN n]``."""
        self._list.uids = uids
        self._first_unseen = self._list.seq_of(first_unseen_uid) if first_unseen_uid is not None else None

    def learn(self, changed: Iterable[tuple[int, frozenset[Flag]]], expunged: Iterable[int]) -> None:
        """Changes read from the store: rows added or re-flagged (UID, flags), and UIDs expunged."""
        known = self._list
        fresh: list[int] = []
        for uid, flags in changed:
            if known.seq_of(uid) is None:
                fresh.append(uid)
            elif self._own.get(uid) == flags:
                del self._own[uid]
            else:
                self._own.pop(uid, None)
                self._pending_flags[uid] = flags
        known.add(fresh)
        for uid in expunged:
            if known.seq_of(uid) is not None:
                self._pending_expunge.add(uid)
                self._pending_flags.pop(uid, None)
                self._own.pop(uid, None)

    def own_flags(self, flags: dict[int, frozenset[Flag]]) -> None:
        """Flags this session wrote: the STORE response reports them, the next fork must not repeat them."""
        self._own.update(flags)

    def add_updates(self, messages: Iterable[Any], expunged: Iterable[int]) -> None:
        self.learn(((msg.uid, msg.permanent_flags) for msg in messages), expunged)

    def set_messages(self, messages: Sequence[Any]) -> None:
        present = {msg.uid for msg in messages}
        self.learn(((msg.uid, msg.permanent_flags) for msg in messages),
                   [uid for uid in self._list.uids if uid not in present])

    def silence(self, seq_set: SequenceSet, flag_set: Any, flag_op: Any) -> None:
        """Nothing to do: the session's own flag changes are never repeated (see :meth:`own_flags`)."""

    def fork(self, command: Command) -> tuple[StoreSelected, Iterable[UntaggedResponse]]:
        untagged: list[UntaggedResponse] = []
        if self._is_deleted:
            untagged.append(ResponseBye(b"Selected mailbox no longer exists."))
        elif self._reported_exists is not None:
            untagged = self._untagged(bool(getattr(command, "uid", False)))
        else:
            self._pending_flags.clear()  # the SELECT response itself gave the state
        copy = StoreSelected(self._mailbox_id, self._readonly, self._permanent_flags, self._session_flags,
                             self._selected_set, self._lookup, _mod_sequence=self._mod_sequence, _list=self._list,
                             _pending_expunge=self._pending_expunge, _own=self._own,
                             _reported_exists=self._list.exists, _reported_recent=self._session_flags.recent)
        copy._is_deleted = self._is_deleted
        return copy, untagged

    def _untagged(self, with_uid: bool) -> list[UntaggedResponse]:
        untagged: list[UntaggedResponse] = []
        if self._pending_expunge and not self._hide_expunged:
            gone = self._pending_expunge.copy()
            self._pending_expunge.clear()
            untagged.extend(ExpungeResponse(seq) for seq in self._list.remove(gone))
            self._session_flags.remove(gone)
            self._reported_exists = (self._reported_exists or 0) - len(gone)
        if self._list.exists != self._reported_exists:
            untagged.append(ExistsResponse(self._list.exists))
        if self._session_flags.recent != self._reported_recent:
            untagged.append(RecentResponse(self._session_flags.recent))
        for uid in sorted(self._pending_flags):
            seq = self._list.seq_of(uid)
            if seq is None or uid in self._pending_expunge:
                continue
            flags = self._pending_flags[uid] | self._session_flags.get(uid)
            values = [FetchValue.of(_FLAGS, List(flags, sort=True))]
            if with_uid:
                values.append(FetchValue.of(_UID, Number(uid)))
            untagged.append(FetchResponse(seq, values))
        self._pending_flags.clear()
        return untagged
