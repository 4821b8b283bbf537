"""FETCH answers from an anatomy: BODYSTRUCTURE, BODY, ENVELOPE wire forms, section byte ranges and BINARY.

The structure is written with an explicit work stack (no recursion). Section numbers are resolved as RFC 9051
6.4.5 says: the parts of a multipart are numbered from 1; a non-multipart message has one part, 1, its body; a
``message/rfc822`` part's numbers continue into the embedded message, whose HEADER and TEXT are named with the
part's number. Sections are returned as byte ranges of the stored message, so a partial FETCH reads only what
it sends; HEADER.FIELDS(.NOT) filters the lines of a header block (bounded by the analysis limit).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from gateway.anatomy.analyse import Anatomy, Part
from gateway.anatomy.envelope import Address, Envelope
from gateway.anatomy.headers import to_bytes
from gateway.anatomy.transfer import UnknownTransferEncoding, decode_transfer
from gateway.imap.proto.fetch import Section

#: Longest string written quoted; longer ones are literals (mirrors the response writer's rule).
_MAX_QUOTED = 1000

Reader = Callable[[int, int], Awaitable[bytes]]


def string(value: str | None, *, utf8: bool = False) -> bytes:
    """An IMAP nstring: NIL, a quoted string, or a literal for CR/LF, 8-bit text (unless UTF8=ACCEPT) or length."""
    if value is None:
        return b"NIL"
    data = to_bytes(value).replace(b"\x00", b"")
    if (len(data) <= _MAX_QUOTED and b"\r" not in data and b"\n" not in data
            and (utf8 or data.isascii())):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def _params(params: Sequence[tuple[str, str]], utf8: bool) -> bytes:
    if not params:
        return b"NIL"
    return b"(" + b" ".join(string(k, utf8=utf8) + b" " + string(v, utf8=utf8) for k, v in params) + b")"


def _addresses(addresses: tuple[Address, ...], utf8: bool) -> bytes:
    if not addresses:
        return b"NIL"
    return b"(" + b"".join(
        b"(" + b" ".join(string(x, utf8=utf8) for x in (a.name, a.adl, a.mailbox, a.host)) + b")"
        for a in addresses) + b")"


def envelope(env: Envelope | None, *, utf8: bool = False) -> bytes:
    """``(date subject from sender reply-to to cc bcc in-reply-to message-id)`` (RFC 9051 7.5.2)."""
    env = env or Envelope()
    return b"(" + b" ".join((
        string(env.date, utf8=utf8), string(env.subject, utf8=utf8),
        _addresses(env.from_, utf8), _addresses(env.sender, utf8), _addresses(env.reply_to, utf8),
        _addresses(env.to, utf8), _addresses(env.cc, utf8), _addresses(env.bcc, utf8),
        string(env.in_reply_to, utf8=utf8), string(env.message_id, utf8=utf8),
    )) + b")"


def _disposition(part: Part, utf8: bool) -> bytes:
    if part.disposition is None:
        return b"NIL"
    kind, params = part.disposition
    return b"(" + string(kind, utf8=utf8) + b" " + _params(params, utf8) + b")"


def _language(part: Part, utf8: bool) -> bytes:
    if not part.language:
        return b"NIL"
    if len(part.language) == 1:
        return string(part.language[0], utf8=utf8)
    return b"(" + b" ".join(string(tag, utf8=utf8) for tag in part.language) + b")"


def _tail(part: Part, extended: bool, utf8: bool) -> bytes:
    """What follows the parts of a multipart, or the fields of a single part, up to and with ``)``."""
    if part.is_multipart:
        out = b" " + string(part.subtype.upper())
        if extended:
            out += b" " + b" ".join((_params(part.params, utf8), _disposition(part, utf8), _language(part, utf8),
                                     string(part.location, utf8=utf8)))
        return out + b")"
    out = b""
    if part.type == "text" or part.is_message:
        out += b" %d" % part.lines
    if extended:
        out += b" " + b" ".join((string(part.md5, utf8=utf8), _disposition(part, utf8), _language(part, utf8),
                                 string(part.location, utf8=utf8)))
    return out + b")"


def _fields(part: Part, utf8: bool) -> bytes:
    return b"(" + b" ".join((
        string(part.type.upper()), string(part.subtype.upper()), _params(part.params, utf8),
        string(part.id, utf8=utf8), string(part.description, utf8=utf8), string(part.encoding),
        b"%d" % part.size))


def body_structure(anatomy: Anatomy, *, extended: bool = True, utf8: bool = False) -> bytes:
    """``BODYSTRUCTURE`` (``extended``) or ``BODY`` of the message (RFC 9051 7.5.2), iteratively."""
    out: list[bytes] = []
    work: list[bytes | int] = [0]
    parts = anatomy.parts
    while work:
        item = work.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        part = parts[item]
        if part.is_multipart:
            work.append(_tail(part, extended, utf8))
            work.extend(reversed(part.children))
            work.append(b"(")
        elif part.is_message:
            inner = parts[part.children[0]]
            work.append(_tail(part, extended, utf8))
            work.append(part.children[0])
            work.append(_fields(part, utf8) + b" " + envelope(inner.envelope, utf8=utf8) + b" ")
        else:
            out.append(_fields(part, utf8) + _tail(part, extended, utf8))
    return b"".join(out)


def locate(anatomy: Anatomy, path: Sequence[int]) -> Part | None:
    """The part a section number names (RFC 9051 6.4.5), the message itself for ``()``; None if there is none."""
    parts = anatomy.parts
    entity: Part | None = parts[0]
    message_level = True
    target = parts[0]
    for number in path:
        if entity is None:
            return None
        if entity.is_multipart:
            if not 1 <= number <= len(entity.children):
                return None
            target = parts[entity.children[number - 1]]
        elif number == 1 and message_level:
            target = entity
        else:
            return None
        if target.is_message:
            entity, message_level = parts[target.children[0]], True
        elif target.is_multipart:
            entity, message_level = target, False
        else:
            entity = None
    return target


def part_paths(anatomy: Anatomy) -> list[tuple[tuple[int, ...], Part]]:
    """Every section number of the message with the part it names, sorted (the inverse of :func:`locate`)."""
    parts = anatomy.parts
    out: list[tuple[tuple[int, ...], Part]] = []
    work: list[tuple[tuple[int, ...], int, bool]] = [((), 0, True)]
    while work:
        prefix, index, message_level = work.pop()
        entity = parts[index]
        if entity.is_multipart:
            targets = [((*prefix, n), child) for n, child in enumerate(entity.children, 1)]
        elif message_level:
            targets = [((*prefix, 1), index)]
        else:
            continue
        for path, target_index in targets:
            target = parts[target_index]
            out.append((path, target))
            if target.is_message:
                work.append((path, target.children[0], True))
            elif target.is_multipart:
                work.append((path, target_index, False))
    out.sort(key=lambda item: item[0])
    return out


@dataclass(frozen=True, slots=True)
class Extract:
    """Where a section's bytes are: one range of the stored message, then an optional header-field filter."""

    start: int
    end: int
    #: Upper-case field names of HEADER.FIELDS / HEADER.FIELDS.NOT; empty: the range as it is.
    fields: tuple[str, ...] = ()
    exclude: bool = False

    @property
    def filtered(self) -> bool:
        return bool(self.fields) or self.exclude

    def window(self, origin: int, count: int) -> tuple[int, int]:
        """The byte range of ``<origin.count>`` of an unfiltered section (RFC 9051 6.4.5 partial)."""
        start = min(self.end, self.start + origin)
        return start, min(self.end, start + count)


def section_extract(anatomy: Anatomy, section: Section) -> Extract | None:
    """The byte range (and filter) of ``BODY[section]``; None when the message has no such part."""
    target = locate(anatomy, section.part)
    if target is None:
        return None
    text = section.text
    if text is None:
        if not section.part:
            return Extract(0, anatomy.size)
        return Extract(target.body_start, target.body_end)
    if text == "MIME":
        if not section.part:
            return None
        return Extract(target.header_start, target.body_start)
    if section.part:
        if not target.is_message:
            return None  # HEADER and TEXT need a message/rfc822 part (RFC 9051 6.4.5)
        message = anatomy.parts[target.children[0]]
    else:
        message = anatomy.parts[0]
    if text == "TEXT":
        return Extract(message.body_start, message.body_end)
    if text == "HEADER":
        return Extract(message.header_start, message.body_start)
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return Extract(message.header_start, message.body_start, tuple(f.upper() for f in section.fields),
                       exclude=text == "HEADER.FIELDS.NOT")
    return None


def filter_header(block: bytes, fields: Sequence[str], exclude: bool) -> bytes:
    """The fields of ``block`` named (or, ``exclude``, not named) in ``fields``, folding kept, then CRLF."""
    names = {f.upper() for f in fields}
    out: list[bytes] = []
    keep = False
    for line in block.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        colon = line.find(b":")
        name = line[:colon].strip().decode("ascii", "replace").upper() if colon > 0 else None
        keep = name is not None and ((name in names) != exclude)
        if keep:
            out.append(line)
    out.append(b"\r\n")
    return b"".join(out)


async def section_bytes(anatomy: Anatomy, section: Section, read: Reader) -> bytes | None:
    """``BODY[section]`` read through ``read(start, end)`` (one range); None when the part does not exist."""
    extract = section_extract(anatomy, section)
    if extract is None:
        return None
    data = await read(extract.start, extract.end) if extract.end > extract.start else b""
    if extract.filtered:
        return filter_header(data, extract.fields, extract.exclude)
    return data


def binary_part(anatomy: Anatomy, part: Sequence[int]) -> tuple[Part, int, int] | None:
    """The part ``BINARY[part]`` names and its encoded body range; None when there is no such part."""
    target = locate(anatomy, part)
    if target is None:
        return None
    if not part:
        return target, 0, anatomy.size  # BINARY[]: the whole message, as stored (RFC 3516 4.2)
    return target, target.body_start, target.body_end


async def binary_bytes(anatomy: Anatomy, part: Sequence[int], read: Reader) -> bytes | None:
    """``BINARY[part]``: the part's content with its transfer encoding removed (RFC 3516 4.2).

    Raises :class:`UnknownTransferEncoding` for an encoding other than 7bit, 8bit, binary, base64 and
    quoted-printable; None when the part does not exist.
    """
    located = binary_part(anatomy, part)
    if located is None:
        return None
    target, start, end = located
    if part and target.encoding.upper() not in ("7BIT", "8BIT", "BINARY", "BASE64", "QUOTED-PRINTABLE"):
        raise UnknownTransferEncoding(target.encoding)
    data = await read(start, end) if end > start else b""
    return decode_transfer(data, target.encoding) if part else data


async def binary_size(anatomy: Anatomy, part: Sequence[int], read: Reader) -> int | None:
    """``BINARY.SIZE[part]`` (RFC 3516 4.3): the decoded size; identity encodings need no read."""
    located = binary_part(anatomy, part)
    if located is None:
        return None
    target, start, end = located
    if not part or target.encoding.upper() in ("7BIT", "8BIT", "BINARY"):
        return end - start
    data = await binary_bytes(anatomy, part, read)
    return 0 if data is None else len(data)
