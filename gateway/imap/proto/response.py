"""Server responses as bytes (RFC 9051 7, 9 ``response``): strings, lists, status lines, continuations.

A string is sent as an atom when it can be (astring contexts), else quoted, else as a literal: a value with
CR, LF or NUL, with 8-bit bytes before UTF8=ACCEPT (RFC 6855 3), or longer than
:data:`~gateway.imap.proto.limits.MAX_QUOTED_OUT` characters can only travel as a literal (RFC 9051 4.3).
:class:`Writer` turns nested Python values (lists, ``None`` for NIL, numbers, :class:`Atom`) into one
response without recursion.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Union

from gateway.imap.proto import utf7
from gateway.imap.proto.limits import MAX_QUOTED_OUT

_ATOM_OUT = re.compile(rb"[^\x00-\x20\x7f-\xff(){%*\"\\\]]+")
_QUOTABLE_ASCII = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")
_QUOTABLE_UTF8 = re.compile(rb"[^\x00\r\n]*")
_ESCAPE = re.compile(rb'(["\\])')
_LINE_BREAKS = re.compile(r"[\r\n\x00]+")
CRLF = b"\r\n"


class Atom(str):
    """Text written as is (an atom, a flag, a pre-formatted number or section label)."""

    __slots__ = ()


class Raw(bytes):
    """Bytes already in wire form (a BODYSTRUCTURE or ENVELOPE rendered elsewhere), written as is."""

    __slots__ = ()


Value = Union[None, int, str, bytes, Atom, Raw, "list[Value]", "tuple[Value, ...]"]


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _quotable(data: bytes, utf8: bool) -> bool:
    if len(data) > MAX_QUOTED_OUT:
        return False
    pattern = _QUOTABLE_UTF8 if utf8 else _QUOTABLE_ASCII
    if not pattern.fullmatch(data):
        return False
    if utf8 and not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def quoted(value: str | bytes) -> bytes:
    """A quoted string; the caller knows the value is quotable (use :func:`string` otherwise)."""
    data = _as_bytes(value)
    if b'"' in data or b"\\" in data:
        data = _ESCAPE.sub(rb"\\\1", data)
    return b'"' + data + b'"'


def literal(value: str | bytes, *, binary: bool = False) -> bytes:
    """A literal ``{n}`` (``~{n}`` for BINARY content holding NUL, RFC 3516 4.3)."""
    data = _as_bytes(value)
    prefix = b"~{" if binary else b"{"
    return prefix + str(len(data)).encode("ascii") + b"}\r\n" + data


def string(value: str | bytes, *, utf8: bool = False) -> bytes:
    """A ``string``: quoted when possible, else a literal."""
    data = _as_bytes(value)
    return quoted(data) if _quotable(data, utf8) else literal(data)


def astring(value: str | bytes, *, utf8: bool = False) -> bytes:
    """An ``astring``: an atom when possible (never ``NIL``, which readers of nstring would confuse)."""
    data = _as_bytes(value)
    if _ATOM_OUT.fullmatch(data) and data.upper() != b"NIL":
        return data
    return string(data, utf8=utf8)


def nstring(value: str | bytes | None, *, utf8: bool = False) -> bytes:
    """An ``nstring``: NIL or a string."""
    return b"NIL" if value is None else string(value, utf8=utf8)


def flag_list(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Junk)``; flags are atoms by construction (the parser accepted only atoms)."""
    return b"(" + " ".join(flags).encode("ascii") + b")"


def mailbox(name: str, utf8: bool = False) -> bytes:
    """A mailbox name: modified UTF-7 unless UTF8=ACCEPT is enabled (RFC 3501 5.1.3, RFC 6855 3)."""
    if name.upper() == "INBOX":
        return b"INBOX"
    data = name.encode("utf-8") if utf8 else utf7.encode(name)
    return astring(data, utf8=utf8)


def _clean_text(text: str) -> bytes:
    """Human-readable text on one line (RFC 9051 9 ``text``: no CR, LF)."""
    return _LINE_BREAKS.sub(" ", text).encode("utf-8")


def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """``tag OK|NO|BAD [code] text`` (RFC 9051 7.1)."""
    head = f"{tag} {status} "
    if code:
        head += f"[{code}] "
    return head.encode("ascii", "replace") + _clean_text(text or status) + CRLF


def untagged(text: str | bytes) -> bytes:
    """``* text``; ``text`` already in wire form (build it with :class:`Writer` when it has strings)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return b"* " + data + CRLF


def untagged_status(status: str, text: str, code: str | None = None) -> bytes:
    """``* OK|NO|BAD|BYE|PREAUTH [code] text`` (RFC 9051 7.1)."""
    return tagged("*", status, text, code)


def continuation(text: str | bytes = "Ready") -> bytes:
    """``+ text`` (RFC 9051 7.6); bytes are sent as is (a base64 SASL challenge)."""
    data = text if isinstance(text, bytes) else _clean_text(text)
    return b"+ " + data + CRLF


class Writer:
    """Builds one response from pieces; nested lists become parenthesised lists, without recursion.

    ``None`` is NIL, ``int`` a number, :class:`Atom` as is, :class:`Raw` as is, ``str``/``bytes`` an nstring
    (quoted or literal), lists and tuples a parenthesised list separated by spaces.
    """

    __slots__ = ("_parts", "utf8")

    def __init__(self, utf8: bool = False) -> None:
        self._parts: list[bytes] = []
        self.utf8 = utf8

    def raw(self, data: bytes) -> Writer:
        """Append wire bytes."""
        self._parts.append(data)
        return self

    def atom(self, text: str) -> Writer:
        """Append an atom or pre-formatted token."""
        self._parts.append(text.encode("ascii"))
        return self

    def sp(self) -> Writer:
        """Append one space."""
        self._parts.append(b" ")
        return self

    def number(self, value: int) -> Writer:
        """Append a number."""
        self._parts.append(str(value).encode("ascii"))
        return self

    def string(self, value: str | bytes | None) -> Writer:
        """Append an nstring."""
        self._parts.append(nstring(value, utf8=self.utf8))
        return self

    def astring(self, value: str | bytes) -> Writer:
        """Append an astring."""
        self._parts.append(astring(value, utf8=self.utf8))
        return self

    def mailbox(self, name: str) -> Writer:
        """Append a mailbox name."""
        self._parts.append(mailbox(name, self.utf8))
        return self

    def value(self, item: Value) -> Writer:
        """Append a nested value (see the class docstring)."""
        out = self._parts
        # One list per open parenthesis level with the position reached in it; the bottom level is the item.
        iterators: list[list[Value]] = [[item]]
        positions = [0]
        while iterators:
            level = iterators[-1]
            index = positions[-1]
            if index == len(level):
                iterators.pop()
                positions.pop()
                if iterators:
                    out.append(b")")
                continue
            positions[-1] = index + 1
            if index and len(iterators) > 1:
                out.append(b" ")
            element = level[index]
            if isinstance(element, (list, tuple)):
                out.append(b"(")
                iterators.append(list(element))
                positions.append(0)
            elif element is None:
                out.append(b"NIL")
            elif isinstance(element, bool):
                raise TypeError("booleans have no IMAP form")
            elif isinstance(element, int):
                out.append(str(element).encode("ascii"))
            elif isinstance(element, Raw):
                out.append(bytes(element))
            elif isinstance(element, Atom):
                out.append(element.encode("ascii"))
            else:
                out.append(nstring(element, utf8=self.utf8))
        return self

    def getvalue(self) -> bytes:
        """The bytes built so far."""
        return b"".join(self._parts)

    def line(self) -> bytes:
        """An untagged response line: ``* `` + the bytes built + CRLF."""
        return b"* " + self.getvalue() + CRLF
