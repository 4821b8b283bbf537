"""The one error the protocol layer raises for malformed input.

The server answers it with a tagged ``BAD`` (or an untagged ``* BAD`` when the tag itself was unreadable),
carrying :attr:`ProtocolError.code` as the response code (RFC 9051 7.1).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A command the grammar rejects; ``text`` is a sentence for the client, never a traceback."""

    def __init__(self, tag: str | None, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.tag = tag
        self.text = text
        self.code = code

    def __repr__(self) -> str:
        return f"ProtocolError(tag={self.tag!r}, text={self.text!r}, code={self.code!r})"
