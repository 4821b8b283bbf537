"""Sequence numbers and UIDs of a selected folder (RFC 9051 2.3.1): pure arithmetic over the view's sorted UID
array, and the UID ranges that are ``\\Recent`` for the session. No I/O: :class:`~.selected.SelectedView` reads
the store and keeps :attr:`Numbering.uids` current.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from gateway.imap.proto.sequence import SequenceSet
from gateway.imap.view.rows import Row


class Numbering:
    """The sequence-number -> UID map of one session's selected folder, and its ``\\Recent`` UID ranges."""

    #: UIDs the client knows, ascending: sequence number n is ``uids[n - 1]``.
    uids: array[int]
    #: Inclusive UID ranges recent for this session, ascending.
    _recent: list[tuple[int, int]]

    def is_recent(self, uid: int) -> bool:
        """Whether ``uid`` carries ``\\Recent`` in this session (FETCH FLAGS, SEARCH RECENT)."""
        index = bisect_right(self._recent, (uid, 2**64)) - 1
        return index >= 0 and self._recent[index][0] <= uid <= self._recent[index][1]

    @property
    def recent_spans(self) -> list[tuple[int, int]]:
        """Inclusive UID ranges recent for this session (SEARCH RECENT / NEW compile to them)."""
        return list(self._recent)

    @property
    def recent(self) -> int:
        """How many known messages are recent for this session (``* n RECENT``)."""
        uids = self.uids
        return sum(bisect_right(uids, hi) - bisect_left(uids, lo) for lo, hi in self._recent)

    # --- numbers ------------------------------------------------------------------------------------------
    def seq_of(self, uid: int) -> int | None:
        index = bisect_left(self.uids, uid)
        return index + 1 if index < len(self.uids) and self.uids[index] == uid else None

    def uid_of(self, seq: int) -> int | None:
        return self.uids[seq - 1] if 1 <= seq <= len(self.uids) else None

    def index_ranges(self, sequence: SequenceSet, *, uid: bool, saved: Sequence[int] | None = None
                     ) -> list[tuple[int, int]]:
        """Positions ``[start, stop)`` into :attr:`uids` that ``sequence`` names, sorted and merged.

        ``$`` (RFC 5182) is the ``saved`` UIDs of the last ``SEARCH RETURN (SAVE)``; ``*`` is the last message or
        the highest UID (RFC 9051 6.4.8: ``UID n:*`` always names the highest). The cost follows the number of
        ranges, not the folder's size.
        """
        uids = self.uids
        if not uids:
            return []
        if sequence.saved:
            found = [(index, index + 1) for index in map(self._index, saved or ()) if index is not None]
        elif uid:
            found = [(bisect_left(uids, lo), bisect_right(uids, hi)) for lo, hi in sequence.resolve(uids[-1])]
        else:
            found = [(lo - 1, hi) for lo, hi in sequence.resolve(len(uids))]
        merged: list[tuple[int, int]] = []
        for start, stop in sorted(found):
            if start >= stop:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
            else:
                merged.append((start, stop))
        return merged

    def _index(self, uid: int) -> int | None:
        index = bisect_left(self.uids, uid)
        return index if index < len(self.uids) and self.uids[index] == uid else None

    def uid_spans(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
        """Index ranges as inclusive UID ranges for SQL (a UID between two known ones is known or expunged)."""
        return [(self.uids[start], self.uids[stop - 1]) for start, stop in ranges]

    def named(self, sequence: SequenceSet, *, uid: bool, saved: Sequence[int] | None = None) -> list[int]:
        """The UIDs ``sequence`` names, ascending, each once."""
        uids = self.uids
        return [uids[i] for start, stop in self.index_ranges(sequence, uid=uid, saved=saved)
                for i in range(start, stop)]

    def numbered(self, ranges: Sequence[tuple[int, int]], rows: Sequence[Row]) -> list[tuple[int, Row]]:
        """``(sequence number, row)`` for rows read over ``ranges`` (both in UID order).

        A range whose messages are all still there (the usual case) is numbered at C speed; one with messages
        expunged meanwhile is matched one by one.
        """
        uids = self.uids
        row_uids = [row[0] for row in rows]
        out: list[tuple[int, Row]] = []
        position = 0
        for start, stop in ranges:
            end = bisect_right(row_uids, uids[stop - 1], lo=position)
            if end - position == stop - start:
                out.extend(zip(range(start + 1, stop + 1), rows[position:end], strict=True))
            else:
                index = start
                for at in range(position, end):
                    uid = row_uids[at]
                    while index < stop and uids[index] < uid:
                        index += 1
                    if index < stop and uids[index] == uid:
                        out.append((index + 1, rows[at]))
            position = end
        return out

    def numbers_of(self, found: Iterable[int]) -> list[tuple[int, int]]:
        """``(sequence number, uid)`` of the found UIDs this view knows, ascending (SEARCH results)."""
        out = []
        for uid in sorted(found):
            seq = self.seq_of(uid)
            if seq is not None:
                out.append((seq, uid))
        return out


def spans_of(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Numbers as inclusive ranges of consecutive values, ascending."""
    spans: list[tuple[int, int]] = []
    for number in sorted(numbers):
        if spans and number == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], number)
        else:
            spans.append((number, number))
    return spans
