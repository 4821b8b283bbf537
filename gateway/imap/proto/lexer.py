"""A cursor over a framed command's line pieces and literals, reading RFC 9051 9 tokens with compiled regexes.

Every reader either consumes a whole token or raises :class:`~gateway.imap.proto.errors.ProtocolError`, so the
grammar in :mod:`gateway.imap.proto.parser` is a straight sequence of calls with no backtracking that input
could make expensive.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import datetime
import re

from gateway.imap.proto import utf7
from gateway.imap.proto.errors import ProtocolError
from gateway.imap.proto.limits import MAX_ITEMS, MAX_NUMBER, MAX_NUMBER64
from gateway.imap.proto.reader import Literal
from gateway.imap.proto.sequence import SequenceSet
from gateway.imap.proto.sequence import parse as parse_sequence

# ATOM-CHAR: any CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]" (RFC 9051 9).
ATOM = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
ASTRING_CHARS = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\]+")
LIST_CHARS = re.compile(rb"[^\x00-\x20\x7f-\xff(){\"\\]+")
QUOTED = re.compile(rb'"([^"\\\x00\r\n]*(?:\\["\\][^"\\\x00\r\n]*)*)"')
_UNESCAPE = re.compile(rb'\\(["\\])')
NUMBER = re.compile(rb"[0-9]{1,20}")
NZ_NUMBER = re.compile(rb"[1-9][0-9]{0,19}")
SEQUENCE = re.compile(rb"[0-9:*,$]+")
FLAG = re.compile(rb"\\?[^\x00-\x20\x7f-\xff(){%*\"\\\]]+|\\\*")
DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
DATE_TIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([-+])([0-9]{2})([0-9]{2})"'
)
_CTL = re.compile(r"[\x00-\x1f\x7f]")

MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1
    )
}

#: System flags in their canonical case (RFC 9051 2.3.2); ``\Recent`` cannot be stored (RFC 3501 9 ``flag``).
SYSTEM_FLAGS = {name.lower(): name for name in ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")}


class Cursor:
    """Position in a command: ``parts`` alternate line pieces and literals, starting and ending with a piece."""

    __slots__ = ("buf", "index", "parts", "pos", "tag", "utf8")

    def __init__(self, parts: tuple[bytes | Literal, ...], tag: str | None, utf8: bool = False) -> None:
        self.tag = tag
        self.utf8 = utf8
        if not parts or len(parts) % 2 == 0:
            raise ProtocolError(tag, "The command is empty or not framed.")
        for index, part in enumerate(parts):
            if isinstance(part, Literal) != (index % 2 == 1):
                raise ProtocolError(tag, "The command is not framed.")
        self.parts = parts
        self.index = 0
        first = parts[0]
        assert isinstance(first, bytes)
        self.buf = first
        self.pos = 0

    # --- primitives ---------------------------------------------------------------------------------------

    def error(self, text: str, code: str | None = None) -> ProtocolError:
        """An error for this command's tag (``raise cur.error(...)``)."""
        return ProtocolError(self.tag, text, code)

    def at_end(self) -> bool:
        """Whether the whole command is consumed."""
        return self.pos == len(self.buf) and self.index == len(self.parts) - 1

    def at_literal(self) -> bool:
        """Whether a literal comes next."""
        return self.pos == len(self.buf) and self.index < len(self.parts) - 1

    def peek(self) -> int:
        """The next byte, or -1 at the end of a line piece."""
        return self.buf[self.pos] if self.pos < len(self.buf) else -1

    def skip(self, token: bytes) -> bool:
        """Consume ``token`` (exact bytes) when it comes next."""
        if self.buf.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def skip_word(self, word: bytes) -> bool:
        """Consume the atom ``word`` (any case) when it comes next as a whole atom."""
        end = self.pos + len(word)
        if self.buf[self.pos : end].upper() == word:
            following = self.buf[end : end + 1]
            if not following or not ATOM.match(following):
                self.pos = end
                return True
        return False

    def expect(self, token: bytes, what: str) -> None:
        """Consume ``token`` or fail saying ``what`` was expected."""
        if not self.skip(token):
            raise self.error(f"Expected {what}.")

    def sp(self) -> None:
        """One space (RFC 9051 9 ``SP``)."""
        if self.pos < len(self.buf) and self.buf[self.pos] == 0x20:
            self.pos += 1
            return
        raise self.error("Expected a space between arguments.")

    def end(self) -> None:
        """The command must end here."""
        if not self.at_end():
            raise self.error("Unexpected text after the end of the command.")

    def match(self, pattern: re.Pattern[bytes], what: str) -> re.Match[bytes]:
        """Consume ``pattern`` or fail saying ``what`` was expected."""
        found = pattern.match(self.buf, self.pos)
        if found is None:
            raise self.error(f"Expected {what}.")
        self.pos = found.end()
        return found

    def literal(self) -> Literal:
        """The literal that comes next."""
        if not self.at_literal():
            raise self.error("Expected a literal.")
        lit = self.parts[self.index + 1]
        nxt = self.parts[self.index + 2]
        assert isinstance(lit, Literal) and isinstance(nxt, bytes)
        self.index += 2
        self.buf = nxt
        self.pos = 0
        return lit

    # --- tokens -------------------------------------------------------------------------------------------

    def atom(self, what: str = "an atom") -> str:
        """An atom, upper-cased (command names, options, status items: all case-insensitive)."""
        return self.match(ATOM, what).group().decode("ascii").upper()

    def number(self, what: str = "a number", *, limit: int = MAX_NUMBER) -> int:
        """A ``number`` (32-bit) or, with ``limit=MAX_NUMBER64``, a ``number64`` (RFC 9051 9)."""
        value = int(self.match(NUMBER, what).group())
        if value > limit:
            raise self.error(f"Expected {what} no larger than {limit}.")
        return value

    def nz_number(self, what: str = "a non-zero number", *, limit: int = MAX_NUMBER) -> int:
        """A ``nz-number`` / ``nz-number64``."""
        value = int(self.match(NZ_NUMBER, what).group())
        if value > limit:
            raise self.error(f"Expected {what} no larger than {limit}.")
        return value

    def modseq(self, what: str = "a mod-sequence") -> int:
        """A ``mod-sequence-value`` (RFC 7162 7: 1*DIGIT, 63-bit)."""
        return self.number(what, limit=MAX_NUMBER64)

    def quoted(self) -> bytes:
        """A quoted string's content, unescaped."""
        found = self.match(QUOTED, "a quoted string")
        content = found.group(1)
        return _UNESCAPE.sub(rb"\1", content) if b"\\" in content else content

    def string(self, what: str = "a string") -> bytes:
        """A ``string``: quoted or literal."""
        if self.at_literal():
            return self.literal().data
        if self.peek() == 0x22:
            return self.quoted()
        raise self.error(f"Expected {what} (a quoted string or a literal).")

    def astring(self, what: str = "a string") -> bytes:
        """An ``astring``: atom characters (``]`` allowed), quoted or literal."""
        if self.at_literal():
            return self.literal().data
        if self.peek() == 0x22:
            return self.quoted()
        found = ASTRING_CHARS.match(self.buf, self.pos)
        if found is None:
            raise self.error(f"Expected {what}.")
        self.pos = found.end()
        return found.group()

    def nstring(self, what: str = "a string or NIL") -> bytes | None:
        """An ``nstring``: NIL or a string."""
        if self.skip_word(b"NIL"):
            return None
        return self.string(what)

    def text(self, data: bytes, what: str = "text") -> str:
        """``data`` as UTF-8 (RFC 9051 4.3: strings are UTF-8 in IMAP4rev2)."""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"The {what} is not valid UTF-8.") from None

    def astring_text(self, what: str = "a string") -> str:
        """An astring decoded as UTF-8."""
        return self.text(self.astring(what), what)

    def mailbox(self, *, pattern: bool = False) -> str:
        """A mailbox name (or LIST pattern): modified UTF-7 decoded unless UTF8=ACCEPT, INBOX canonical.

        RFC 3501 5.1.3 (modified UTF-7), RFC 6855 3 (UTF-8 names once enabled), RFC 9051 5.1 (INBOX in any case).
        """
        if pattern and not self.at_literal() and self.peek() != 0x22:
            found = LIST_CHARS.match(self.buf, self.pos)
            if found is None:
                raise self.error("Expected a mailbox name or pattern.")
            self.pos = found.end()
            data = found.group()
        else:
            data = self.astring("a mailbox name")
        if self.utf8:
            name = self.text(data, "mailbox name")
        else:
            try:
                name = utf7.decode(data)
            except ValueError as exc:
                raise self.error(f"The mailbox name is not valid modified UTF-7 (RFC 3501 5.1.3): {exc}.") from None
        if _CTL.search(name):
            raise self.error("A mailbox name cannot hold control characters.")
        if not pattern and name.upper() == "INBOX":
            return "INBOX"
        return name

    def sequence_set(self, *, allow_saved: bool = True) -> SequenceSet:
        """A ``sequence-set`` or ``$`` (RFC 9051 9, RFC 5182 2)."""
        found = self.match(SEQUENCE, "a sequence set")
        try:
            result = parse_sequence(found.group())
        except ValueError as exc:
            raise self.error(f"Invalid sequence set: {exc}.") from None
        if result.saved and not allow_saved:
            raise self.error("The saved result $ is not allowed here.")
        return result

    def flag(self, *, keyword_only: bool = False) -> str:
        """A ``flag`` for STORE/APPEND: system flags canonical, keywords as written (RFC 9051 2.3.2)."""
        found = self.match(FLAG, "a flag")
        raw = found.group().decode("ascii")
        if raw.startswith("\\"):
            if keyword_only:
                raise self.error("Expected a keyword, not a system flag.")
            canonical = SYSTEM_FLAGS.get(raw.lower())
            if canonical is not None:
                return canonical
            if raw == "\\*" or raw.lower() == "\\recent":
                raise self.error(f"The flag {raw} cannot be set by a client.")
            return raw
        return raw

    def flag_list(self) -> frozenset[str]:
        """``"(" [flag *(SP flag)] ")"``."""
        self.expect(b"(", "a parenthesised flag list")
        flags: set[str] = set()
        if self.skip(b")"):
            return frozenset()
        while True:
            flags.add(self.flag())
            if len(flags) > MAX_ITEMS:
                raise self.error("Too many flags.")
            if self.skip(b")"):
                return frozenset(flags)
            self.sp()

    def date(self) -> datetime.date:
        """A ``date``: ``d-Mon-yyyy``, optionally quoted (RFC 9051 9)."""
        quoted = self.skip(b'"')
        found = self.match(DATE, "a date like 1-Feb-2024")
        if quoted:
            self.expect(b'"', "the closing quote of the date")
        month = MONTHS.get(found.group(2).decode("ascii").upper())
        if month is None:
            raise self.error("Unknown month in the date.")
        try:
            return datetime.date(int(found.group(3)), month, int(found.group(1)))
        except ValueError:
            raise self.error("The date does not exist.") from None

    def date_time(self) -> datetime.datetime:
        """A ``date-time``: ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (RFC 9051 9)."""
        found = self.match(DATE_TIME, 'a date-time like "01-Feb-2024 10:00:00 +0100"')
        day, mon, year, hour, minute, second, sign, zh, zm = found.groups()
        month = MONTHS.get(mon.decode("ascii").upper())
        if month is None:
            raise self.error("Unknown month in the date-time.")
        offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
        if offset >= datetime.timedelta(hours=24):
            raise self.error("The time zone of the date-time is out of range.")
        try:
            return datetime.datetime(
                int(year), month, int(day.strip()), int(hour), int(minute), int(second),
                tzinfo=datetime.timezone(-offset if sign == b"-" else offset),
            )
        except ValueError:
            raise self.error("The date-time does not exist.") from None
