"""Incremental, literal-aware framing of client input into commands (RFC 9051 2.2, 4.3; RFC 7888; RFC 3516).

The server pushes whatever bytes arrive into :meth:`CommandReader.feed` and gets events back:

* :class:`Command` — a whole command: its line pieces and literal bytes in order, ready for the parser;
* :class:`Continue` — a synchronizing literal ``{n}`` was accepted: the server must send ``+ Ready`` now;
* :class:`LiteralRefused` — a literal is above the limit: the server answers the tag (``NO [TOOBIG]`` for
  ``{n}``, ``BAD [TOOBIG]`` for ``{n+}``); the reader skips a non-synchronizing literal's bytes and the rest of
  that command by itself;
* :class:`LineTooLong` — the command line passed :data:`~gateway.imap.proto.limits.MAX_LINE`; the rest of it
  is discarded;
* :class:`Line` — in :attr:`CommandReader.line_mode`, a plain line (IDLE's ``DONE``, AUTHENTICATE responses);
  ``feed`` stops after each one, so the server can leave line mode before the next line is read.

Nothing is ever buffered beyond the limits: a line beyond MAX_LINE, a literal beyond the literal limit, a
command beyond MAX_COMMAND (APPEND: :attr:`CommandReader.append_total`) is refused before its bytes are kept.

``feed`` stops after a command that changes how the following bytes must be read (IDLE, AUTHENTICATE,
STARTTLS, COMPRESS): the server sets :attr:`~CommandReader.line_mode` or swaps the transport, then calls
``feed(b"")`` to go on. After STARTTLS, bytes already buffered were sent in clear text before the handshake and
must be thrown away (:meth:`CommandReader.take_buffered`, RFC 9051 11.1 / RFC 3207 style injection); after
COMPRESS they are compressed data to inflate first.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.imap.proto.limits import (
    MAX_COMMAND,
    MAX_LINE,
    MAX_LITERAL_MINUS,
    MAX_LITERAL_UNAUTH,
    MAX_LITERALS,
    MAX_TAG,
)


@dataclass(frozen=True, slots=True)
class Literal:
    """The bytes of one literal; ``binary`` for ``~{n}`` (RFC 3516 4.4: may hold NUL)."""

    data: bytes
    binary: bool = False

    def __repr__(self) -> str:
        return f"Literal(<{len(self.data)} bytes>, binary={self.binary})"


@dataclass(frozen=True, slots=True)
class RawCommand:
    """A framed command: line pieces (without the literal markers and CRLF) and literals, in order.

    ``tag`` and ``verb`` (upper case, ``UID FETCH`` for UID forms) are read from the first line when they are
    well formed, so that even a command the parser rejects can be answered with its tag.
    """

    parts: tuple[bytes | Literal, ...]
    tag: str | None = None
    verb: str | None = None
    size: int = 0


@dataclass(frozen=True, slots=True)
class Command:
    """A whole command is framed."""

    raw: RawCommand


@dataclass(frozen=True, slots=True)
class Continue:
    """A synchronizing literal of ``size`` bytes is accepted: send ``+ Ready`` (RFC 9051 7.6)."""

    size: int
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class LiteralRefused:
    """A literal above the limit; ``nonsync`` tells whether its bytes follow anyway (RFC 7888 4)."""

    tag: str | None
    size: int
    nonsync: bool
    verb: str | None = None


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """The command line passed MAX_LINE; the rest of the command is discarded."""

    tag: str | None


@dataclass(frozen=True, slots=True)
class Line:
    """A plain line read in line mode, without its CRLF."""

    data: bytes


Event = Command | Continue | LiteralRefused | LineTooLong | Line

#: Commands after which the following bytes are read differently (see the module docstring).
STOP_VERBS = frozenset({"IDLE", "AUTHENTICATE", "STARTTLS", "COMPRESS"})

_LITERAL_MARK = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\r?$")
_TAG = rb"([^\x00-\x20\x7f-\xff(){%*\"\\+]{1," + str(MAX_TAG).encode() + rb"})"
_TAG_VERB = re.compile(_TAG + rb" ([A-Za-z]{1,20})(?: ([A-Za-z]{1,20}))?")
_TAG_ONLY = re.compile(_TAG + rb"(?: |$)")

_LINE, _LITERAL, _SKIP, _DISCARD = range(4)
_MARK_TAIL = 32  # bytes kept of a discarded line: enough for "~{<20 digits>+}\r"


def _sniff(head: bytes | bytearray) -> tuple[str | None, str | None]:
    """Tag and verb of a command line, when well formed (for answering even a command the parser rejects)."""
    match = _TAG_VERB.match(head)
    if match is None:
        only = _TAG_ONLY.match(head)
        return (only.group(1).decode("ascii") if only else None), None
    verb = match.group(2).decode("ascii").upper()
    if verb == "UID" and match.group(3):
        verb = "UID " + match.group(3).decode("ascii").upper()
    return match.group(1).decode("ascii"), verb


class CommandReader:
    """Frames client bytes into commands under the limits; no I/O (the server owns the socket).

    ``literal_limit`` is the largest literal accepted for any command (the server raises it after login);
    ``append_limit`` (when set) replaces it for APPEND, whose literals are messages; ``append_total`` bounds a
    whole (MULTI)APPEND command; ``literal_minus`` refuses ``{n+}`` above 4096 bytes (RFC 7888 5, LITERAL-).
    """

    def __init__(
        self,
        literal_limit: int = MAX_LITERAL_UNAUTH,
        *,
        append_limit: int | None = None,
        append_total: int | None = None,
        max_line: int = MAX_LINE,
        max_command: int = MAX_COMMAND,
        literal_minus: bool = False,
    ) -> None:
        self.literal_limit = literal_limit
        self.append_limit = append_limit
        self.append_total = append_total
        self.max_line = max_line
        self.max_command = max_command
        self.literal_minus = literal_minus
        #: When true, the next line is given as a :class:`Line` event (checked between commands only).
        self.line_mode = False
        self._buf = bytearray()
        self._scan = 0
        self._state = _LINE
        self._need = 0
        self._binary = False
        self._reset_command()

    def _reset_command(self) -> None:
        self._parts: list[bytes | Literal] = []
        self._tag: str | None = None
        self._verb: str | None = None
        self._line_len = 0
        self._size = 0
        self._literals = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet framed."""
        return len(self._buf)

    @property
    def in_command(self) -> bool:
        """Whether a command is partly received (its first line or a literal is pending)."""
        return bool(self._parts) or self._state != _LINE or bool(self._buf)

    def take_buffered(self) -> bytes:
        """Remove and return the bytes not yet framed (after STARTTLS: discard them; after COMPRESS: inflate)."""
        data = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        self._state = _LINE
        self._reset_command()
        return data

    def _limits(self) -> tuple[int, int]:
        if self._verb == "APPEND" and self.append_limit is not None:
            total = self.append_total if self.append_total is not None else max(self.max_command, self.append_limit)
            return self.append_limit, total
        return self.literal_limit, self.max_command

    def feed(self, data: bytes) -> list[Event]:
        """Add ``data`` and return the events it completes (stopping after IDLE/AUTHENTICATE/STARTTLS/COMPRESS)."""
        if data:
            self._buf += data
        events: list[Event] = []
        buf = self._buf
        while True:
            state = self._state
            if state == _LITERAL:
                need = self._need
                if len(buf) < need:
                    break
                self._parts.append(Literal(bytes(buf[:need]), self._binary))
                del buf[:need]
                self._state = _LINE
                continue
            if state == _SKIP:
                count = min(self._need, len(buf))
                del buf[:count]
                self._need -= count
                if self._need:
                    break
                self._state = _DISCARD
                self._scan = 0
                continue
            end = buf.find(b"\n", self._scan)
            if end < 0:
                if state == _DISCARD:
                    if len(buf) > _MARK_TAIL:
                        del buf[: len(buf) - _MARK_TAIL]
                    self._scan = len(buf)
                    break
                if self._line_len + len(buf) > self.max_line:
                    events.append(LineTooLong(self._tag if self._parts else _sniff(buf[:200])[0]))
                    self._reset_command()
                    self._state = _DISCARD
                    continue
                self._scan = len(buf)
                break
            line = bytes(buf[:end])
            del buf[: end + 1]
            self._scan = 0
            mark = _LITERAL_MARK.search(line, max(0, len(line) - _MARK_TAIL))
            if state == _DISCARD:
                self._state = _LINE
                if mark is not None and mark.group(3):
                    self._need = int(mark.group(2))
                    self._state = _SKIP
                continue
            if self._frame_line(line, mark, events):
                break
        return events

    def _frame_line(self, line: bytes, mark: re.Match[bytes] | None, events: list[Event]) -> bool:
        """A complete line (LF removed; ``mark``, its literal announcement if any) added to the command being
        framed, with the events it completes; True when :meth:`feed` must stop (line mode, a STOP_VERBS verb)."""
        if line.endswith(b"\r"):
            line = line[:-1]
        if self.line_mode and not self._parts:
            # One line at a time: the server decides after each one whether line mode goes on.
            events.append(Line(line))
            return True
        if not self._parts:
            self._tag, self._verb = _sniff(line[:200])
        if mark is not None:
            line = line[: mark.start()]
        self._line_len += len(line)
        self._size += len(line) + 2
        if self._line_len > self.max_line:
            events.append(LineTooLong(self._tag))
            self._reset_command()
            if mark is not None and mark.group(3):
                self._need = int(mark.group(2))
                self._state = _SKIP
            return False
        self._parts.append(line)
        if mark is None:
            raw = RawCommand(tuple(self._parts), self._tag, self._verb, self._size)
            events.append(Command(raw))
            verb = self._verb
            self._reset_command()
            return verb in STOP_VERBS
        size = int(mark.group(2))
        nonsync = bool(mark.group(3))
        limit, total = self._limits()
        if (
            size > limit
            or self._size + size > total
            or self._literals >= MAX_LITERALS
            or (nonsync and self.literal_minus and size > MAX_LITERAL_MINUS)
        ):
            events.append(LiteralRefused(self._tag, size, nonsync, self._verb))
            self._reset_command()
            if nonsync:
                self._need = size
                self._state = _SKIP
            return False
        self._size += size
        self._literals += 1
        self._need = size
        self._binary = bool(mark.group(1))
        self._state = _LITERAL
        if not nonsync:
            events.append(Continue(size, self._tag))
        return False
