"""Sequence sets: parsing, resolution against the largest number, compact formatting (RFC 9051 9, RFC 5182).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.imap.proto import sequence
from gateway.imap.proto.limits import MAX_SEQUENCE_RANGES
from gateway.imap.proto.sequence import SequenceSet


def test_rfc9051_sequence_set_example_resolves_star_to_largest() -> None:
    # RFC 9051 9 (sequence-set): "2,4:7,9,12:*" with 15 messages.
    seq = sequence.parse("2,4:7,9,12:*")
    assert seq.resolve(15) == [(2, 2), (4, 7), (9, 9), (12, 15)]
    assert str(seq) == "2,4:7,9,12:*"


def test_reversed_range_is_the_same_range() -> None:
    assert sequence.parse("*:4").resolve(10) == [(4, 10)]
    assert sequence.parse("7:3").resolve(10) == [(3, 7)]


def test_n_to_star_above_largest_still_holds_the_largest() -> None:
    # RFC 9051 6.4.8 / 9: "UID n:*" always includes the last message even when n is above it.
    assert sequence.parse("20:*").resolve(5) == [(5, 5)]
    assert sequence.parse("20:*").contains(5, 5)


def test_numbers_above_largest_are_dropped_and_empty_mailbox_gives_nothing() -> None:
    assert sequence.parse("3:9,12").resolve(5) == [(3, 5)]
    assert sequence.parse("1:*").resolve(0) == []


def test_saved_result_is_dollar_and_must_be_substituted() -> None:
    saved = sequence.parse("$")
    assert saved == SequenceSet((), saved=True)
    assert str(saved) == "$"
    with pytest.raises(ValueError):
        saved.resolve(3)


@pytest.mark.parametrize("text", ["", "0", "1:0", "01", "1,", ",1", "1::2", "a", "$,1", "1:$", "4294967296", "1 2"])
def test_malformed_sequence_sets_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        sequence.parse(text)


def test_too_many_ranges_are_refused() -> None:
    with pytest.raises(ValueError):
        sequence.parse(",".join(["1"] * (MAX_SEQUENCE_RANGES + 1)))


def test_format_and_from_numbers_are_compact() -> None:
    assert sequence.format([(1, 5), (7, 7), (6, 6), (10, 9)]) == "1:7,9:10"
    assert sequence.from_numbers([7, 1, 2, 3, 3, 9]) == "1:3,7,9"
    assert sequence.from_numbers([]) == ""


_numbers = st.sets(st.integers(min_value=1, max_value=500), min_size=1, max_size=60)


@settings(max_examples=150, deadline=1000)
@given(_numbers)
def test_from_numbers_round_trips_through_parse(numbers: set[int]) -> None:
    parsed = sequence.parse(sequence.from_numbers(numbers))
    assert set(parsed.numbers(500)) == numbers


@settings(max_examples=150, deadline=1000)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(1, 300)), st.one_of(st.none(), st.integers(1, 300))),
        min_size=1,
        max_size=20,
    ),
    st.integers(min_value=0, max_value=300),
)
def test_resolve_is_sorted_merged_and_matches_contains(
    ranges: list[tuple[int | None, int | None]], largest: int
) -> None:
    seq = SequenceSet(tuple(ranges))
    spans = seq.resolve(largest)
    for (lo1, hi1), (lo2, hi2) in itertools.pairwise(spans):
        assert lo1 <= hi1 < lo2 - 1 < hi2
    expected: set[int] = set()
    for first, last in ranges:
        lo = largest if first is None else first
        hi = largest if last is None else last
        expected.update(n for n in range(min(lo, hi), max(lo, hi) + 1) if 1 <= n <= largest)
    assert set(seq.numbers(largest)) == expected
    for n in range(1, largest + 1, 7):
        assert seq.contains(n, largest) == (n in expected)
    assert sequence.parse(str(seq)) == seq


def test_in_order_keeps_the_order_of_a_sort() -> None:
    """ESORT's ALL (RFC 5267 3.1): runs rising or falling by one become ranges, the order is never changed."""
    assert sequence.in_order([5, 4, 3, 9, 1, 2]) == "5:3,9,1:2"
    assert sequence.in_order([3, 2, 1]) == "3:1" and sequence.in_order([1, 3, 5]) == "1,3,5"
    assert sequence.in_order([2, 1, 2, 3]) == "2:1,2:3" and sequence.in_order([7]) == "7"
    assert sequence.in_order([]) == ""
