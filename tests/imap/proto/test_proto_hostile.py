"""Hostile input: deep nesting, many keys, random and mutated bytes give a ProtocolError and nothing else, fast.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.imap.proto.commands import BaseCommand
from gateway.imap.proto.errors import ProtocolError
from gateway.imap.proto.limits import MAX_DEPTH, MAX_ITEMS
from gateway.imap.proto.parser import parse
from gateway.imap.proto.reader import Command, CommandReader, Literal, RawCommand

#: Per-input CPU-time bound (thread time, so a busy shared machine does not count; typical inputs take < 1 ms).
BOUND = 0.05
#: Bound for inputs at the size limits (10,000 keys or items: about 20 ms on an idle core).
BOUND_AT_LIMITS = 0.25


@contextlib.contextmanager
def _within(bound: float) -> Iterator[None]:
    """The block's CPU time (thread time, so a busy shared machine does not count) stays under ``bound``. The
    garbage collector waits meanwhile: a full collection of the whole test process's heap, which may fall in any
    block, is not the parser's work."""
    enabled = gc.isenabled()
    gc.disable()
    started = time.thread_time()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
    assert time.thread_time() - started < bound


def _parse_all(data: bytes, *, utf8: bool = False) -> list[BaseCommand]:
    """Frame and parse everything in ``data``; only ProtocolError may come out of the parser."""
    reader = CommandReader(1 << 16, append_limit=1 << 16)
    events = reader.feed(data)
    for _ in range(1000):
        if not reader.buffered:
            break
        reader.line_mode = False
        more = reader.feed(b"")
        if not more:
            break
        events += more
    parsed: list[BaseCommand] = []
    for event in events:
        if isinstance(event, Command):
            try:
                parsed.append(parse(event.raw, utf8=utf8))
            except ProtocolError as exc:
                assert isinstance(exc.text, str) and exc.text
                assert "Traceback" not in exc.text
    return parsed


def _bad(line: bytes, bound: float = BOUND) -> ProtocolError:
    reader = CommandReader(1 << 20)
    events = reader.feed(line + b"\r\n")
    assert len(events) == 1 and isinstance(events[0], Command)
    with _within(bound), pytest.raises(ProtocolError) as caught:
        parse(events[0].raw)
    return caught.value


def test_a_thousand_nested_parentheses_are_bad_not_recursion() -> None:
    error = _bad(b"a SEARCH " + b"(" * 1000 + b"ALL" + b")" * 1000)
    assert error.tag == "a" and str(MAX_DEPTH) in error.text


def test_a_thousand_ors_are_bad_whichever_way_they_nest() -> None:
    _bad(b"a SEARCH " + b"OR " * 1000 + b"ALL " * 1001)
    _bad(b"a SEARCH " + b"OR ALL " * 1000 + b"ALL")
    _bad(b"a SEARCH " + b"NOT " * 1000 + b"ALL")


def test_nesting_just_within_the_bound_is_accepted() -> None:
    reader = CommandReader(1 << 20)
    line = b"a SEARCH " + b"(" * (MAX_DEPTH - 1) + b"ALL" + b")" * (MAX_DEPTH - 1) + b"\r\n"
    (event,) = reader.feed(line)
    assert isinstance(event, Command)
    parse(event.raw)


def test_more_search_keys_than_the_bound_are_bad() -> None:
    error = _bad(b"a SEARCH " + b" ".join([b"SEEN"] * (MAX_ITEMS + 1)), BOUND_AT_LIMITS)
    assert str(MAX_ITEMS) in error.text


def test_huge_sequence_sets_and_fetch_lists_are_bad_quickly() -> None:
    _bad(b"a FETCH " + b",".join([b"1"] * 20_000) + b" FLAGS", BOUND_AT_LIMITS)
    _bad(b"a FETCH 1 (" + b" ".join([b"UID"] * (MAX_ITEMS + 1)) + b")", BOUND_AT_LIMITS)
    _bad(b"a FETCH 1 BODY[" + b".".join([b"1"] * 1000) + b"]")


def test_unframed_raw_commands_are_protocol_errors() -> None:
    for parts in [(), (Literal(b"x"),), (b"a NOOP", b"x"), (b"a LOGIN ", Literal(b"u"))]:
        with pytest.raises(ProtocolError):
            parse(RawCommand(parts, "a"))  # type: ignore[arg-type]


VALID = [
    b"a1 LOGIN {4+}\r\nfred \"se\\\"cret\"",
    b"a2 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211 (1,3 1,7)))",
    b"a3 UID FETCH 1:* (FLAGS BODY.PEEK[1.HEADER.FIELDS (From To)]<0.100> BINARY[2] PREVIEW (LAZY)) "
    b"(CHANGEDSINCE 12 VANISHED)",
    b"a4 SEARCH RETURN (MIN COUNT SAVE) CHARSET UTF-8 OR (FROM bob SINCE 1-Feb-1994) NOT $ HEADER X-Foo {3+}\r\nbar",
    b"a5 STORE 1:3 (UNCHANGEDSINCE 5) +FLAGS.SILENT (\\Seen $Junk)",
    b'a6 APPEND saved (\\Seen) "05-Jan-2024 10:00:00 +0100" {3+}\r\nabc ~{2+}\r\nxy UTF8 (~{2+}\r\nzz)',
    b'a7 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("%" "foo/*") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))',
    b"a8 UID SORT RETURN (COUNT) (REVERSE DATE SUBJECT) UTF-8 MODSEQ \"/flags/\\\\seen\" all 5",
    b"a9 THREAD REFERENCES UTF-8 SINCE 5-MAR-2000 UID 1:5,7",
    b'b1 ID ("name" "x" "version" NIL)',
    b"b2 CREATE &Jjo- (USE (\\Archive))",
    b"b3 AUTHENTICATE PLAIN AGZyZWQAcGFzcw==",
    b'b4 SETQUOTA "" (STORAGE 512)',
    b"b5 UID EXPUNGE 1:4",
    b"b6 ENABLE QRESYNC UTF8=ACCEPT",
    b"b7 STATUS Sent (MESSAGES UIDNEXT HIGHESTMODSEQ)",
    b"b8 UID MOVE 1:* Trash",
]


def test_the_fuzz_corpus_is_valid() -> None:
    for line in VALID:
        assert len(_parse_all(line + b"\r\n")) == 1, line


_PIECES = st.sampled_from(
    [b" ", b"(", b")", b"{", b"}", b"{5}\r\n", b"{3+}\r\n", b"~{2}\r\n", b"\r\n", b"\n", b'"', b"\\", b"*", b"$",
     b"[", b"]", b"<", b">", b".", b":", b",", b"NIL", b"OR", b"NOT", b"UID", b"BODY[", b"&", b"-", b"\x00",
     b"\xff", b"\xc3\xa9", b"0", b"1", b"4294967296", b"99999999999999999999999", b"a", b"INBOX", b"FETCH"]
)


def _timed(data: bytes) -> None:
    with _within(4 * BOUND):
        _parse_all(data)
        _parse_all(data, utf8=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_protocol_errors(data: bytes) -> None:
    _timed(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 20), _PIECES), max_size=6))
def test_mutated_valid_commands_only_raise_protocol_errors(
    line: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    data = bytearray(line)
    for at, cut, piece in edits:
        at %= len(data) + 1
        data[at : at + cut] = piece
    _timed(bytes(data) + b"\r\n")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=60))
def test_token_soup_only_raises_protocol_errors(pieces: list[bytes]) -> None:
    _timed(b"t SEARCH " + b"".join(pieces) + b"\r\n")
    _timed(b"t UID FETCH " + b"".join(pieces) + b"\r\n")
    _timed(b"t APPEND x " + b"".join(pieces) + b"\r\n")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=20), _PIECES), min_size=1, max_size=8).map(tuple))
def test_raw_commands_with_literals_anywhere_only_raise_protocol_errors(chunks: tuple[bytes, ...]) -> None:
    parts: list[bytes | Literal] = []
    for index, chunk in enumerate(chunks):
        if parts and index % 2:
            parts.append(Literal(chunk, binary=bool(index % 3)))
        else:
            if parts and isinstance(parts[-1], bytes):
                parts.append(Literal(b""))
            parts.append(b"t " + chunk if not parts else chunk)
    if isinstance(parts[-1], Literal):
        parts.append(b"")
    with _within(BOUND), contextlib.suppress(ProtocolError):
        parse(RawCommand(tuple(parts), "t"))
