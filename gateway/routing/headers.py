"""What routing needs from a message's header section: From, Subject, Message-ID and the MSSanté markers.

Read at the byte level on every accepted message, so it must be cheap: one regular-expression pass over the
header section (never the body) picks the few fields routing looks at; RFC 5322 2.2.3 unfolding and RFC 2047
decoding happen only on those fields, and RFC 2047 only when ``=?`` is present. Headers are UTF-8 when they are
not ASCII (RFC 6532). Everything is bounded: the header section (:data:`MAX_HEADER_BYTES`), the number of
fields kept per name, the encoded words decoded per value, and the parsers have no recursion.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass

#: ANS client specification: a message to a patient that ends the conversation (R2).
MSS_MES = "X-MSS-MES"
#: Our header for R3, set by the professional's software when sending: "blocked" or "allowed".
PATIENT_REPLIES = "X-Gateway-Patient-Replies"
FIN_MARKER = "[FIN]"
MAX_HEADER_BYTES = 256 * 1024
#: Occurrences kept per field name: more than this many From (or Sender...) fields is refused outright.
MAX_SAME_FIELD = 50
#: Encoded words decoded in one value (RFC 2047); the rest is kept as it was written.
MAX_ENCODED_WORDS = 200
#: Addresses read from one From or Sender field.
MAX_ADDRESSES = 100
_VALUE_LIMIT = 998

_WANTED = rb"from|sender|subject|message-id|date|bcc|resent-bcc|x-mss-mes|x-gateway-patient-replies"
# One field: its name at the start of a line, then its value with every continuation line (RFC 5322 2.2.3).
# ``.`` never matches LF, so each repetition of the group must consume one line: linear time.
_FIELD = re.compile(rb"^(" + _WANTED + rb")[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.IGNORECASE | re.MULTILINE)
_BCC = re.compile(rb"^(?:resent-)?bcc[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*\n?", re.IGNORECASE | re.MULTILINE)
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,40})\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"\s+")
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


class HeaderError(ValueError):
    pass


@dataclass(frozen=True)
class Summary:
    from_addresses: tuple[str, ...]
    subject: str | None
    message_id: str | None
    fin_in_subject: bool
    fin_header: bool
    replies: str | None  # "blocked", "allowed" or None
    header_from_raw: str | None
    #: Addresses of the Sender field(s) (RFC 5322 3.6.2); "<several Sender>" is added when there are several.
    sender_addresses: tuple[str, ...] = ()
    date: str | None = None
    #: The message has a Bcc (or Resent-Bcc) field, to be removed from what recipients get.
    has_bcc: bool = False

    @property
    def ends_conversation(self) -> bool:
        return self.fin_in_subject or self.fin_header


def header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    block = raw if end < 0 else raw[: end + 2]
    if len(block) > MAX_HEADER_BYTES:
        raise HeaderError("header section too large")
    return block


def fields(block: bytes) -> dict[bytes, list[bytes]]:
    """The fields routing reads, by lower-case name, unfolded and stripped, in order of appearance."""
    found: dict[bytes, list[bytes]] = {}
    for match in _FIELD.finditer(block):
        values = found.setdefault(match.group(1).lower(), [])
        if len(values) >= MAX_SAME_FIELD:
            raise HeaderError("too many occurrences of one header field")
        value = match.group(2)
        if b"\n" in value:
            value = _FOLD.sub(b"", value)
        values.append(value.strip())
    return found


def text(value: bytes, *, encoded_words: bool = True) -> str:
    """A field value as text: UTF-8 (RFC 6532; undecodable bytes replaced), RFC 2047 words decoded."""
    decoded = value.decode("utf-8", "replace")
    if encoded_words and "=?" in decoded:
        decoded = decode_encoded_words(decoded)
    return decoded


def decode_encoded_words(value: str) -> str:
    """RFC 2047 section 6: decode ``=?charset?B|Q?...?=`` words; whitespace between two words is dropped."""
    out: list[str] = []
    position = 0
    after_word = False
    for count, match in enumerate(_ENCODED_WORD.finditer(value)):
        if count >= MAX_ENCODED_WORDS:
            break
        word = _decode_word(*match.groups())
        if word is None:
            after_word = False
            continue
        gap = value[position:match.start()]
        if not (after_word and _BETWEEN_WORDS.fullmatch(gap)):
            out.append(gap)
        out.append(word)
        position, after_word = match.end(), True
    out.append(value[position:])
    return "".join(out)


def _decode_word(charset: str, encoding: str, payload: str) -> str | None:
    charset = charset.partition("*")[0]  # RFC 2231 section 5: a language may follow the charset
    try:
        codecs.lookup(charset)
    except LookupError:
        return None
    data = payload.encode("ascii", "replace")
    if encoding in "bB":
        try:
            raw = base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        raw = _Q_HEX.sub(lambda m: bytes((int(m.group(1), 16),)), data.replace(b"_", b" "))
    return raw.decode(charset, "replace")


# --- addresses (RFC 5322 3.4): a small, bounded reader of address lists -----------------------------------------
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|\\.|[(),:;<>]|[^"\\(),:;<>]+', re.DOTALL)


def addresses(value: str) -> list[str]:
    """The addr-specs of an address list, lower-cased; groups are flattened, comments and display names dropped.

    Iterative over tokens (comments may nest, counted, never recursed into); an empty list when the value holds
    no address, which the callers treat as a spoofing attempt or an absent field.
    """
    result: list[str] = []
    depth = 0  # comment nesting
    in_angle = False
    angle: list[str] = []
    plain: list[str] = []
    has_angle = False

    def close_mailbox() -> None:
        nonlocal has_angle
        spec = "".join(angle if has_angle else plain)
        spec = "".join(spec.split())
        if has_angle and ":" in spec:  # obsolete source route (RFC 5322 4.4): @a,@b:user@c
            spec = spec.rpartition(":")[2]
        if spec:
            result.append(spec.lower())
        angle.clear()
        plain.clear()
        has_angle = False

    for match in _TOKEN.finditer(value):
        piece = match.group(0)
        if depth:
            if piece == "(":
                depth += 1
            elif piece == ")":
                depth -= 1
            continue
        if piece == "(":
            depth = 1
        elif in_angle:
            if piece == ">":
                in_angle = False
            else:
                angle.append(piece)
        elif piece == "<":
            in_angle, has_angle = True, True
            angle.clear()
        elif piece in (",", ";"):
            close_mailbox()
        elif piece == ":":  # a group's display name ends here (RFC 5322 3.4)
            plain.clear()
        elif piece != ")" and piece != ">":
            plain.append(piece)
        if len(result) >= MAX_ADDRESSES:
            return result
    close_mailbox()
    return result


def summarise(raw: bytes) -> Summary:
    """Read the header section (bounded); RFC 2047 encoded subjects are decoded before looking for [FIN]."""
    found = fields(header_block(raw))
    from_values = found.get(b"from", [])
    from_addresses: list[str] = []
    for value in from_values:
        from_addresses += addresses(text(value, encoded_words=False))
    sender_values = found.get(b"sender", [])
    sender_addresses: list[str] = []
    for value in sender_values:
        sender_addresses += addresses(text(value, encoded_words=False))
    subject = _first(found, b"subject")
    subject_text = text(subject) if subject is not None else None
    mes = _first(found, b"x-mss-mes")
    replies_raw = _first(found, b"x-gateway-patient-replies")
    replies_value = text(replies_raw, encoded_words=False).lower() if replies_raw is not None else None
    message_id = _first(found, b"message-id")
    date = _first(found, b"date")
    return Summary(
        from_addresses=tuple(from_addresses) if len(from_values) == 1 else (*from_addresses, "<several From>"),
        subject=subject_text,
        message_id=text(message_id, encoded_words=False)[:_VALUE_LIMIT] if message_id is not None else None,
        fin_in_subject=subject_text is not None and FIN_MARKER in subject_text,
        fin_header=mes is not None and mes.upper() == b"FIN",
        replies=replies_value if replies_value in {"blocked", "allowed"} else None,
        header_from_raw=text(from_values[0])[:_VALUE_LIMIT] if from_values else None,
        sender_addresses=(tuple(sender_addresses) if len(sender_values) <= 1
                          else (*sender_addresses, "<several Sender>")),
        date=text(date, encoded_words=False)[:_VALUE_LIMIT] if date is not None else None,
        has_bcc=b"bcc" in found or b"resent-bcc" in found,
    )


def without_bcc(raw: bytes) -> bytes:
    """The message with its Bcc and Resent-Bcc fields removed (RFC 5322 3.6.3: recipients never see them)."""
    block = header_block(raw)
    stripped = _BCC.sub(b"", block)
    return raw if len(stripped) == len(block) else stripped + raw[len(block):]


def _first(found: dict[bytes, list[bytes]], name: bytes) -> bytes | None:
    values = found.get(name)
    return values[0] if values else None
