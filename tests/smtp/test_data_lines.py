"""The checks DATA and BDAT make over a whole message, and the end-of-data scan, against plain reference
readings: fixed cases and fuzzing with random messages cut into random blocks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.smtp.data_lines import END_OF_DATA, EndOfData, has_bare_line_ending


def bare_by_bytes(data: bytes) -> bool:
    """The reference: every CR followed by LF, every LF preceded by CR, byte by byte."""
    for index, byte in enumerate(data):
        if byte == 13 and data[index + 1:index + 2] != b"\n":
            return True
        if byte == 10 and (index == 0 or data[index - 1] != 13):
            return True
    return False


@pytest.mark.parametrize("data, bare", [
    (b"a\r\nb\r\n", False), (b"a\nb\r\n", True), (b"a\rb\r\n", True), (b"a\r\n.\n", True), (b"\r\r\n", True),
    (b"\n\r", True), (b"a\n\rb", True), (b"", False), (b"\r\n\r\n", False),
])
def test_bare_line_endings(data: bytes, bare: bool):
    assert has_bare_line_ending(data) is bare


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b"x", b"."]), max_size=40))
def test_fuzz_bare_line_endings_agree_with_reading_byte_by_byte(pieces: list[bytes]):
    data = b"".join(pieces)
    assert has_bare_line_ending(data) is bare_by_bytes(data)
    assert has_bare_line_ending(bytearray(data)) is bare_by_bytes(data)


def read_in_blocks(wire: bytes, cuts: list[int]) -> tuple[int, bytes] | None:
    """What the DATA reader does: the buffer starts with the DATA line's CRLF and grows by the blocks ``cuts``
    makes of ``wire``; the end's offset and the message, or None when the wire has no end."""
    buffer = bytearray(b"\r\n")
    ending = EndOfData()
    blocks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    while (end := ending.find(buffer)) < 0:
        if not blocks:
            return None
        buffer += blocks.pop(0)
    del buffer[end + 2:]
    return end, ending.content(buffer)


def reference(wire: bytes) -> tuple[int, bytes] | None:
    data = b"\r\n" + wire
    end = data.find(END_OF_DATA)
    return None if end < 0 else (end, data[:end + 2].replace(b"\r\n.", b"\r\n")[2:])


@pytest.mark.parametrize("wire, message", [
    (b".\r\n", b""),  # an empty message ends on the DATA line's own CRLF
    (b"a\r\n.\r\n", b"a\r\n"),
    (b"..\r\n.\r\n", b".\r\n"),  # a first line of one dot, stuffed
    (b"x\r\n..y\r\n...\r\n.\r\n", b"x\r\n.y\r\n..\r\n"),
    (b"x\r\n.y\r\n.\r\n", b"x\r\ny\r\n"),  # a dot a client forgot to stuff is removed all the same (4.5.2)
    (b"a\r\n.\r\nQUIT\r\n", b"a\r\n"),  # the end is the first one
])
def test_end_of_data_and_unstuffing(wire: bytes, message: bytes):
    for cut in range(len(wire) + 1):  # every split of the wire into two blocks
        found = read_in_blocks(wire, [cut])
        assert found is not None and found[1] == message


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b".", b"x", b"\r", b"\n", b"\r\n.\r\n", b"\r\n..", b".\r\n"]),
                max_size=30),
       st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_fuzz_end_of_data_agrees_with_one_search_whatever_the_blocks(pieces: list[bytes], cuts: list[int]):
    wire = b"".join(pieces)
    assert read_in_blocks(wire, sorted({min(c, len(wire)) for c in cuts})) == reference(wire)


class CountedSearches(bytearray):
    """A buffer that counts the searches made in it."""

    searches = 0

    def find(self, *args: object) -> int:  # type: ignore[override]
        CountedSearches.searches += 1
        return super().find(*args)  # type: ignore[arg-type]


def test_a_message_of_dot_lines_costs_no_search_per_line():
    """Past the first stuffed line only the end is looked for: 200,000 stuffed lines in blocks of 256 KiB take
    a search or two per block, not one per line."""
    wire = b"..x\r\n" * 200_000 + b".\r\n"
    buffer, ending = CountedSearches(b"\r\n"), EndOfData()
    blocks = [wire[n:n + 256 * 1024] for n in range(0, len(wire), 256 * 1024)]
    while (end := ending.find(buffer)) < 0:
        buffer += blocks.pop(0)
    assert not blocks and CountedSearches.searches <= 2 * 5 + 2  # 4 blocks
    del buffer[end + 2:]
    assert ending.content(buffer) == b".x\r\n" * 200_000
