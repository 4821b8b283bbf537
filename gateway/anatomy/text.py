"""What SEARCH and SORT compare, computed with the anatomy: decoded, case-folded, bounded text.

SEARCH TEXT / BODY look for a substring in the decoded header and text parts (RFC 9051 6.4.4: case-insensitive
substring); FROM/TO/CC/BCC/SUBJECT in decoded header fields; SORT (RFC 5256 3) and SORT=DISPLAY (RFC 5957) use
the base subject, the first address's mailbox or display name and the sent date; THREAD=REFERENCES (RFC 5256
4) the message-id and references. Text is case-folded (the i;unicode-casemap idea) and kept to
:data:`MAX_TEXT` characters per message.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import codecs
import functools
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from gateway.anatomy import headers as h
from gateway.anatomy.analyse import Anatomy, Part
from gateway.anatomy.envelope import Address
from gateway.anatomy.limits import MAX_FIELD, MAX_HEADER, MAX_TEXT
from gateway.anatomy.transfer import UnknownTransferEncoding, decode_transfer

_SPACES = re.compile(r"\s+")
_MSG_ID = re.compile(r"<[^<>\s]{1,500}>")
_TAGS = re.compile(r"<[^<>]{0,2000}>")
_TRAILER = re.compile(r"(?:\s*\(fwd\))+\s*$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\]\s*"
_LEADER = re.compile(rf"^(?:{_BLOB})*(?:re|fwd?)\s*(?:{_BLOB})?:\s*", re.IGNORECASE)
_LEADING_BLOB = re.compile(rf"^{_BLOB}")


@dataclass(frozen=True, slots=True)
class SearchFields:
    """The searchable and sortable values of one message (all text case-folded)."""

    subject: str = ""
    from_: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    sort_subject: str = ""
    sort_from: str = ""
    sort_to: str = ""
    sort_cc: str = ""
    display_from: str = ""
    display_to: str = ""
    sent_at: datetime | None = None
    message_id: str | None = None
    references: str = ""
    header: str = ""
    body: str = ""


def fold(text: str) -> str:
    """The form SEARCH compares: case-folded, without NUL (which PostgreSQL text cannot hold)."""
    return h.clean(text).casefold()


def base_subject(subject: str) -> str:
    """The RFC 5256 2.1 base subject: no ``Re:``/``Fwd:`` leaders, ``[blob]``s, ``(fwd)`` trailers or ``[fwd: ]``."""
    text = _SPACES.sub(" ", h.decode_words(subject)).strip()
    for _ in range(len(text) + 1):  # every round removes something or stops: bounded by the length
        before = text
        text = _TRAILER.sub("", text).strip()
        while True:
            stripped = _LEADER.sub("", text, count=1)
            blob = _LEADING_BLOB.sub("", stripped, count=1)
            if blob and blob != stripped:
                stripped = blob
            if stripped == text:
                break
            text = stripped.strip()
        if text.lower().startswith("[fwd:") and text.endswith("]"):
            text = text[5:-1].strip()
        if text == before:
            break
    return text


def _first_mailbox(addresses: tuple[Address, ...]) -> Address | None:
    for address in addresses:
        if not address.is_group_marker:
            return address
    return None


def _display(addresses: tuple[Address, ...]) -> str:
    """RFC 5957 3: the first address's decoded display name, or its addr-spec when it has none."""
    address = _first_mailbox(addresses)
    if address is None:
        return ""
    name = h.decode_words(address.name).strip() if address.name else ""
    return name or address.addr_spec


def _sent_at(value: str | None) -> datetime | None:
    if not value:
        return None
    return _parsed_date(value[:200])


@functools.lru_cache(maxsize=256)
def _parsed_date(value: str) -> datetime | None:
    """A Date field in UTC (None when unreadable); kept for the last few values, since the messages of one
    second mostly share the Date the submission server wrote (and parsing one costs more than the rest of the
    header fields' keys)."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # RFC 5322 -0000: no zone information, taken as UTC
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _charset(part: Part) -> str:
    for key, value in part.params:
        if key.lower() == "charset":
            try:
                name = codecs.lookup(value.strip()).name
            except LookupError:
                return "utf-8"
            return "utf-8" if name == "ascii" else name
    return "utf-8"


def _header_text(raw: bytes, part: Part) -> str:
    block = raw[part.header_start:min(part.body_start, part.header_start + MAX_HEADER)]
    return "\n".join(f"{name}: {h.decode_words(value)}" for name, value in h.fields(block))


def _part_text(raw: bytes, part: Part, budget: int) -> str:
    data = raw[part.body_start:min(part.body_end, part.body_start + budget * 4 + 4)]
    try:
        content = decode_transfer(data, part.encoding)
    except UnknownTransferEncoding:
        content = data
    text = content.decode(_charset(part), "replace")
    if part.subtype == "html":
        text = _SPACES.sub(" ", html.unescape(_TAGS.sub(" ", text)))
    return text


def _body_text(raw: bytes, anatomy: Anatomy) -> str:
    """Decoded text parts and embedded message headers, in part order, up to :data:`MAX_TEXT` characters."""
    pieces: list[str] = []
    budget = MAX_TEXT
    work = [0]
    parts = anatomy.parts
    while work and budget > 0:
        index = work.pop()
        part = parts[index]
        if index != 0 and part.envelope is not None:
            piece = _header_text(raw, part)
        elif part.type == "text" and not part.children:
            piece = _part_text(raw, part, budget)
        else:
            piece = ""
        if piece:
            piece = piece[:budget]
            pieces.append(piece)
            budget -= len(piece)
        work.extend(reversed(part.children))
    return "\n".join(pieces)


def _msg_ids(value: str | None) -> list[str]:
    return _MSG_ID.findall(value or "")[:1000]


def text_size(anatomy: Anatomy) -> int:
    """Bytes of the text parts SEARCH BODY reads (as stored, before decoding): what indexing them costs."""
    return sum(part.body_end - part.body_start for part in anatomy.parts
               if part.type == "text" and not part.children)


def body_text(anatomy: Anatomy, raw: bytes) -> str:
    """The case-folded body text SEARCH TEXT / BODY compares (empty for a message stored flat)."""
    return "" if anatomy.refused else fold(_body_text(raw, anatomy))[:MAX_TEXT]


def search_fields(anatomy: Anatomy, raw: bytes, *, with_body: bool = True) -> SearchFields:
    """Everything SEARCH, SORT and THREAD read for ``raw``, from its anatomy (never raises on odd input).

    ``with_body=False`` leaves ``body`` empty, for a message whose body text is indexed later.
    """
    root = anatomy.root
    env = root.envelope
    block = raw[root.header_start:min(root.body_start, root.header_start + MAX_HEADER)]
    found = h.fields(block)
    if env is None:
        return SearchFields(header=fold(_header_text(raw, root))[:MAX_TEXT])

    def field(name: str) -> str:
        values = [h.decode_words(v) for k, v in found if k == name]
        return fold(" ".join(values))[:MAX_FIELD]

    first_from, first_to, first_cc = (_first_mailbox(x) for x in (env.from_, env.to, env.cc))
    references = _msg_ids(h.first(found, "references")) or _msg_ids(env.in_reply_to)[:1]
    message_ids = _msg_ids(env.message_id)
    return SearchFields(
        subject=field("subject"),
        from_=field("from"),
        to=field("to"),
        cc=field("cc"),
        bcc=field("bcc"),
        sort_subject=fold(base_subject(env.subject or ""))[:MAX_FIELD],
        sort_from=fold(first_from.mailbox or "")[:MAX_FIELD] if first_from else "",
        sort_to=fold(first_to.mailbox or "")[:MAX_FIELD] if first_to else "",
        sort_cc=fold(first_cc.mailbox or "")[:MAX_FIELD] if first_cc else "",
        display_from=fold(_display(env.from_))[:MAX_FIELD],
        display_to=fold(_display(env.to))[:MAX_FIELD],
        sent_at=_sent_at(env.date),
        message_id=h.clean(message_ids[0]) if message_ids else None,
        references=h.clean(" ".join(references))[:MAX_TEXT],
        header=fold("\n".join(f"{name}: {h.decode_words(value)}" for name, value in found))[:MAX_TEXT],
        body=body_text(anatomy, raw) if with_body else "",
    )
