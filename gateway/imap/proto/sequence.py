"""Sequence sets (RFC 9051 9 ``sequence-set``) and the saved-result reference ``$`` (RFC 5182).

A set is kept as written (ranges with ``None`` for ``*``) because ``*`` only means something once the server
knows the largest sequence number or UID; :meth:`SequenceSet.resolve` turns it into sorted, merged, inclusive
ranges at that moment.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.imap.proto.limits import MAX_NUMBER, MAX_SEQUENCE_RANGES

Bound = int | None
"""One end of a range: a number, or ``None`` for ``*`` (the largest number in use)."""

_RANGE = rb"(?:[1-9][0-9]{0,9}|\*)(?::(?:[1-9][0-9]{0,9}|\*))?"
_SET = re.compile(_RANGE + rb"(?:," + _RANGE + rb")*")


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """Ranges as the client wrote them; ``saved`` is ``$``, the result of the last ``SEARCH RETURN (SAVE)``."""

    ranges: tuple[tuple[Bound, Bound], ...]
    saved: bool = False

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        """Read ``1:5,7,9:*`` or ``$``; ``ValueError`` for anything else (RFC 9051 9, RFC 5182 2)."""
        return parse(text)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Inclusive ranges, sorted and merged, with ``*`` replaced by ``largest``.

        Numbers above ``largest`` do not exist, so ranges are clipped to it; ``n:*`` with ``n > largest`` is
        ``largest:n`` and therefore still holds ``largest`` (RFC 9051 6.4.8: ``UID n:*`` always matches the
        last message). An empty mailbox (``largest == 0``) gives ``[]``. ``$`` cannot be resolved here: the
        caller substitutes its saved result first.
        """
        if self.saved:
            raise ValueError("the saved search result ($) must be substituted by the caller")
        if largest <= 0:
            return []
        spans: list[tuple[int, int]] = []
        for first, last in self.ranges:
            lo = largest if first is None else first
            hi = largest if last is None else last
            if lo > hi:
                lo, hi = hi, lo
            if lo > largest:
                continue
            spans.append((lo, min(hi, largest)))
        return _merge(spans)

    def contains(self, number: int, largest: int) -> bool:
        """Whether ``number`` is in the set once ``*`` means ``largest``."""
        spans = self.resolve(largest)
        index = bisect.bisect_right(spans, (number, MAX_NUMBER + 1)) - 1
        return index >= 0 and spans[index][0] <= number <= spans[index][1]

    def numbers(self, largest: int) -> Iterable[int]:
        """Every number of the set, ascending (callers bound ``largest`` by the mailbox size)."""
        for lo, hi in self.resolve(largest):
            yield from range(lo, hi + 1)

    @property
    def has_star(self) -> bool:
        """Whether ``*`` appears (SEARCH/FETCH by UID answer differently on an empty mailbox)."""
        return any(first is None or last is None for first, last in self.ranges)

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_range_text(first, last) for first, last in self.ranges)


def _bound_text(bound: Bound) -> str:
    return "*" if bound is None else str(bound)


def _range_text(first: Bound, last: Bound) -> str:
    if first == last:
        return _bound_text(first)
    return f"{_bound_text(first)}:{_bound_text(last)}"


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def parse(text: str | bytes) -> SequenceSet:
    """Read a sequence set; ``ValueError`` when malformed, out of 32-bit range or over the range bound."""
    data = text.encode("ascii", "replace") if isinstance(text, str) else text
    if data == b"$":
        return SequenceSet((), saved=True)
    if not _SET.fullmatch(data):
        raise ValueError("not a sequence set")
    pieces = data.split(b",")
    if len(pieces) > MAX_SEQUENCE_RANGES:
        raise ValueError(f"more than {MAX_SEQUENCE_RANGES} ranges in a sequence set")
    ranges: list[tuple[Bound, Bound]] = []
    for piece in pieces:
        first, sep, last = piece.partition(b":")
        lo = None if first == b"*" else int(first)
        hi = lo if not sep else (None if last == b"*" else int(last))
        if (lo is not None and lo > MAX_NUMBER) or (hi is not None and hi > MAX_NUMBER):
            raise ValueError("sequence number above 4294967295")
        ranges.append((lo, hi))
    return SequenceSet(tuple(ranges))


def format(ranges: Iterable[tuple[int, int]]) -> str:
    """Compact text of inclusive ranges: ``[(1, 5), (7, 7)]`` → ``1:5,7`` (ranges merged first)."""
    merged = _merge([(min(lo, hi), max(lo, hi)) for lo, hi in ranges])
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in merged)


def from_numbers(numbers: Iterable[int]) -> str:
    """Compact text of a collection of numbers: ``{1, 2, 3, 7}`` → ``1:3,7`` (for COPYUID, ESEARCH ALL)."""
    ordered = sorted(set(numbers))
    spans: list[tuple[int, int]] = []
    for number in ordered:
        if spans and number == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], number)
        else:
            spans.append((number, number))
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in spans)


def in_order(numbers: Sequence[int]) -> str:
    """``numbers`` as a sequence-set that keeps their order (RFC 5267 3.1, ESORT's ALL): each run of numbers
    that rise or fall by one is ``first:last``, so ``[5, 4, 3, 9, 1, 2]`` is ``5:3,9,1:2``."""
    runs: list[tuple[int, int, int]] = []  # first, last, step (0 while the run holds one number)
    for number in numbers:
        if runs:
            first, last, step = runs[-1]
            delta = number - last
            if delta in (1, -1) and step in (0, delta):
                runs[-1] = (first, number, delta)
                continue
        runs.append((number, number, 0))
    return ",".join(str(first) if first == last else f"{first}:{last}" for first, last, _ in runs)


def ranges_of(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges of a collection of numbers."""
    return _merge([(n, n) for n in set(numbers)])
