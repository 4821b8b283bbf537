"""Status lines of the engine's answers (RFC 9051 7.1): tagged, untagged, continuation.

Values inside responses (strings, literals, flag lists, mailbox names) are built with
:mod:`gateway.imap.proto.response`; this module only frames whole lines.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re

#: Characters a status text must not carry (it ends at CRLF; RFC 9051 9 ``text``).
_UNSAFE = re.compile(r"[\r\n\x00]")


def _text(text: str) -> bytes:
    return _UNSAFE.sub(" ", text).encode("utf-8", "replace")


def status(tag: str, kind: str, text: str, code: str | None = None) -> bytes:
    """``tag OK [CODE] text``; ``tag`` is ``*`` for untagged status responses."""
    head = f"{tag} {kind} " + (f"[{code}] " if code else "")
    return head.encode("utf-8", "replace") + _text(text) + b"\r\n"


def untagged(data: bytes | str) -> bytes:
    """``* data``."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    return b"* " + data + b"\r\n"


def continuation(text: str = "Ready") -> bytes:
    return b"+ " + _text(text) + b"\r\n"
