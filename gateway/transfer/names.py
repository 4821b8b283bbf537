"""Folder names on disk: IMAP modified UTF-7 (RFC 3501 5.1.3), which Maildir++ and mbox trees use for names.

The store keeps names as Unicode text with ``/`` as hierarchy delimiter; Dovecot and Courier write each level
of a Maildir++ name in modified UTF-7, so a name with accents or a ``.`` (Maildir++'s own delimiter) survives.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import binascii

#: Hierarchy delimiter of folder names in the store (the IMAP view's).
DELIMITER = "/"
#: Longest folder name the store holds (the ``folders.name`` column).
MAX_NAME = 400


def decode_mutf7(text: str) -> str:
    """Modified UTF-7 to Unicode; a name that is not valid modified UTF-7 is returned as it is."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "&":
            out.append(char)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            return text
        chunk = text[i + 1:end]
        if not chunk:
            out.append("&")
        else:
            data = chunk.replace(",", "/")
            try:
                raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
                out.append(raw.decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return text
        i = end + 1
    return "".join(out)


def encode_mutf7(text: str, extra: str = "") -> str:
    """Unicode to modified UTF-7; characters of ``extra`` (e.g. ``.`` in Maildir++) are encoded too."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in text:
        if 0x20 <= ord(char) <= 0x7E and char not in extra:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def canonical(name: str) -> str | None:
    """The store's form of a folder name, or None for a name the store would refuse (empty level, control
    characters, ``.``/``..`` levels, wildcards, too long)."""
    levels = [level for level in name.split(DELIMITER)]
    if not name or any(not level or level in {".", ".."} for level in levels):
        return None
    if any(ord(c) < 32 or c == "\x7f" or c in "*%" for c in name) or len(name) > MAX_NAME:
        return None
    if levels[0].upper() == "INBOX":
        levels[0] = "INBOX"
    return DELIMITER.join(levels)
