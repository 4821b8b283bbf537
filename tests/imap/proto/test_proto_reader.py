"""Command framing: literals, limits, pipelining, line mode (RFC 9051 4.3, 7.6; RFC 7888; RFC 3516).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from gateway.imap.proto.limits import MAX_LINE
from gateway.imap.proto.reader import (
    Command,
    CommandReader,
    Continue,
    Line,
    LineTooLong,
    Literal,
    LiteralRefused,
    RawCommand,
)


def test_synchronizing_literal_asks_for_continuation_then_frames_the_command() -> None:
    reader = CommandReader(100)
    assert reader.feed(b"a1 LOGIN {4}\r\n") == [Continue(4, "a1")]
    assert reader.feed(b"fr") == []
    events = reader.feed(b"ed secret\r\n")
    assert events == [Command(RawCommand((b"a1 LOGIN ", Literal(b"fred"), b" secret"), "a1", "LOGIN", 24))]


def test_bytes_arriving_one_at_a_time_frame_the_same_commands() -> None:
    data = b"a1 NOOP\r\na2 LOGIN {3+}\r\nabc ~{2}\r\nxy\r\na3 UID fetch 1 FLAGS\r\n"
    reader = CommandReader(100)
    events = []
    for byte in data:
        events += reader.feed(bytes([byte]))
    commands = [e.raw for e in events if isinstance(e, Command)]
    assert [(r.tag, r.verb) for r in commands] == [("a1", "NOOP"), ("a2", "LOGIN"), ("a3", "UID FETCH")]
    assert commands[1].parts == (b"a2 LOGIN ", Literal(b"abc"), b" ", Literal(b"xy", binary=True), b"")
    assert [e for e in events if isinstance(e, Continue)] == [Continue(2, "a2")]


def test_rfc7888_literal_plus_needs_no_continuation() -> None:
    reader = CommandReader(100)
    events = reader.feed(b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n")
    assert len(events) == 1 and isinstance(events[0], Command)


def test_sync_literal_above_limit_is_refused_without_reading_it() -> None:
    reader = CommandReader(10)
    assert reader.feed(b"a1 LOGIN {11}\r\n") == [LiteralRefused("a1", 11, False, "LOGIN")]
    # The client got NO and abandoned the command: the next line is a new command.
    events = reader.feed(b"a2 NOOP\r\n")
    assert [e.raw.tag for e in events if isinstance(e, Command)] == ["a2"]


def test_nonsync_literal_above_limit_is_skipped_with_the_rest_of_the_command() -> None:
    reader = CommandReader(10)
    events = reader.feed(b"a1 APPEND x {20+}\r\n" + b"\r\n" * 10 + b" {5+}\r\nab\r\nc\r\na2 NOOP\r\n")
    assert events[0] == LiteralRefused("a1", 20, True, "APPEND")
    assert [e.raw.tag for e in events[1:] if isinstance(e, Command)] == ["a2"]


def test_append_gets_its_own_literal_limit() -> None:
    reader = CommandReader(10, append_limit=1000)
    events = reader.feed(b"a1 APPEND x {500+}\r\n" + b"x" * 500 + b"\r\n")
    assert isinstance(events[0], Command)
    assert reader.feed(b"a2 LOGIN {500+}\r\n")[0] == LiteralRefused("a2", 500, True, "LOGIN")


def test_literal_minus_refuses_nonsync_literals_above_4096() -> None:
    reader = CommandReader(10_000, literal_minus=True)
    assert isinstance(reader.feed(b"a APPEND x {4097+}\r\n")[0], LiteralRefused)


def test_total_command_size_is_bounded() -> None:
    reader = CommandReader(600, max_command=1000)
    events = reader.feed(b"a LOGIN {600+}\r\n" + b"u" * 600 + b" {600+}\r\n" + b"p" * 600 + b"\r\nb NOOP\r\n")
    assert LiteralRefused("a", 600, True, "LOGIN") in events
    assert [e.raw.tag for e in events if isinstance(e, Command)] == ["b"]


def test_line_too_long_is_reported_and_discarded_without_buffering_it() -> None:
    reader = CommandReader(100)
    events = reader.feed(b"t1 SEARCH " + b"x" * (MAX_LINE + 10))
    assert events == [LineTooLong("t1")]
    assert reader.buffered < 100
    for _ in range(4):
        assert reader.feed(b"y" * 100_000) == []
        assert reader.buffered < 100
    events = reader.feed(b"\r\nt2 NOOP\r\n")
    assert [e.raw.tag for e in events if isinstance(e, Command)] == ["t2"]


def test_line_mode_gives_plain_lines_and_feed_stops_after_idle() -> None:
    reader = CommandReader(100)
    events = reader.feed(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    assert [e.raw.verb for e in events if isinstance(e, Command)] == ["IDLE"]
    reader.line_mode = True
    assert reader.feed(b"")[0] == Line(b"DONE")
    reader.line_mode = False
    assert [e.raw.tag for e in reader.feed(b"") if isinstance(e, Command)] == ["b"]


def test_bytes_after_starttls_are_kept_apart_for_the_server_to_discard() -> None:
    reader = CommandReader(100)
    events = reader.feed(b"a STARTTLS\r\nb LOGIN injected command\r\n")
    assert len(events) == 1
    assert reader.take_buffered() == b"b LOGIN injected command\r\n"
    assert reader.feed(b"") == []


def test_unreadable_tag_still_frames() -> None:
    reader = CommandReader(100)
    events = reader.feed(b"* NOOP\r\n")
    assert isinstance(events[0], Command) and events[0].raw.tag is None
