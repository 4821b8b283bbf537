"""The arguments of commands valid in any state or before authentication: ID, COMPRESS, AUTHENTICATE, LOGIN.

Each function reads from a :class:`~gateway.imap.proto.lexer.Cursor` placed after the command name and returns
the typed command, or raises :class:`~gateway.imap.proto.errors.ProtocolError` (RFC 9051 6.1, 6.2).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import binascii
import re

from gateway.imap.proto import commands as c
from gateway.imap.proto.lexer import Cursor

_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")
#: RFC 2971 3.3 bounds on ID.
ID_MAX_PAIRS = 30
ID_MAX_FIELD = 30
ID_MAX_VALUE = 1024


def _id(cur: Cursor, tag: str) -> c.Id:
    """ID (RFC 2971 4): ``ID ("name" "value" ...)`` or ``ID NIL``."""
    cur.sp()
    if cur.skip_word(b"NIL"):
        cur.end()
        return c.Id(tag, None)
    cur.expect(b"(", "a parenthesised list or NIL")
    params: list[tuple[str, str | None]] = []
    if not cur.skip(b")"):
        while True:
            field = cur.text(cur.string("a field name"), "ID field")
            cur.sp()
            value_bytes = cur.nstring("a field value or NIL")
            value = None if value_bytes is None else cur.text(value_bytes, "ID value")
            if len(field) > ID_MAX_FIELD or (value is not None and len(value) > ID_MAX_VALUE):
                raise cur.error("ID fields are at most 30 octets and values 1024 (RFC 2971 3.3).")
            params.append((field, value))
            if len(params) > ID_MAX_PAIRS:
                raise cur.error("ID takes at most 30 field-value pairs (RFC 2971 3.3).")
            if cur.skip(b")"):
                break
            cur.sp()
    cur.end()
    return c.Id(tag, tuple(params))


def _compress(cur: Cursor, tag: str) -> c.Compress:
    cur.sp()
    mechanism = cur.atom("a compression mechanism")
    cur.end()
    return c.Compress(tag, mechanism)


def _authenticate(cur: Cursor, tag: str) -> c.Authenticate:
    """AUTHENTICATE mechanism [SP initial-response] (RFC 9051 6.2.2, SASL-IR RFC 4959)."""
    cur.sp()
    mechanism = cur.atom("a SASL mechanism")
    initial: bytes | None = None
    if not cur.at_end():
        cur.sp()
        found = cur.match(_BASE64, "a base64 initial response or '='")
        token = found.group()
        if token == b"=":
            initial = b""
        else:
            try:
                initial = binascii.a2b_base64(token, strict_mode=True)
            except binascii.Error:
                raise cur.error("The initial response is not valid base64.") from None
    cur.end()
    return c.Authenticate(tag, mechanism, initial)


def _login(cur: Cursor, tag: str) -> c.Login:
    cur.sp()
    username = cur.astring_text("a user name")
    cur.sp()
    password = cur.astring_text("a password")
    cur.end()
    return c.Login(tag, username, password)
