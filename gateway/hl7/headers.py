"""Header fields of the MSSanté messages built from HL7 messages, written as bytes (RFC 5322 2.2, RFC 2047).

The fields are few and known (addresses we validated, a subject from the CDA, codes): each is one line of
text made here rather than by the email package's header objects and policy, which parsed every value again
and cost more than the rest of the message. Nothing a value carries can start a new field: white space runs
(CR and LF included) become one space. Non-ASCII text is written as RFC 2047 encoded words (UTF-8, "B"),
at most 75 characters each and never cutting a character; ASCII words stay as they are, so the subject
convention reads plainly. A line is folded (CRLF and a space, RFC 5322 2.2.3) only beyond 998 characters.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable

#: RFC 5322 2.1.1: a line holds at most 998 characters before its CRLF.
MAX_LINE = 998
#: RFC 2047 2: an encoded word is at most 75 characters; ``=?utf-8?b?`` and ``?=`` take 12 of them, so 60
#: base64 characters carry 45 bytes.
_WORD_BYTES = 45
_PREFIX = b"=?utf-8?b?"


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _encoded_words(text: str) -> list[bytes]:
    """``text`` as encoded words, each holding whole characters."""
    words: list[bytes] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(_PREFIX + binascii.b2a_base64(bytes(chunk), newline=False) + b"?=")
            chunk.clear()
        chunk += encoded
    if chunk:
        words.append(_PREFIX + binascii.b2a_base64(bytes(chunk), newline=False) + b"?=")
    return words


def _needs_encoding(word: str) -> bool:
    """Non-ASCII, control characters, what a reader would take for an encoded word, or a word no line holds."""
    return not word.isascii() or "=?" in word or not word.isprintable() or len(word) > MAX_LINE - 80


def _tokens(value: str) -> list[bytes]:
    """The words of an unstructured value: plain ASCII words as they are, each run of words that needs encoding
    as encoded words (the spaces inside a run are encoded with it: RFC 2047 6.2 drops white space between
    adjacent encoded words)."""
    tokens: list[bytes] = []
    run: list[str] = []
    for word in value.split(" "):
        if _needs_encoding(word):
            run.append(word)
            continue
        if run:
            tokens += _encoded_words(" ".join(run))
            run = []
        tokens.append(word.encode("ascii"))
    if run:
        tokens += _encoded_words(" ".join(run))
    return tokens


def _fold(name: str, tokens: Iterable[bytes], joiner: bytes = b" ") -> bytes:
    """``name: tokens`` on lines of at most :data:`MAX_LINE` characters, folded before a token."""
    lines: list[bytes] = []
    line = name.encode("ascii") + b":"
    first = True
    for token in tokens:
        piece = (b" " if first else joiner) + token
        if not first and len(line) + len(piece) > MAX_LINE:
            lines.append(line + joiner.rstrip())
            line = b" " + token
        else:
            line += piece
        first = False
    lines.append(line)
    return b"\r\n".join(lines) + b"\r\n"


def text(name: str, value: str) -> bytes:
    """An unstructured field (Subject, X-*): one line of text, encoded words where it is not ASCII."""
    value = _one_line(value)
    if not _needs_encoding(value) and len(name) + 2 + len(value) <= MAX_LINE:
        return f"{name}: {value}\r\n".encode("ascii")
    return _fold(name, _tokens(value))


def addresses(name: str, values: Iterable[str]) -> bytes:
    """An address field (From, To, Reply-To...) of bare ASCII addresses, folded between addresses.

    ValueError for an address that is not ASCII: the callers only put validated MSSanté addresses here."""
    cleaned = [_one_line(v).replace(" ", "") for v in values]
    if any(not a.isascii() or not a.isprintable() or "," in a for a in cleaned):
        raise ValueError("An address header takes ASCII addresses only.")
    return _fold(name, (a.encode("ascii") for a in cleaned), b", ")
