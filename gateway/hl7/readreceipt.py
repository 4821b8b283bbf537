"""Read receipts of MSSanté messages built from HL7: the recipient's MDN (RFC 8098) read without a full MIME parse.

When the HL7 message asked ``ACK_LECTURE`` (``ACK_LECTURE_MSS`` in the platform volet), the message carries
``Disposition-Notification-To`` = the structure mailbox; the recipient's client answers with a
``multipart/report; report-type=disposition-notification`` into that mailbox. The relay reads only a bounded
prefix of each stored message (:data:`PREFIX_BYTES`): the outer header and the ``message/disposition-notification``
part, which RFC 8098 3.1 places second, after a short human-readable text, so a report that attaches the whole
original message (as the ANS platform volet asks) costs the same. No recursion, nothing decoded but one block of
header fields (:data:`FIELDS_BYTES`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import re
from dataclasses import dataclass

#: Bytes of a stored message read to find its disposition fields.
PREFIX_BYTES = 256 * 1024
#: Bytes of the message/disposition-notification part's fields read at most.
FIELDS_BYTES = 16 * 1024
#: RFC 8098 3.2.6.2: the disposition types that say the recipient saw or handled the message.
READ_TYPES = frozenset({"displayed", "processed"})

_PART = re.compile(rb"(?im)^content-type:[ \t]*message/disposition-notification\b")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_OUR_ID = re.compile(r"<hl7\.(?:ps|pat|dmp)\.([0-9a-f]{1,120})@[^>]{1,255}>")


@dataclass(frozen=True)
class Disposition:
    """What one MDN says: which message it is about, who read it, and how (RFC 8098 3.2)."""

    original_message_id: str
    final_recipient: str
    #: displayed, processed, deleted or dispatched (lowercase).
    kind: str
    #: ``(code, label)`` of a ``/error`` modifier (ANS: ``processed/Error: 902^label^messageErrorCondition``).
    error: tuple[str, str] | None = None

    @property
    def read(self) -> bool:
        return self.kind in READ_TYPES

    @property
    def stamp(self) -> str | None:
        """The HL7 stamp (peer and MSH-10, hex) of a message this gateway built from HL7, or None."""
        found = _OUR_ID.fullmatch(self.original_message_id.strip())
        return found.group(1) if found else None


def stamp_of(peer: str, control_id: str) -> str:
    """What the Message-IDs of the mails built from one HL7 message carry: ``<hl7.ps.<stamp>@host>``."""
    return f"{peer}.{control_id}".encode().hex()[:120]


def _header_block(prefix: bytes) -> bytes | None:
    end = _HEADER_END.search(prefix)
    return prefix[:end.end()] if end else None


def is_report(prefix: bytes) -> bool:
    """Whether the outer header is ``multipart/report; report-type=disposition-notification`` (RFC 8098 3)."""
    block = _header_block(prefix[:PREFIX_BYTES])
    if block is None:
        return False
    header = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)
    return (header.get_content_type() == "multipart/report"
            and str(header.get_param("report-type", "")).lower() == "disposition-notification")


def _error(modifiers: str) -> tuple[str, str] | None:
    """The ``/error`` modifier's text as (code, label): ANS writes ``Error: code^label^system``."""
    lowered = modifiers.lower()
    at = lowered.find("error")
    if at < 0:
        return None
    text = modifiers[at + len("error"):].lstrip(" :").strip()
    parts = text.split("^")
    if len(parts) >= 2 and parts[0].strip():
        return parts[0].strip()[:20], parts[1].strip()[:200]
    return "", text[:200]


def read(prefix: bytes) -> Disposition | None:
    """The disposition of a stored MDN from its first bytes, or None when it is not one."""
    prefix = prefix[:PREFIX_BYTES]
    if not is_report(prefix):
        return None
    part = _PART.search(prefix)
    if part is None:
        return None
    end = _HEADER_END.search(prefix, part.end())  # the part's own header ends; its body is the fields
    if end is None:
        return None
    body = prefix[end.end():end.end() + FIELDS_BYTES]
    boundary = re.search(rb"(?m)^--", body)
    if boundary is not None:
        body = body[:boundary.start()]
    fields = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(body.lstrip(b"\r\n"))
    original = str(fields.get("Original-Message-ID", "")).strip()
    disposition = " ".join(str(fields.get("Disposition", "")).split())
    if not original or ";" not in disposition:
        return None
    final = str(fields.get("Final-Recipient", "")).partition(";")[2].strip()
    _, _, kind = disposition.partition(";")
    kind, _, modifiers = kind.strip().partition("/")
    return Disposition(original, email.utils.parseaddr(final)[1].lower() or final.lower(), kind.strip().lower(),
                       _error(modifiers) if modifiers else None)
