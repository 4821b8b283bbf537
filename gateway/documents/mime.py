"""A bounded MIME walker: every leaf part of a message, decoded, with caps on depth, count and size.

Python's ``email`` parser builds the whole tree recursively and decodes on demand with no limit, so a hostile
message (thousands of nested multiparts, a 50 MB base64 attachment) costs what the sender wants. Here the
structure is walked iteratively over offsets into the original bytes, limits are checked *before* work is
done (a part is counted when its delimiter is found, a base64 body's decoded size is estimated before it is
decoded), and only header blocks go to the ``email`` package, which handles RFC 2047 and RFC 2231 parameters.
"""

from __future__ import annotations

import binascii
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser

from gateway.documents.errors import MimeRefused
from gateway.documents.limits import MIME, MimeLimits

#: compat32 is several times faster than policy.default on header blocks and enough here: parameters (RFC 2231)
#: are decoded by Message.get_param/get_filename, and RFC 2047 file names by :func:`_filename`.
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)
#: RFC 2046 section 5.1.1: boundaries are at most 70 characters; leave room for careless writers.
_MAX_BOUNDARY = 200
_MAX_FILENAME = 255


@dataclass(frozen=True)
class Part:
    """A leaf part: its position (``path`` as IMAP numbers it, roughly), type, name and decoded bytes."""

    path: str
    depth: int
    content_type: str
    filename: str | None
    disposition: str | None
    charset: str | None
    transfer_encoding: str
    data: bytes

    @property
    def is_attachment(self) -> bool:
        return self.disposition == "attachment" or self.filename is not None


@dataclass
class _Budget:
    limits: MimeLimits
    parts: int = 0
    decoded: int = 0

    def count_part(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise MimeRefused("too-many-parts", f"The message has more than {self.limits.max_parts} MIME parts; "
                                                "it is refused rather than read.")

    def spend(self, size: int) -> None:
        if size > self.limits.max_part_decoded:
            raise MimeRefused("part-too-large", f"A part decodes to about {size} bytes, over the limit of "
                                                f"{self.limits.max_part_decoded} bytes for one part.")
        self.decoded += size
        if self.decoded > self.limits.max_decoded_total:
            raise MimeRefused("too-large", f"The message's parts decode to more than {self.limits.max_decoded_total}"
                                           " bytes together; it is refused rather than read.")


def walk(raw: bytes, limits: MimeLimits = MIME) -> list[Part]:
    """Every leaf part of ``raw``; raises :class:`MimeRefused` (and nothing else) when a limit is crossed."""
    return list(iter_parts(raw, limits))


def iter_parts(raw: bytes, limits: MimeLimits = MIME) -> Iterator[Part]:
    """Yield leaf parts depth first; the refusal, if any, comes before any part past a limit is decoded."""
    if len(raw) > limits.max_message_bytes:
        raise MimeRefused("message-too-large", f"The message is {len(raw)} bytes, over the limit of "
                                               f"{limits.max_message_bytes} bytes for reading its attachments.")
    budget = _Budget(limits)
    budget.count_part()
    # (buffer, start, end, depth, path); explicit stack, never recursion.
    stack: list[tuple[bytes, int, int, int, str]] = [(raw, 0, len(raw), 0, "")]
    while stack:
        buf, start, end, depth, path = stack.pop()
        try:
            headers, body_start = _headers(buf, start, end, limits)
        except MimeRefused:
            raise
        except Exception as error:  # the email package on hostile headers: never leak its traceback
            raise MimeRefused("bad-header", f"A part's header could not be read ({type(error).__name__}).") from None
        content_type = headers.get_content_type()
        maintype = headers.get_content_maintype()
        encoding = str(headers.get("content-transfer-encoding", "7bit")).strip().lower()
        if maintype == "multipart":
            if depth + 1 > limits.max_depth:
                raise MimeRefused("too-deep", f"MIME parts are nested deeper than {limits.max_depth} levels; "
                                              "the message is refused rather than read.")
            boundary = headers.get_param("boundary")
            if not isinstance(boundary, str) or not boundary or len(boundary) > _MAX_BOUNDARY:
                raise MimeRefused("bad-boundary", "A multipart part has no usable boundary parameter.")
            children = _split(buf, body_start, end, boundary.encode("utf-8", "replace"), budget)
            for index in range(len(children), 0, -1):
                child_start, child_end = children[index - 1]
                stack.append((buf, child_start, child_end, depth + 1, f"{path}.{index}" if path else str(index)))
            continue
        if content_type == "message/rfc822":
            if depth + 1 > limits.max_depth:
                raise MimeRefused("too-deep", f"Forwarded messages are nested deeper than {limits.max_depth} levels;"
                                              " the message is refused rather than read.")
            inner = _decode(buf, body_start, end, encoding, budget) if encoding in {"base64", "quoted-printable"} \
                else None
            budget.count_part()
            inner_path = f"{path}.1" if path else "1"
            if inner is None:
                stack.append((buf, body_start, end, depth + 1, inner_path))
            else:
                stack.append((inner, 0, len(inner), depth + 1, inner_path))
            continue
        data = _decode(buf, body_start, end, encoding, budget)
        yield Part(path=path or "1", depth=depth, content_type=content_type, filename=_filename(headers),
                   disposition=headers.get_content_disposition(), charset=headers.get_content_charset(),
                   transfer_encoding=encoding, data=data)


def _headers(buf: bytes, start: int, end: int, limits: MimeLimits) -> tuple[Message, int]:
    """The header block of the entity at ``start``, and where its body starts."""
    window = min(end, start + limits.max_header_bytes + 4)
    if buf.startswith(b"\r\n", start, end):
        return _parse_headers(b""), start + 2
    if buf.startswith(b"\n", start, end):
        return _parse_headers(b""), start + 1
    crlf = buf.find(b"\r\n\r\n", start, window)
    lf = buf.find(b"\n\n", start, window)
    candidates = [(crlf, 4), (lf, 2)]
    found = [(pos, size) for pos, size in candidates if pos >= 0]
    if not found:
        if window < end:
            raise MimeRefused("header-too-large", f"A part's header is longer than {limits.max_header_bytes} bytes.")
        return _parse_headers(buf[start:end]), end
    pos, size = min(found)
    return _parse_headers(buf[start:pos + size // 2]), pos + size


def _parse_headers(block: bytes) -> Message:
    return _HEADER_PARSER.parsebytes(block)


def _split(buf: bytes, start: int, end: int, boundary: bytes, budget: _Budget) -> list[tuple[int, int]]:
    """Body parts of a multipart between ``start`` and ``end`` (RFC 2046 section 5.1.1), counted as found."""
    delimiter = b"--" + boundary
    marker = b"\n" + delimiter
    parts: list[tuple[int, int]] = []
    if buf.startswith(delimiter, start, end):
        found = start
    else:
        found = _next_delimiter(buf, marker, start, end)
    while found >= 0:
        after = found + len(delimiter)
        if buf.startswith(b"--", after, end):  # close delimiter
            break
        line_end = buf.find(b"\n", after, end)
        if line_end < 0:
            break
        content_start = line_end + 1
        following = _next_delimiter(buf, marker, line_end, end)
        content_end = end if following < 0 else following - 1
        if content_end > content_start and buf[content_end - 1:content_end] == b"\r":
            content_end -= 1
        budget.count_part()
        parts.append((content_start, max(content_start, content_end)))
        found = following
    return parts


def _next_delimiter(buf: bytes, marker: bytes, start: int, end: int) -> int:
    """Position of the next delimiter line's ``--`` (skipping lines that only start like one), or -1."""
    position = start
    while True:
        hit = buf.find(marker, position, end)
        if hit < 0:
            return -1
        after = hit + len(marker)
        line_end = buf.find(b"\n", after, end)
        rest = buf[after:line_end if line_end >= 0 else end]
        if rest.startswith(b"--") or not rest.strip(b" \t\r"):
            return hit + 1
        position = after


def _decode(buf: bytes, start: int, end: int, encoding: str, budget: _Budget) -> bytes:
    """The decoded body; its size is charged to the budget before any decoding that could blow it up."""
    if encoding == "base64":
        newlines = buf.count(b"\n", start, end)
        budget.spend(max(0, end - start - 2 * newlines) * 3 // 4)
        try:
            return binascii.a2b_base64(buf[start:end])
        except (binascii.Error, ValueError):
            raise MimeRefused("bad-base64", "A base64 part is malformed (bad padding or length).") from None
    budget.spend(end - start)  # quoted-printable and identity encodings never grow
    if encoding == "quoted-printable":
        try:
            return binascii.a2b_qp(buf[start:end])
        except (binascii.Error, ValueError):
            raise MimeRefused("bad-quoted-printable", "A quoted-printable part is malformed.") from None
    return buf[start:end]


def _filename(headers: Message) -> str | None:
    """The part's file name (RFC 2231 and RFC 2047 decoded), without control characters or directories."""
    try:
        name = headers.get_filename()
    except Exception:  # malformed parameters: treat as unnamed rather than fail the whole message
        return None
    if not name:
        return None
    name = str(name)
    if "=?" in name:  # RFC 2047 encoded words, which many mailers use for file names despite RFC 2231
        with contextlib.suppress(Exception):  # a malformed encoded word: keep the raw text
            name = str(make_header(decode_header(name)))
    name = "".join(ch for ch in name if ch.isprintable())
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return name[:_MAX_FILENAME] or None
