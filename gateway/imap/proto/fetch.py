"""FETCH items (RFC 9051 6.4.5, RFC 3516 BINARY, RFC 7162 MODSEQ, RFC 8474 EMAILID/THREADID, RFC 8970 PREVIEW).

``BODY[...]``, ``BODY.PEEK[...]``, ``BINARY[...]``, ``BINARY.PEEK[...]`` and ``BINARY.SIZE[...]`` become a
:class:`FetchItem` with a :class:`Section`; ``BODY`` without a section is the non-extended body structure. The
macros ALL, FAST and FULL are expanded by the parser (RFC 9051 6.4.5).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass


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
