"""Typed refusals of the document readers: a reason a person can read, and a short machine code.

Readers never let a library exception escape: whatever a hostile input provokes becomes one of these, so the
caller can open a review item (R10, code 906) without leaking a traceback or the document's content.
"""

from __future__ import annotations


class DocumentRefused(ValueError):
    """An input the gateway will not read. ``reason`` is a short code, ``str(error)`` a sentence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class MimeRefused(DocumentRefused):
    """A message whose MIME structure is over a limit or malformed."""


class XdmRefused(DocumentRefused):
    """An IHE XDM zip that is unsafe (bomb, traversal, nesting) or inconsistent with its metadata."""


class CdaRefused(DocumentRefused):
    """A CDA document that cannot be read safely (not XML, DTD/entities, too large, no header)."""
