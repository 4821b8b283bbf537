"""SEARCH keys as a small tree (RFC 9051 6.4.4, RFC 3501 6.4.4, RFC 7162 3.1.5 MODSEQ, RFC 5182 ``$``,
RFC 5032 OLDER and YOUNGER).

The tree is built without recursion (an explicit stack in :func:`gateway.imap.proto.parser.parse`), bounded by
:data:`~gateway.imap.proto.limits.MAX_DEPTH` and :data:`~gateway.imap.proto.limits.MAX_ITEMS`, so a client's
thousand nested parentheses or ORs are a ``BAD``, never a ``RecursionError``.

Key names and their ``arg``:

* no argument (``arg=None``): ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED
  UNDRAFT UNFLAGGED UNSEEN
* ``str``: BCC BODY CC FROM SUBJECT TEXT TO (the text to find), KEYWORD UNKEYWORD (the flag, canonical case),
  EMAILID THREADID (RFC 8474)
* ``datetime.date``: BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE
* ``int``: LARGER SMALLER, OLDER YOUNGER (an interval in seconds, RFC 5032), MODSEQ (RFC 7162 3.1.5; the
  optional entry name and type are validated and dropped: the store keeps one mod-sequence per message)
* ``tuple[str, str]``: HEADER (field name upper case, text)
* :class:`~gateway.imap.proto.sequence.SequenceSet`: UID, and SEQ for a bare sequence set or ``$``

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from gateway.imap.proto.lexer import Cursor
from gateway.imap.proto.limits import MAX_DEPTH, MAX_ITEMS, MAX_NUMBER64
from gateway.imap.proto.sequence import SequenceSet

KeyArg = str | int | datetime.date | SequenceSet | tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class Key:
    """One search criterion: ``name`` upper case (``SEQ`` for a bare sequence set), ``arg`` as listed above."""

    name: str
    arg: KeyArg = None


@dataclass(frozen=True, slots=True)
class And:
    """All of ``keys`` (a parenthesised list, or the top-level list of a SEARCH command)."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Either key (``OR a b``)."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class Not:
    """Not the key (``NOT a``)."""

    key: SearchKey


SearchKey = Key | And | Or | Not

#: Keys without an argument.
FLAG_KEYS = frozenset(
    {
        "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
        "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN",
    }
)
#: Keys whose argument is an astring to look for.
TEXT_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
#: Keys whose argument is a flag keyword.
KEYWORD_KEYS = frozenset({"KEYWORD", "UNKEYWORD"})
#: Keys whose argument is a date (RFC 9051 9 ``date``).
DATE_KEYS = frozenset({"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"})
#: Keys whose argument is a number.
NUMBER_KEYS = frozenset({"LARGER", "SMALLER"})
#: Keys whose argument is an interval in seconds before now (RFC 5032 WITHIN: a ``nz-number``).
INTERVAL_KEYS = frozenset({"OLDER", "YOUNGER"})
#: Keys whose argument is an object identifier (RFC 8474 6).
OBJECTID_KEYS = frozenset({"EMAILID", "THREADID"})

_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")
_ENTRY_TYPES = frozenset({"PRIV", "SHARED", "ALL"})
_TOP, _PAREN, _OR, _NOT = range(4)


def _simple_key(cur: Cursor, name: str) -> Key:
    """A key that is not OR, NOT or a parenthesised list; the name is already consumed."""
    if name in FLAG_KEYS:
        return Key(name)
    cur.sp()
    if name in TEXT_KEYS:
        return Key(name, cur.astring_text("the text to search for"))
    if name in DATE_KEYS:
        return Key(name, cur.date())
    if name in NUMBER_KEYS:
        return Key(name, cur.number("a size in octets", limit=MAX_NUMBER64))
    if name in INTERVAL_KEYS:
        return Key(name, cur.nz_number("an interval in seconds (RFC 5032)"))
    if name in KEYWORD_KEYS:
        return Key(name, cur.flag(keyword_only=True))
    if name == "HEADER":
        field = cur.astring_text("a header field name")
        cur.sp()
        return Key(name, (field.upper(), cur.astring_text("the text to search for")))
    if name == "UID":
        return Key(name, cur.sequence_set())
    if name == "MODSEQ":
        # RFC 7162 3.1.5: [entry-name SP entry-type-req SP] mod-sequence-valzer
        if cur.peek() == 0x22:
            entry = cur.quoted()
            if not entry.lower().startswith(b"/flags/"):
                raise cur.error('A MODSEQ entry name is "/flags/<flag>" (RFC 7162 3.1.5).')
            cur.sp()
            if cur.atom("an entry type (priv, shared or all)") not in _ENTRY_TYPES:
                raise cur.error("A MODSEQ entry type is priv, shared or all (RFC 7162 3.1.5).")
            cur.sp()
        return Key(name, cur.modseq())
    if name in OBJECTID_KEYS:
        return Key(name, cur.match(_OBJECTID, "an object identifier (RFC 8474)").group().decode("ascii"))
    raise cur.error(f"Unknown search key {name}.")


def parse_keys(cur: Cursor) -> SearchKey:
    """``search-key *(SP search-key)`` up to the end of the command, built with an explicit stack.

    Depth (parentheses, OR, NOT together) is bounded by MAX_DEPTH and the number of keys by MAX_ITEMS, so
    hostile nesting costs one ``BAD`` (RFC 9051 6.4.4 grammar; bounds are ours).
    """
    # A frame is [kind, items]; OR needs two items, NOT one, a parenthesised list ends at ")".
    stack: list[tuple[int, list[SearchKey]]] = [(_TOP, [])]
    count = 0
    while True:
        kind, items = stack[-1]
        if kind == _OR and len(items) == 2:
            stack.pop()
            stack[-1][1].append(Or(items[0], items[1]))
            continue
        if kind == _NOT and len(items) == 1:
            stack.pop()
            stack[-1][1].append(Not(items[0]))
            continue
        if kind == _PAREN and items and cur.skip(b")"):
            stack.pop()
            stack[-1][1].append(items[0] if len(items) == 1 else And(tuple(items)))
            continue
        if kind == _TOP and items and cur.at_end():
            return items[0] if len(items) == 1 else And(tuple(items))
        if items or kind in (_OR, _NOT):
            cur.sp()
        count += 1
        if count > MAX_ITEMS:
            raise cur.error(f"More than {MAX_ITEMS} search keys.")
        byte = cur.peek()
        if byte == 0x28:  # "("
            cur.pos += 1
            if len(stack) >= MAX_DEPTH:
                raise cur.error(f"Search keys nested deeper than {MAX_DEPTH}.")
            stack.append((_PAREN, []))
            continue
        if byte in _SEQUENCE_START:
            items.append(Key("SEQ", cur.sequence_set()))
            continue
        name = cur.atom("a search key")
        if name == "OR" or name == "NOT":
            if len(stack) >= MAX_DEPTH:
                raise cur.error(f"Search keys nested deeper than {MAX_DEPTH}.")
            stack.append((_OR if name == "OR" else _NOT, []))
            continue
        items.append(_simple_key(cur, name))


_SEQUENCE_START = frozenset(b"0123456789*$")
