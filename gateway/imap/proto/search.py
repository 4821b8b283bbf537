"""SEARCH keys as a small tree (RFC 9051 6.4.4, RFC 3501 6.4.4, RFC 7162 3.1.5 MODSEQ, RFC 5182 ``$``).

The tree is built without recursion (an explicit stack in :func:`gateway.imap.proto.parser.parse`), bounded by
:data:`~gateway.imap.proto.limits.MAX_DEPTH` and :data:`~gateway.imap.proto.limits.MAX_ITEMS`, so a client's
thousand nested parentheses or ORs are a ``BAD``, never a ``RecursionError``.

Key names and their ``arg``:

* no argument (``arg=None``): ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED
  UNDRAFT UNFLAGGED UNSEEN
* ``str``: BCC BODY CC FROM SUBJECT TEXT TO (the text to find), KEYWORD UNKEYWORD (the flag, canonical case),
  EMAILID THREADID (RFC 8474)
* ``datetime.date``: BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE
* ``int``: LARGER SMALLER, MODSEQ (RFC 7162 3.1.5; the optional entry name and type are validated and dropped:
  the store keeps one mod-sequence per message)
* ``tuple[str, str]``: HEADER (field name, text)
* :class:`~gateway.imap.proto.sequence.SequenceSet`: UID, and SEQ for a bare sequence set or ``$``

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

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
#: Keys whose argument is an object identifier (RFC 8474 6).
OBJECTID_KEYS = frozenset({"EMAILID", "THREADID"})
