"""Frame and parse wire bytes the way the server does, for the protocol tests.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from gateway.imap.proto.commands import BaseCommand
from gateway.imap.proto.parser import parse
from gateway.imap.proto.reader import Command, CommandReader, RawCommand


def frame(data: bytes, *, literal_limit: int = 1 << 24) -> list[RawCommand]:
    """Every command framed from ``data`` followed by CRLF."""
    data += b"\r\n"
    reader = CommandReader(literal_limit)
    events = reader.feed(data)
    while reader.buffered:
        more = reader.feed(b"")
        if not more:
            break
        events += more
    return [event.raw for event in events if isinstance(event, Command)]


def cmd(data: bytes, *, utf8: bool = False) -> BaseCommand:
    """The one command in ``data``, parsed."""
    raws = frame(data)
    assert len(raws) == 1, raws
    return parse(raws[0], utf8=utf8)
