"""Header blocks read without the standard library's ``email`` package: bounded, linear, never raising.

The analysis needs where a header block ends, a few unfolded field values, the ``type/subtype; a=b`` shape of
Content-Type and Content-Disposition (RFC 2045 5.1, RFC 2183) and RFC 2047 encoded words decoded for SEARCH and
SORT. Values are ``str`` decoded from UTF-8 with ``surrogateescape``, so the original bytes come back exactly
with :func:`to_bytes` (RFC 6532 allows UTF-8 in headers; anything else is kept byte for byte).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterable

from gateway.anatomy.limits import MAX_HEADER, MAX_PARAMS

_BLANK = re.compile(rb"\n\r?\n")
_FIELD_START = re.compile(rb"[!-9;-~]+[ \t]*:")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]{0,1000})\?=")
_WORD_GAP = re.compile(r"(\?=)[ \t\r\n]+(=\?)")


def to_str(data: bytes) -> str:
    """Header bytes as text that converts back to the same bytes."""
    return data.decode("utf-8", "surrogateescape")


def to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def clean(text: str) -> str:
    """Text without the undecodable bytes kept by :func:`to_str`, for search and sort columns."""
    return text.encode("utf-8", "replace").decode("utf-8", "replace").replace("\x00", "")


def header_end(raw: bytes, start: int, end: int) -> int | None:
    """Offset just after the blank line closing the header block at ``start`` (RFC 5322 2.1), ``end`` if none.

    An entity whose first line is not a header field has an empty header (its body starts at ``start``).
    None when the block would be larger than :data:`MAX_HEADER`: the caller falls back to a flat part.
    """
    if raw.startswith(b"\r\n", start) and start + 2 <= end:
        return start + 2
    if raw.startswith(b"\n", start) and start + 1 <= end:
        return start + 1
    if not _FIELD_START.match(raw, start, min(end, start + 1000)):
        return start  # the entity starts with its body: a first line that is not a field has no header
    limit = min(end, start + MAX_HEADER)
    match = _BLANK.search(raw, start, limit)
    if match is not None:
        return match.end()
    if end - start > MAX_HEADER:
        return None
    return end


def fields(block: bytes, wanted: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """``(lower-case name, unfolded value)`` of the fields of a header block, in order.

    ``wanted`` (lower-case names) keeps only those fields; lines that are not fields (no colon) are skipped.
    Unfolding removes the line breaks before continuation whitespace (RFC 5322 2.2.3).
    """
    keep = None if wanted is None else frozenset(wanted)
    result: list[tuple[str, str]] = []
    name: str | None = None
    value: list[bytes] = []
    for line in block.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                value.append(line.rstrip(b"\r"))
            continue
        if name is not None:
            result.append((name, to_str(b"".join(value)).strip()))
            name = None
        colon = line.find(b":")
        if colon <= 0:
            continue
        candidate = line[:colon].strip().decode("ascii", "replace").lower()
        if keep is not None and candidate not in keep:
            continue
        name, value = candidate, [line[colon + 1:].rstrip(b"\r")]
    if name is not None:
        result.append((name, to_str(b"".join(value)).strip()))
    return result


def first(found: list[tuple[str, str]], name: str) -> str | None:
    for key, value in found:
        if key == name:
            return value
    return None


def _decode_word(charset: str, encoding: str, text: str) -> str | None:
    charset = charset.split("*", 1)[0]  # RFC 2231 5: a language suffix
    try:
        if encoding in "bB":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = binascii.a2b_qp(text.encode("ascii", "replace"), header=True)
        codec = codecs.lookup(charset).name
    except (LookupError, ValueError, binascii.Error):
        return None
    return data.decode(codec, "replace")


def decode_words(value: str) -> str:
    """``value`` with its RFC 2047 encoded words decoded; whitespace between two encoded words dropped (6.2).

    An encoded word in an unknown charset or with broken encoding stays as it is.
    """
    if "=?" not in value:
        return value
    value = _WORD_GAP.sub(r"\1\2", value)

    def replace(match: re.Match[str]) -> str:
        decoded = _decode_word(match.group(1), match.group(2), match.group(3))
        return match.group(0) if decoded is None else decoded

    return _ENCODED_WORD.sub(replace, value)


def skip_cfws(value: str, i: int) -> int:
    """Index after whitespace and comments (nested, counted without recursion) from ``i`` (RFC 5322 3.2.2)."""
    n = len(value)
    while i < n:
        c = value[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth = 0
            while i < n:
                c = value[i]
                if c == "\\":
                    i += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            break
    return i


def quoted(value: str, i: int) -> tuple[str, int]:
    """The content of the quoted string opening at ``value[i]`` and the index after it (unterminated: to the end)."""
    out: list[str] = []
    i += 1
    n = len(value)
    while i < n:
        c = value[i]
        if c == "\\" and i + 1 < n:
            out.append(value[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), n


_TSPECIALS = frozenset('()<>@,;:\\"/[]?= \t\r\n')


def _token(value: str, i: int, stop: frozenset[str] = _TSPECIALS) -> tuple[str, int]:
    start = i
    n = len(value)
    while i < n and value[i] not in stop:
        i += 1
    return value[start:i], i


def parse_structured(value: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``("type/subtype" or "attachment", params)`` from a Content-Type or Content-Disposition value.

    Lenient: a value without a ``/`` gives only its first token; parameters without ``=`` are skipped; at most
    :data:`MAX_PARAMS` are kept. Parameter names and values are kept as written (RFC 2231 continuations are
    not joined: clients read them from BODYSTRUCTURE themselves).
    """
    i = skip_cfws(value, 0)
    main, i = _token(value, i)
    i = skip_cfws(value, i)
    if i < len(value) and value[i] == "/":
        i = skip_cfws(value, i + 1)
        sub, i = _token(value, i)
        main = f"{main}/{sub}"
    params: list[tuple[str, str]] = []
    n = len(value)
    while i < n and len(params) < MAX_PARAMS:
        semi = value.find(";", i)
        if semi < 0:
            break
        i = skip_cfws(value, semi + 1)
        name, i = _token(value, i)
        i = skip_cfws(value, i)
        if not name or i >= n or value[i] != "=":
            continue
        i = skip_cfws(value, i + 1)
        if i < n and value[i] == '"':
            text, i = quoted(value, i)
        else:
            text, i = _token(value, i, frozenset(' \t\r\n;()"'))
        params.append((name, text))
    return main, tuple(params)


def param(params: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in params:
        if key.lower() == name:
            return value
    return None
