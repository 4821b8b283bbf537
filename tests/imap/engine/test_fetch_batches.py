"""The steps a long FETCH of flags is read and written in: position ranges cut into bounded batches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.imap.engine.commands.fetch import split_ranges


def test_one_long_range_is_cut_at_the_batch_size() -> None:
    assert list(split_ranges([(0, 12)], 5)) == [[(0, 5)], [(5, 10)], [(10, 12)]]


def test_small_ranges_share_a_batch_and_a_range_may_straddle_two() -> None:
    assert list(split_ranges([(0, 2), (4, 6), (8, 12)], 5)) == [[(0, 2), (4, 6), (8, 9)], [(9, 12)]]


def test_nothing_gives_no_batch() -> None:
    assert list(split_ranges([], 5)) == []


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 30)), max_size=20), st.integers(1, 40))
def test_batches_cover_every_position_once_in_order(pieces: list[tuple[int, int]], size: int) -> None:
    ranges, at = [], 0
    for gap, length in pieces:
        ranges.append((at + gap, at + gap + length))
        at += gap + length
    batches = list(split_ranges(ranges, size))
    assert all(0 < sum(stop - start for start, stop in batch) <= size for batch in batches)
    positions = [i for batch in batches for start, stop in batch for i in range(start, stop)]
    assert positions == [i for start, stop in ranges for i in range(start, stop)]
