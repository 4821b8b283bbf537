"""A message's anatomy, computed once when it is stored: every MIME entity with its byte ranges and fields.

FETCH BODYSTRUCTURE, ENVELOPE, BODY[section] and BINARY[section] are answered from this and from byte ranges of
the stored message, so the server never parses a message again when a client reads it (a poison message nested
10,000 levels deep would otherwise stall every FETCH). The walk is iterative (an explicit stack), linear in the
message size times the nesting depth, and bounded by :mod:`gateway.anatomy.limits`; a message beyond the
bounds gets one flat ``application/octet-stream`` part and a ``refused`` reason. :func:`analyse` never raises.

Entities are kept in one flat list, the message itself first. A multipart entity lists its parts; a
``message/rfc822`` (or ``message/global``) entity lists one child, the embedded message, whose header is the
embedded message's header (RFC 9051 6.4.5 part numbering is resolved in :mod:`gateway.imap.anatomy.render`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from gateway.anatomy import headers as h
from gateway.anatomy.envelope import ENVELOPE_FIELDS, Envelope, envelope
from gateway.anatomy.limits import MAX_BOUNDARY, MAX_DEPTH, MAX_PARTS

#: Transfer encodings under which the body bytes are the entity itself (RFC 2045 6.4: composite types).
IDENTITY_ENCODINGS = frozenset({"7BIT", "8BIT", "BINARY"})
#: Content types whose body is a whole message (RFC 2046 5.2.1, RFC 6532 3.7).
MESSAGE_TYPES = frozenset({("message", "rfc822"), ("message", "global")})
_MIME_FIELDS = ("content-type", "content-transfer-encoding", "content-id", "content-description",
                "content-disposition", "content-language", "content-location", "content-md5")
_MESSAGE_FIELDS = frozenset(_MIME_FIELDS + ENVELOPE_FIELDS)

Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity: its fields as BODYSTRUCTURE shows them and where its header and body are in the message.

    ``header_start``..``body_start`` is the header block with its blank line ([n.MIME], or [n.HEADER] of an
    embedded message); ``body_start``..``body_end`` the body ([n], [n.TEXT]). ``children`` are indices into
    :attr:`Anatomy.parts`; ``envelope`` is set on message entities (the message and embedded messages).
    """

    type: str
    subtype: str
    params: Params = ()
    id: str | None = None
    description: str | None = None
    encoding: str = "7BIT"
    disposition: tuple[str, Params] | None = None
    language: tuple[str, ...] = ()
    location: str | None = None
    md5: str | None = None
    header_start: int = 0
    body_start: int = 0
    body_end: int = 0
    lines: int = 0
    children: tuple[int, ...] = ()
    envelope: Envelope | None = None

    @property
    def size(self) -> int:
        return self.body_end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.type == "multipart"

    @property
    def is_message(self) -> bool:
        return (self.type, self.subtype) in MESSAGE_TYPES and bool(self.children)


@dataclass(frozen=True, slots=True)
class Anatomy:
    """All entities of a message (``parts[0]`` is the message) and, when the bounds were hit, why."""

    parts: tuple[Part, ...]
    size: int
    refused: str | None = None

    @property
    def root(self) -> Part:
        return self.parts[0]


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _count_lines(raw: bytes, start: int, end: int) -> int:
    if end <= start:
        return 0
    lines = raw.count(b"\n", start, end)
    return lines if raw[end - 1] == 0x0A else lines + 1


#: What may follow ``--boundary`` on a delimiter line: ``--`` for the close delimiter, transport padding, then
#: the line's end or the body's (RFC 2046 5.1.1). One constant pattern: a boundary is unique to its message, and
#: compiling a pattern per boundary cost more than finding the delimiters (re's cache holds 512 patterns).
_DELIMITER_END = re.compile(rb"(--)?[ \t]*(?:\r?\n|\Z)")


def _delimiters(raw: bytes, boundary: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each body part between the delimiter lines of ``boundary`` (RFC 2046 5.1.1).

    The line break before a delimiter belongs to the delimiter; a missing close delimiter ends the last part
    at the end of the body; transport padding after a delimiter is allowed. Candidate lines are found by
    ``bytes.find`` of the line break, ``--`` and the boundary, so lines that merely begin like a delimiter cost
    no Python; :data:`_DELIMITER_END` then checks the rest of the line.
    """
    dashes = b"--" + boundary
    needle = b"\n" + dashes
    parts: list[tuple[int, int]] = []
    opened: int | None = None
    if raw.startswith(dashes, start, end):
        first = _DELIMITER_END.match(raw, start + len(dashes), end)
        if first is not None:
            if first.group(1):
                return []
            opened = first.end()
    pos = opened if opened is not None else start
    search = max(pos - 1, start)
    while True:
        found = raw.find(needle, search, end)
        if found < 0:
            break
        match = _DELIMITER_END.match(raw, found + len(needle), end)
        if match is None:  # a line that only begins like a delimiter
            search = found + 1
            continue
        before = found - 1 if found > start and raw[found - 1] == 0x0D else found
        if opened is not None:
            parts.append((opened, max(opened, before)))
            if len(parts) > MAX_PARTS:
                raise _Refused(f"more than {MAX_PARTS} MIME parts")
        if match.group(1):
            opened = None
            break
        opened = pos = match.end()
        search = max(pos - 1, start)
    if opened is not None:
        parts.append((opened, end))
    return parts


@dataclass
class _Node:
    """An entity being built: its fields are filled when its header is read, its children when they are."""

    index: int
    depth: int
    start: int
    end: int
    default: tuple[str, str]
    message: bool
    part: Part | None = None
    children: list[int] | None = None


def _read_entity(raw: bytes, node: _Node) -> tuple[Part, list[tuple[int, int, tuple[str, str], bool]]]:
    """The entity at ``node`` and the ranges of its children ``(start, end, default type, is a message)``."""
    body_start = h.header_end(raw, node.start, node.end)
    if body_start is None:
        raise _Refused("a header block larger than the limit")
    found = h.fields(raw[node.start:body_start], _MESSAGE_FIELDS if node.message else _MIME_FIELDS)
    content_type = h.first(found, "content-type")
    main, params = h.parse_structured(content_type) if content_type else ("", ())
    kind, _, sub = main.lower().partition("/")
    if not kind or not sub or not kind.isascii() or not sub.isascii():
        # RFC 2045 5.2: no (or no valid) Content-Type means text/plain; charset=us-ascii, or message/rfc822
        # inside a multipart/digest (RFC 2046 5.1.5).
        (kind, sub) = node.default
        params = (("charset", "us-ascii"),) if node.default == ("text", "plain") else ()
    encoding = (h.first(found, "content-transfer-encoding") or "7BIT").strip().upper() or "7BIT"
    disposition_value = h.first(found, "content-disposition")
    disposition = None
    if disposition_value:
        dsp, dsp_params = h.parse_structured(disposition_value)
        if dsp:
            disposition = (dsp, dsp_params)
    language_value = h.first(found, "content-language")
    language = tuple(tag.strip() for tag in language_value.split(",") if tag.strip())[:16] if language_value else ()
    children: list[tuple[int, int, tuple[str, str], bool]] = []
    if kind == "multipart":
        boundary = h.param(params, "boundary")
        ranges: list[tuple[int, int]] = []
        if boundary and len(boundary) <= MAX_BOUNDARY:
            ranges = _delimiters(raw, h.to_bytes(boundary), body_start, node.end)
        if not ranges:
            ranges = [(body_start, node.end)]  # no delimiter found: the whole body is the one part
        default = ("message", "rfc822") if sub == "digest" else ("text", "plain")
        children = [(s, e, default, default == ("message", "rfc822")) for s, e in ranges]
        encoding = encoding if encoding in IDENTITY_ENCODINGS else "7BIT"
    elif (kind, sub) in MESSAGE_TYPES:
        if encoding in IDENTITY_ENCODINGS:
            children = [(body_start, node.end, ("text", "plain"), True)]
        else:
            kind, sub = "application", "octet-stream"  # an encoded message cannot be walked by byte range
    lines = _count_lines(raw, body_start, node.end) if kind == "text" or (kind, sub) in MESSAGE_TYPES else 0
    part = Part(
        type=kind, subtype=sub, params=params, id=h.first(found, "content-id"),
        description=h.first(found, "content-description"), encoding=encoding, disposition=disposition,
        language=language, location=h.first(found, "content-location"), md5=h.first(found, "content-md5"),
        header_start=node.start, body_start=body_start, body_end=node.end, lines=lines,
        envelope=envelope(found) if node.message else None,
    )
    return part, children


def _walk(raw: bytes) -> tuple[Part, ...]:
    nodes: list[_Node] = [_Node(0, 0, 0, len(raw), ("text", "plain"), True)]
    stack = [0]
    while stack:
        node = nodes[stack.pop()]
        part, children = _read_entity(raw, node)
        node.part = part
        if children and node.depth + 1 > MAX_DEPTH:
            raise _Refused(f"MIME nesting deeper than {MAX_DEPTH}")
        if len(nodes) + len(children) > MAX_PARTS:
            raise _Refused(f"more than {MAX_PARTS} MIME parts")
        node.children = []
        for start, end, default, message in children:
            child = _Node(len(nodes), node.depth + 1, start, end, default, message)
            nodes.append(child)
            node.children.append(child.index)
        stack.extend(reversed(node.children))
    result = []
    for node in nodes:
        assert node.part is not None and node.children is not None
        result.append(replace(node.part, children=tuple(node.children)) if node.children else node.part)
    return tuple(result)


def _flat(raw: bytes, reason: str) -> Anatomy:
    """The fallback anatomy: the top header if it can be read, then the whole body as one opaque part."""
    try:
        body_start = h.header_end(raw, 0, len(raw))
        if body_start is None:
            body_start, found = 0, []
        else:
            found = h.fields(raw[:body_start], ENVELOPE_FIELDS)
        env = envelope(found)
    except Exception:  # the fallback must not fail
        body_start, env = 0, Envelope()
    part = Part(type="application", subtype="octet-stream", encoding="8BIT", header_start=0,
                body_start=body_start, body_end=len(raw), envelope=env)
    return Anatomy((part,), len(raw), refused=reason)


def analyse(raw: bytes) -> Anatomy:
    """The anatomy of a stored message; within the limits, or flat with ``refused`` set. Never raises."""
    try:
        return Anatomy(_walk(raw), len(raw))
    except _Refused as refused:
        return _flat(raw, refused.reason)
    except Exception as error:  # a stored message must stay readable whatever its bytes
        return _flat(raw, f"unreadable structure ({type(error).__name__})")
