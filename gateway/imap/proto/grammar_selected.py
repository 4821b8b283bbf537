"""The arguments of commands of the selected state: SEARCH, FETCH, STORE, COPY/MOVE, UID EXPUNGE, SORT and
THREAD, each with or without UID (RFC 9051 6.4, RFC 4731, RFC 5256, RFC 6851).

Search keys and fetch items are read by :mod:`gateway.imap.proto.search` and :mod:`gateway.imap.proto.fetch`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gateway.imap.proto import commands as c
from gateway.imap.proto.fetch import parse_items
from gateway.imap.proto.grammar_authenticated import _options
from gateway.imap.proto.lexer import Cursor
from gateway.imap.proto.limits import MAX_ITEMS
from gateway.imap.proto.search import SearchKey, parse_keys

#: ESEARCH return options (RFC 4731 3.1, RFC 5182 2 SAVE).
SEARCH_RETURNS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})
#: SORT keys (RFC 5256 3, RFC 5957 DISPLAYFROM / DISPLAYTO).
SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
#: THREAD algorithms offered (RFC 5256 3).
THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})
#: Search charsets the server understands; others get BADCHARSET (RFC 9051 6.4.4).
CHARSETS = frozenset({"UTF-8", "US-ASCII"})
BADCHARSET = "BADCHARSET (UTF-8 US-ASCII)"


def _charset(cur: Cursor) -> str:
    charset = cur.astring_text("a charset").upper()
    if charset not in CHARSETS:
        raise cur.error(f"The charset {charset[:40]} is not supported.", BADCHARSET)
    return charset


def _search(cur: Cursor, tag: str, uid: bool) -> c.Search:
    """SEARCH [RETURN (...)] [CHARSET charset] keys (RFC 9051 6.4.4, RFC 4731 3.1, RFC 5182 2)."""
    cur.sp()
    returns: tuple[str, ...] | None = None
    if cur.skip_word(b"RETURN"):
        cur.sp()
        returns = tuple(dict.fromkeys(_options(cur, SEARCH_RETURNS, "return options")))
        cur.sp()
    charset = None
    if cur.skip_word(b"CHARSET"):
        cur.sp()
        charset = _charset(cur)
        cur.sp()
    key = parse_keys(cur)
    return c.Search(tag, uid, charset, key, returns)


def _fetch(cur: Cursor, tag: str, uid: bool) -> c.Fetch:
    """FETCH set items [SP "(" CHANGEDSINCE n [SP VANISHED] ")"] (RFC 9051 6.4.5, RFC 7162 3.1.4, 3.2.6)."""
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    items = parse_items(cur)
    changedsince: int | None = None
    vanished = False
    if not cur.at_end():
        cur.sp()
        cur.expect(b"(", "'(' opening the fetch modifiers")
        while True:
            name = cur.atom("a fetch modifier")
            if name == "CHANGEDSINCE" and changedsince is None:
                cur.sp()
                changedsince = cur.modseq()
            elif name == "VANISHED" and not vanished:
                vanished = True
            else:
                raise cur.error(f"Unknown or repeated fetch modifier {name[:40]}.")
            if cur.skip(b")"):
                break
            cur.sp()
    cur.end()
    if vanished and (not uid or changedsince is None):
        raise cur.error("VANISHED needs UID FETCH with CHANGEDSINCE (RFC 7162 3.2.6).")
    return c.Fetch(tag, uid, sequence, items, changedsince, vanished)


_STORE_ITEM = re.compile(rb"([+-]?)FLAGS(\.SILENT)?", re.IGNORECASE)
_STORE_MODES: dict[bytes, c.StoreMode] = {b"": "set", b"+": "add", b"-": "remove"}


def _store(cur: Cursor, tag: str, uid: bool) -> c.Store:
    """STORE set [SP (UNCHANGEDSINCE n)] SP [+-]FLAGS[.SILENT] SP flags (RFC 9051 6.4.6, RFC 7162 3.1.3)."""
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    unchangedsince: int | None = None
    if cur.skip(b"("):
        if cur.atom("UNCHANGEDSINCE") != "UNCHANGEDSINCE":
            raise cur.error("The only store modifier is UNCHANGEDSINCE (RFC 7162 3.1.3).")
        cur.sp()
        unchangedsince = cur.modseq()
        cur.expect(b")", "')' closing the store modifiers")
        cur.sp()
    found = cur.match(_STORE_ITEM, "FLAGS, +FLAGS or -FLAGS")
    if cur.peek() not in (0x20,):
        raise cur.error("Expected FLAGS, +FLAGS or -FLAGS followed by the flags.")
    cur.sp()
    flags: set[str] = set()
    if cur.peek() == 0x28:
        flags = set(cur.flag_list())
    else:
        while True:
            flags.add(cur.flag())
            if len(flags) > MAX_ITEMS:
                raise cur.error("Too many flags.")
            if cur.at_end():
                break
            cur.sp()
    cur.end()
    mode = _STORE_MODES[found.group(1)]
    return c.Store(tag, uid, sequence, mode, bool(found.group(2)), frozenset(flags), unchangedsince)


def _copy_or_move(cls: type[c.Copy] | type[c.Move]) -> Callable[[Cursor, str, bool], c.BaseCommand]:
    def handler(cur: Cursor, tag: str, uid: bool) -> c.BaseCommand:
        cur.sp()
        sequence = cur.sequence_set()
        cur.sp()
        mailbox = cur.mailbox()
        cur.end()
        return cls(tag, uid, sequence, mailbox)

    return handler


def _uid_expunge(cur: Cursor, tag: str, uid: bool) -> c.Expunge:
    """UID EXPUNGE set (RFC 4315 2.1)."""
    cur.sp()
    uids = cur.sequence_set()
    cur.end()
    return c.Expunge(tag, uids)


def _search_criteria(cur: Cursor) -> tuple[str, SearchKey]:
    charset = _charset(cur)
    cur.sp()
    return charset, parse_keys(cur)


def _sort(cur: Cursor, tag: str, uid: bool) -> c.Sort:
    """SORT [RETURN (...)] (criteria) charset keys (RFC 5256 3, RFC 5267 3.2 ESORT, RFC 5957 DISPLAY)."""
    cur.sp()
    returns: tuple[str, ...] | None = None
    if cur.skip_word(b"RETURN"):
        cur.sp()
        returns = tuple(dict.fromkeys(_options(cur, SEARCH_RETURNS - {"SAVE"}, "return options")))
        cur.sp()
    cur.expect(b"(", "'(' opening the sort criteria")
    criteria: list[tuple[str, bool]] = []
    while True:
        name = cur.atom("a sort key")
        reverse = name == "REVERSE"
        if reverse:
            cur.sp()
            name = cur.atom("a sort key")
        if name not in SORT_KEYS:
            raise cur.error(f"Unknown sort key {name[:40]}.")
        criteria.append((name, reverse))
        if len(criteria) > MAX_ITEMS:
            raise cur.error("Too many sort criteria.")
        if cur.skip(b")"):
            break
        cur.sp()
    cur.sp()
    charset, key = _search_criteria(cur)
    return c.Sort(tag, uid, tuple(criteria), charset, key, returns)


def _thread(cur: Cursor, tag: str, uid: bool) -> c.Thread:
    """THREAD algorithm charset keys (RFC 5256 3)."""
    cur.sp()
    algorithm = cur.atom("a thread algorithm")
    if algorithm == "ORDEREDSUBJECT":
        chosen: c.ThreadAlgorithm = "ORDEREDSUBJECT"
    elif algorithm == "REFERENCES":
        chosen = "REFERENCES"
    else:
        raise cur.error(f"Unknown thread algorithm {algorithm[:40]}.")
    cur.sp()
    charset, key = _search_criteria(cur)
    return c.Thread(tag, uid, chosen, charset, key)
