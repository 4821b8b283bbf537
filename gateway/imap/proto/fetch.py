"""FETCH items (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ, RFC 8474 EMAILID/THREADID, RFC 8970 PREVIEW).

``BODY[...]``, ``BODY.PEEK[...]``, ``BINARY[...]``, ``BINARY.PEEK[...]`` and ``BINARY.SIZE[...]`` become a
:class:`FetchItem` with a :class:`Section`; ``BODY`` without a section is the non-extended body structure. The
macros ALL, FAST and FULL are expanded by the parser (RFC 9051 6.4.5).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.imap.proto.lexer import Cursor
from gateway.imap.proto.limits import MAX_DEPTH, MAX_ITEMS


@dataclass(frozen=True, slots=True)
class Section:
    """A body section: ``part`` (``()`` for the whole message), then ``text`` and, for HEADER.FIELDS(.NOT), ``fields``.

    ``text`` is one of None, ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT``, ``TEXT``, ``MIME`` (MIME only
    with a part number, RFC 9051 6.4.5). ``fields`` are upper-cased header names.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        pieces = [".".join(str(n) for n in self.part)] if self.part else []
        if self.text is not None:
            pieces.append(self.text)
        label = ".".join(pieces)
        if self.fields:
            label += " (" + " ".join(self.fields) + ")"
        return label


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One FETCH attribute; ``partial`` is ``<origin.count>`` as ``(origin, count)``.

    ``name`` is upper case: UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY BINARY BINARY.SIZE
    RFC822 RFC822.HEADER RFC822.TEXT MODSEQ EMAILID THREADID PREVIEW SAVEDATE. ``peek`` is set for
    ``BODY.PEEK``/``BINARY.PEEK`` (the server does not set ``\\Seen``, RFC 9051 6.4.5); PREVIEW's ``(LAZY)``
    modifier (RFC 8970) is recorded in ``lazy``.
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False
    lazy: bool = False

    def response_label(self) -> str:
        """The name in the FETCH response: ``BODY[1.MIME]<0>`` for ``BODY.PEEK[1.MIME]<0.10>`` (RFC 9051 7.5.2)."""
        if self.section is None:
            return self.name
        label = f"{self.name}[{self.section}]"
        if self.partial is not None:
            label += f"<{self.partial[0]}>"
        return label

    @property
    def sets_seen(self) -> bool:
        """Whether fetching this item sets ``\\Seen`` (BODY[...], BINARY[...], RFC822, RFC822.TEXT)."""
        if self.peek:
            return False
        if self.name in {"BODY", "BINARY"}:
            return self.section is not None
        return self.name in {"RFC822", "RFC822.TEXT"}


#: Items that take no section.
SIMPLE_ITEMS = frozenset(
    {
        "UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY", "RFC822",
        "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "EMAILID", "THREADID", "PREVIEW", "SAVEDATE",
    }
)

#: RFC 9051 6.4.5 macros.
MACROS: dict[str, tuple[FetchItem, ...]] = {
    "ALL": (FetchItem("FLAGS"), FetchItem("INTERNALDATE"), FetchItem("RFC822.SIZE"), FetchItem("ENVELOPE")),
    "FAST": (FetchItem("FLAGS"), FetchItem("INTERNALDATE"), FetchItem("RFC822.SIZE")),
    "FULL": (
        FetchItem("FLAGS"), FetchItem("INTERNALDATE"), FetchItem("RFC822.SIZE"), FetchItem("ENVELOPE"),
        FetchItem("BODY"),
    ),
}

_NAME = re.compile(rb"[A-Za-z0-9.]+")
_SECTION = re.compile(
    rb"((?:[1-9][0-9]{0,9})(?:\.[1-9][0-9]{0,9}){0,%d})?(?:(?(1)\.)(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?"
    % (MAX_DEPTH - 1),
    re.IGNORECASE,
)
_SECTIONED = {"BODY": False, "BODY.PEEK": True, "BINARY": False, "BINARY.PEEK": True, "BINARY.SIZE": False}


def _header_list(cur: Cursor) -> tuple[str, ...]:
    """``"(" header-fld-name *(SP header-fld-name) ")"``; names upper case (RFC 9051 9)."""
    cur.sp()
    cur.expect(b"(", "a parenthesised list of header field names")
    fields: list[str] = []
    while True:
        name = cur.astring_text("a header field name")
        if not name or not _FIELD_NAME.fullmatch(name):
            raise cur.error("A header field name is printable ASCII without colon or space (RFC 5322 3.6.8).")
        fields.append(name.upper())
        if len(fields) > MAX_ITEMS:
            raise cur.error(f"More than {MAX_ITEMS} header field names.")
        if cur.skip(b")"):
            return tuple(fields)
        cur.sp()


_FIELD_NAME = re.compile(r"[!-9;-~]+")


def _section(cur: Cursor, binary: bool) -> Section:
    cur.expect(b"[", "a section")
    found = cur.match(_SECTION, "a section")
    part = tuple(int(n) for n in found.group(1).split(b".")) if found.group(1) else ()
    text = found.group(2).decode("ascii").upper() if found.group(2) else None
    if binary and text is not None:
        raise cur.error("A BINARY section is a part number only (RFC 3516 4.2).")
    if text == "MIME" and not part:
        raise cur.error("MIME needs a part number (RFC 9051 6.4.5).")
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        fields = _header_list(cur)
    cur.expect(b"]", "the end of the section ']'")
    return Section(part, text, fields)


def _partial(cur: Cursor) -> tuple[int, int] | None:
    if not cur.skip(b"<"):
        return None
    origin = cur.number("the partial origin")
    cur.expect(b".", "'.' in the partial range")
    count = cur.nz_number("the partial length")
    cur.expect(b">", "'>' closing the partial range")
    return origin, count


_SIMPLE = {name: FetchItem(name) for name in SIMPLE_ITEMS}


def _item(cur: Cursor) -> FetchItem:
    name = cur.match(_NAME, "a fetch item").group().decode("ascii").upper()
    if cur.peek() == 0x5B:  # "["
        peek = _SECTIONED.get(name)
        if peek is None:
            raise cur.error(f"{name} takes no section.")
        base = name.removesuffix(".PEEK")
        section = _section(cur, base.startswith("BINARY"))
        partial = _partial(cur)
        if base == "BINARY.SIZE" and partial is not None:
            raise cur.error("BINARY.SIZE takes no partial range (RFC 3516 4.2).")
        return FetchItem(base, section, partial, peek)
    simple = _SIMPLE.get(name)
    if simple is None:
        raise cur.error(f"Unknown fetch item {name[:40]}.")
    if name == "PREVIEW" and cur.buf[cur.pos : cur.pos + 6].upper() == b" (LAZY":
        cur.sp()
        cur.expect(b"(", "'('")
        while True:
            if cur.atom("a preview modifier") != "LAZY":
                raise cur.error("The only PREVIEW modifier is LAZY (RFC 8970 3).")
            if cur.skip(b")"):
                break
            cur.sp()
        return FetchItem(name, lazy=True)
    return simple


def parse_items(cur: Cursor) -> tuple[FetchItem, ...]:
    """A macro, one fetch-att, or ``"(" fetch-att *(SP fetch-att) ")"`` (RFC 9051 6.4.5)."""
    if not cur.skip(b"("):
        found = _NAME.match(cur.buf, cur.pos)
        if found is not None:
            macro = MACROS.get(found.group().decode("ascii").upper())
            if macro is not None and cur.buf[found.end() : found.end() + 1] != b"[":
                cur.pos = found.end()
                return macro
        return (_item(cur),)
    items: list[FetchItem] = []
    while True:
        items.append(_item(cur))
        if len(items) > MAX_ITEMS:
            raise cur.error(f"More than {MAX_ITEMS} fetch items.")
        if cur.skip(b")"):
            return tuple(items)
        cur.sp()
