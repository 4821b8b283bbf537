"""Delivery status notifications (RFC 3464): the report sent to a sender when remote delivery fails or succeeds.

The report is a ``multipart/report; report-type=delivery-status`` with a sentence for people, the
machine-readable ``message/delivery-status`` part (per-message and per-recipient fields), and the original
message's header section (RET=HDRS, the default) or the whole message (RET=FULL).
"""

from __future__ import annotations

import email.utils
import uuid
from dataclasses import dataclass
from datetime import datetime

from gateway.routing.headers import header_block

#: Bound on the original message returned with RET=FULL; above it only the headers are returned.
MAX_RETURNED = 1024 * 1024


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's fate (RFC 3464 2.3)."""

    final_recipient: str
    action: str  # "failed" | "delayed" | "delivered" | "relayed" | "expanded"
    status: str  # e.g. "5.1.1"
    original_recipient: str | None = None
    remote_mta: str | None = None
    diagnostic: str | None = None
    last_attempt: datetime | None = None


_SUMMARY = {
    "failed": "Your message could not be delivered to the following recipients; it will not be retried.",
    "delayed": "Your message has not been delivered yet to the following recipients; delivery is still being "
               "attempted.",
    "delivered": "Your message was delivered to the following recipients.",
    "relayed": "Your message was handed over to the recipient's operator, which does not report delivery "
               "status itself.",
}
_SUBJECT = {"failed": "Undelivered mail returned to sender", "delayed": "Delayed mail (still being retried)",
            "delivered": "Delivery notification: successful", "relayed": "Delivery notification: relayed"}


def _clean(value: str, limit: int = 900) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())[:limit]


def build(
    *,
    reporting_mta: str,
    postmaster: str,
    to: str,
    recipients: list[RecipientStatus],
    original: bytes,
    arrival: datetime,
    envid: str | None = None,
    ret: str | None = None,
    software_reference: str = "",
) -> bytes:
    """The DSN message as CRLF bytes, ready to be stored in the sender's INBOX."""
    action = recipients[0].action
    boundary = f"=_dsn_{uuid.uuid4().hex}"
    domain = postmaster.rpartition("@")[2]
    lines = [
        f"From: Mail Delivery System <{postmaster}>",
        f"To: <{to}>",
        f"Subject: {_SUBJECT.get(action, 'Delivery status notification')}",
        f"Date: {email.utils.format_datetime(email.utils.localtime())}",
        f"Message-ID: <{uuid.uuid4().hex}@{domain}>",
        "Auto-Submitted: auto-replied",
        *([f"X-MSS-NIL: {_clean(software_reference, 200)}"] if software_reference else []),
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a delivery status notification (RFC 3464).",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        _SUMMARY.get(action, "Delivery status of your message:"),
        "",
    ]
    for r in recipients:
        lines.append(f"  <{r.final_recipient}>: {r.action} ({r.status})")
        if r.diagnostic:
            lines.append(f"    {_clean(r.diagnostic, 300)}")
    lines += ["", f"--{boundary}", "Content-Type: message/delivery-status", ""]
    # Per-message fields (RFC 3464 2.2)
    if envid:
        lines.append(f"Original-Envelope-Id: {_clean(envid, 100)}")
    lines.append(f"Reporting-MTA: dns; {reporting_mta}")
    lines.append(f"Arrival-Date: {email.utils.format_datetime(arrival)}")
    for r in recipients:  # per-recipient fields (RFC 3464 2.3), each block preceded by a blank line
        lines.append("")
        if r.original_recipient:
            lines.append(f"Original-Recipient: {_clean(r.original_recipient, 500)}")
        lines.append(f"Final-Recipient: rfc822; {r.final_recipient}")
        lines.append(f"Action: {r.action}")
        lines.append(f"Status: {r.status}")
        if r.remote_mta:
            lines.append(f"Remote-MTA: dns; {_clean(r.remote_mta, 200)}")
        if r.diagnostic:
            lines.append(f"Diagnostic-Code: smtp; {_clean(r.diagnostic)}")
        if r.last_attempt:
            lines.append(f"Last-Attempt-Date: {email.utils.format_datetime(r.last_attempt)}")
    lines += [""]
    head = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    if ret == "FULL" and len(original) <= MAX_RETURNED:
        part = f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n".encode() + original
    else:
        part = f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n".encode() + header_block(original)
    if not part.endswith(b"\r\n"):
        part += b"\r\n"
    return head + part + f"\r\n--{boundary}--\r\n".encode()
