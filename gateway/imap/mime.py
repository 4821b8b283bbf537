"""pymap's loaded message, corrected and made cheaper from our side.

- BODYSTRUCTURE: pymap writes the Content-Disposition of a part as one quoted string
  (``"attachment; filename=\\"a.pdf\\""``); the grammar (body-fld-dsp) is a list:
  ``("attachment" ("filename" "a.pdf"))``. Mail clients read attachment names from it, and CDA/PDF/XDM messages
  are all attachments, so we rewrite that element.
- SEARCH FROM/TO/SUBJECT/HEADER: pymap builds the standard library's structured header objects (address lists,
  defects) to compare a substring; that was most of the time of a SEARCH. The header values are decoded here
  (RFC 2047 words, unfolded) without building them.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Sequence
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from typing import Any

from pymap.bytes import Writeable, WriteStream
from pymap.message import BaseLoadedMessage
from pymap.mime import MessageContent
from pymap.parsing.primitives import List, Nil, String
from pymap.parsing.response.fetch import BodyStructure


def disposition_list(header: Any) -> Writeable:
    """``("attachment" ("filename" "a.pdf"))`` from a parsed Content-Disposition header."""
    kind = getattr(header, "content_disposition", None)
    if not kind:
        return Nil()
    params = getattr(header, "params", None) or {}
    items: list[Writeable] = []
    for key, value in list(params.items())[:32]:
        items += [String.build(str(key)), String.build(str(value))]
    return List([String.build(str(kind)), List(items) if items else Nil()])


class FixedBodyStructure(Writeable):
    """A pymap body structure whose extension data carries the disposition as a list."""

    def __init__(self, inner: BodyStructure) -> None:
        self.inner = inner

    @property
    def extended(self) -> List:
        extended: List = self.inner.extended
        disposition = self.inner.content_disposition
        if disposition is None:
            return extended
        wrong = bytes(String.build(disposition))
        items = [disposition_list(disposition) if bytes(item) == wrong else item for item in extended.value]
        return List(items)

    def write(self, writer: WriteStream) -> None:
        self.inner.write(writer)

    def __bytes__(self) -> bytes:
        return bytes(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def decoded(value: str) -> str:
    """A header value as text: unfolded, RFC 2047 encoded words decoded (left as is when they are broken)."""
    unfolded = value.replace("\r\n", "").replace("\n", "")
    if any("\udc80" <= char <= "\udcff" for char in unfolded):  # bytes that were not UTF-8
        unfolded = unfolded.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(unfolded)))
    except (ValueError, LookupError, UnicodeError):
        return unfolded


class SearchEnvelope:
    """What SEARCH FROM/TO/CC/BCC/SUBJECT read of an envelope: the decoded header values, one per header line."""

    __slots__ = ["bcc", "cc", "from_", "subject", "to"]

    def __init__(self, loaded: LoadedMessage) -> None:
        self.from_ = loaded.get_header(b"from") or None
        self.to = loaded.get_header(b"to") or None
        self.cc = loaded.get_header(b"cc") or None
        self.bcc = loaded.get_header(b"bcc") or None
        subjects = loaded.get_header(b"subject")
        self.subject = subjects[0] if subjects else None


class LoadedMessage(BaseLoadedMessage):
    """pymap's loaded message with the corrected body structure (parts included, recursively) and cheap header
    look-ups for SEARCH (:attr:`for_search`)."""

    __slots__ = ["_plain_headers", "for_search"]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._plain_headers: Message | None = None
        #: Set by SEARCH: the envelope is only compared with substrings, never written to a client.
        self.for_search = False

    def get_header(self, name: bytes) -> Sequence[str]:
        if self._content is None:
            return []
        if self._plain_headers is None:
            # Raw 8-bit headers (RFC 6532) are UTF-8; the bytes parser would turn them into unknown-8bit.
            text = bytes(self._content.header).decode("utf-8", "surrogateescape")
            self._plain_headers = HeaderParser(policy=compat32).parsestr(text)
        values = self._plain_headers.get_all(name.decode("ascii", "replace")) or []
        return [decoded(str(value)) for value in values]

    def get_envelope_structure(self) -> Any:
        if self.for_search:
            return SearchEnvelope(self)
        return super().get_envelope_structure()

    @classmethod
    def _get_body_structure(cls, msg: MessageContent) -> BodyStructure:
        return FixedBodyStructure(super()._get_body_structure(msg))  # type: ignore[return-value]
