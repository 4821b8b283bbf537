"""What routing needs from a message's header section: From, Subject, Message-ID and the MSSanté markers."""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.headerregistry import Address
from email.parser import BytesHeaderParser

#: ANS client specification: a message to a patient that ends the conversation (R2).
MSS_MES = "X-MSS-MES"
#: Our header for R3, set by the professional's software when sending: "blocked" or "allowed".
PATIENT_REPLIES = "X-Gateway-Patient-Replies"
FIN_MARKER = "[FIN]"
MAX_HEADER_BYTES = 256 * 1024


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

    @property
    def ends_conversation(self) -> bool:
        return self.fin_in_subject or self.fin_header


def header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    block = raw if end < 0 else raw[: end + 2]
    if len(block) > MAX_HEADER_BYTES:
        raise HeaderError("header section too large")
    return block


def summarise(raw: bytes) -> Summary:
    """Read the header section (bounded); RFC 2047 encoded subjects are decoded before looking for [FIN]."""
    try:
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(header_block(raw))
        from_header = headers.get_all("From") or []
        addresses: list[str] = []
        for value in from_header:
            addrs: tuple[Address, ...] = getattr(value, "addresses", ())
            addresses += [a.addr_spec.lower() for a in addrs]
        subject = headers.get("Subject")
        subject_text = str(subject) if subject is not None else None
        mes = headers.get(MSS_MES)
        replies = headers.get(PATIENT_REPLIES)
        replies_value = str(replies).strip().lower() if replies is not None else None
        message_id = headers.get("Message-ID")
    except (IndexError, ValueError, TypeError, AttributeError) as exc:
        raise HeaderError(str(exc)) from exc
    return Summary(
        from_addresses=tuple(addresses) if len(from_header) == 1 else (*tuple(addresses), "<several From>"),
        subject=subject_text,
        message_id=str(message_id)[:998] if message_id is not None else None,
        fin_in_subject=subject_text is not None and FIN_MARKER in subject_text,
        fin_header=mes is not None and str(mes).strip().upper() == "FIN",
        replies=replies_value if replies_value in {"blocked", "allowed"} else None,
        header_from_raw=str(from_header[0])[:998] if from_header else None,
    )
