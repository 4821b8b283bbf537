"""Modified UTF-7 for mailbox names (RFC 3501 5.1.3), strict in what it accepts.

Printable US-ASCII stands for itself except ``&``, written ``&-``; other characters are UTF-16 in modified
base64 (``,`` for ``/``, no padding) between ``&`` and ``-``. Decoding rejects anything a correct encoder
would not produce (8-bit or control bytes, a bare ``&``, bad base64, non-zero padding bits, a shifted run that
only holds printable ASCII, unpaired surrogates), so one name has one spelling.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import binascii
import re

_SHIFT = re.compile(rb"&([A-Za-z0-9+,]*)-")
_PRINTABLE = re.compile(rb"[\x20-\x25\x27-\x7e]*")
_NEEDS_SHIFT = re.compile(r"&|[^\x20-\x7e]+")
_DIRECT = re.compile(r"[\x20-\x7e]")


def _decode_run(chunk: bytes) -> str:
    if not chunk:
        return "&"
    if len(chunk) % 4 == 1:
        raise ValueError("a shifted sequence has a length base64 cannot produce")
    padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
    try:
        raw = binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error:
        raise ValueError("bad base64 in a shifted sequence") from None
    if binascii.b2a_base64(raw, newline=False).rstrip(b"=") != chunk.replace(b",", b"/"):
        raise ValueError("non-zero padding bits in a shifted sequence")
    if len(raw) % 2:
        raise ValueError("a shifted sequence is not whole UTF-16 units")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError:
        raise ValueError("an unpaired surrogate in a shifted sequence") from None
    if _DIRECT.search(text):
        raise ValueError("printable ASCII must not be shifted")
    return text


def decode(data: bytes) -> str:
    """Modified UTF-7 bytes to text; ``ValueError`` for anything not strictly well formed."""
    if _PRINTABLE.fullmatch(data):
        return data.decode("ascii")
    pieces: list[str] = []
    pos = 0
    for shifted in _SHIFT.finditer(data):
        direct = data[pos : shifted.start()]
        if not _PRINTABLE.fullmatch(direct):
            raise ValueError("8-bit, control or stray '&' characters")
        pieces.append(direct.decode("ascii"))
        pieces.append(_decode_run(shifted.group(1)))
        pos = shifted.end()
    tail = data[pos:]
    if not _PRINTABLE.fullmatch(tail):
        raise ValueError("8-bit, control or stray '&' characters")
    pieces.append(tail.decode("ascii"))
    return "".join(pieces)


def _encode_run(match: re.Match[str]) -> str:
    run = match.group()
    if run == "&":
        return "&-"
    encoded = binascii.b2a_base64(run.encode("utf-16-be", "surrogatepass"), newline=False)
    return "&" + encoded.rstrip(b"=").replace(b"/", b",").decode("ascii") + "-"


def encode(text: str) -> bytes:
    """Text to modified UTF-7 bytes."""
    return _NEEDS_SHIFT.sub(_encode_run, text).encode("ascii")
