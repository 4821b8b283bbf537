"""A MIME body's content under its Content-Transfer-Encoding (RFC 2045 6): for SEARCH text and FETCH BINARY.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import binascii


class UnknownTransferEncoding(Exception):
    """BINARY of a part whose Content-Transfer-Encoding we cannot decode: ``NO [UNKNOWN-CTE]`` (RFC 3516 4.3)."""

    def __init__(self, encoding: str) -> None:
        super().__init__(f"The part's content transfer encoding {encoding!r} is not one this server decodes.")
        self.encoding = encoding


_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64 = bytes(b for b in range(256) if b not in _BASE64)


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """The content of a body under its Content-Transfer-Encoding (RFC 2045 6), lenient with broken base64."""
    encoding = encoding.upper()
    if encoding in ("7BIT", "8BIT", "BINARY", ""):
        return data
    if encoding == "BASE64":
        clean = data.translate(None, _NOT_BASE64)
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        clean += b"=" * (-len(clean) % 4)
        try:
            return binascii.a2b_base64(clean)
        except binascii.Error:
            return b""
    if encoding == "QUOTED-PRINTABLE":
        return binascii.a2b_qp(data)
    raise UnknownTransferEncoding(encoding)
