"""Message disposition notifications (RFC 8098) for filed documents, as the ANS profile describes.

``processed`` when every document was filed, ``processed/error`` with ``Error: <code>^<label>`` when one
went to the review queue with an ANS integration code (R10).
"""

from __future__ import annotations

import email.policy
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from gateway.store.events import now

#: ANS integration error codes and their labels (R10).
ERROR_LABELS = {
    900: "Version du document incorrecte",
    901: "Auteur non autorise",
    902: "Patient inconnu",
    903: "INS absent",
    904: "INS ou traits non concordants",
    905: "Traits d'identite incomplets",
    906: "Autre erreur",
}


@dataclass(frozen=True)
class MdnRequest:
    """What a message asked for: where to send the notification, and what it refers to."""

    notify: str
    original_message_id: str | None
    original_recipient: str


def requested(headers: EmailMessage, recipient: str) -> MdnRequest | None:
    """The MDN a message asks for with ``Disposition-Notification-To`` (one address), if any."""
    value = headers.get("Disposition-Notification-To")
    if value is None:
        return None
    addresses = [a for _, a in getaddresses([str(value)]) if "@" in a]
    if len(addresses) != 1:
        return None
    message_id = headers.get("Message-ID")
    return MdnRequest(addresses[0].lower(), str(message_id) if message_id else None, recipient)


def build(request: MdnRequest, reporter: str, hostname: str, error_code: int | None) -> bytes:
    """The MDN message from ``reporter`` (the filing mailbox) to the requester."""
    disposition = "automatic-action/MDN-sent-automatically; processed"
    if error_code is not None:
        disposition += "/error"
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = reporter
    message["To"] = request.notify
    message["Subject"] = "Accusé de traitement" if error_code is None else "Accusé de traitement : erreur"
    message["Date"] = format_datetime(now())
    message["Message-ID"] = f"<{uuid.uuid4().hex}@{hostname}>"
    message["Auto-Submitted"] = "auto-replied"
    if request.original_message_id:
        message["In-Reply-To"] = request.original_message_id
        message["References"] = request.original_message_id
    human = ("Les documents du message ont été intégrés." if error_code is None else
             f"Un document du message n'a pas pu être intégré automatiquement : {error_code} "
             f"{ERROR_LABELS.get(error_code, ERROR_LABELS[906])}.")
    fields = [f"Reporting-UA: {hostname}; MSSante gateway",
              f"Original-Recipient: rfc822;{request.original_recipient}",
              f"Final-Recipient: rfc822;{request.original_recipient}"]
    if request.original_message_id:
        fields.append(f"Original-Message-ID: {request.original_message_id}")
    fields.append(f"Disposition: {disposition}")
    if error_code is not None:
        fields.append(f"Error: {error_code}^{ERROR_LABELS.get(error_code, ERROR_LABELS[906])}")
    message.set_content(human)
    message.make_mixed()
    message.set_type("multipart/report")
    message.set_param("report-type", "disposition-notification")
    report = EmailMessage(policy=email.policy.SMTP)
    report.set_payload("\r\n".join(fields) + "\r\n")
    report["Content-Type"] = "message/disposition-notification"
    message.attach(report)
    return message.as_bytes()
