"""RFC 9051 BODYSTRUCTURE details pymap gets wrong, corrected from our side.

pymap writes the Content-Disposition of a part as one quoted string (``"attachment; filename=\\"a.pdf\\""``);
the grammar (body-fld-dsp) is a list: ``("attachment" ("filename" "a.pdf"))``. Mail clients read attachment
names from it, and CDA/PDF/XDM messages are all attachments, so we rewrite that element.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

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


class LoadedMessage(BaseLoadedMessage):
    """pymap's loaded message with the corrected body structure (parts included, recursively)."""

    @classmethod
    def _get_body_structure(cls, msg: MessageContent) -> BodyStructure:
        return FixedBodyStructure(super()._get_body_structure(msg))  # type: ignore[return-value]
