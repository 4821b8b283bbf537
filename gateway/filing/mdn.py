"""Message disposition notifications (RFC 8098) for filed documents, as the ANS profile describes.

``processed`` when every document was filed, ``processed/error`` with ``Error: <code>^<label>`` when one
went to the review queue with an ANS integration code (R10); without Disposition-Notification-To an
integration error reaches the sender as a readable message instead (:func:`error_notice`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import email
import email.policy
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from gateway.documents.packaging import NIL_HEADER
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


#: The code of an integration error that is none of the others (a message with nothing to integrate).
OTHER_ERROR = 906


def sender_of(headers: EmailMessage) -> str | None:
    """The one address of the ``From`` header (where an error notice goes), None when it is not exactly one."""
    value = headers.get("From")
    addresses = [a for _, a in getaddresses([str(value)]) if "@" in a] if value is not None else []
    return addresses[0].lower() if len(addresses) == 1 else None


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


#: The subject prefix of an integration error MDN (ANS platform volet): ``[KO Intégration système !][<code>]``.
KO_PREFIX = "[KO Intégration système !]"
#: Most bytes of an original subject repeated in a notification's subject.
MAX_SUBJECT = 500


def label(error_code: int) -> str:
    """The ANS label of an integration error code (906 "other" for a code the volet does not name)."""
    return ERROR_LABELS.get(error_code, ERROR_LABELS[906])


def ko_subject(error_code: int, original_subject: str) -> str:
    """``[KO Intégration système !][<code>] <original subject>`` (ANS platform volet)."""
    original = " ".join(original_subject.split())[:MAX_SUBJECT]
    return f"{KO_PREFIX}[{error_code}] {original}".rstrip()


def _base(reporter: str, to: str, hostname: str, subject: str, original_message_id: str | None,
          software_reference: str = "") -> EmailMessage:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = reporter
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(now())
    message["Message-ID"] = f"<{uuid.uuid4().hex}@{hostname}>"
    message["Auto-Submitted"] = "auto-replied"  # RFC 3834: no loop of notifications about notifications
    if software_reference:
        message[NIL_HEADER] = software_reference
    if original_message_id:
        message["In-Reply-To"] = original_message_id
        message["References"] = original_message_id
    return message


def _original_part(original: bytes) -> EmailMessage:
    """The original message as a message/rfc822 part, byte for byte (RFC 8098 section 3: the third part)."""
    part = EmailMessage(policy=email.policy.SMTP)
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = "attachment"
    inner = email.message_from_bytes(original, policy=email.policy.SMTP)
    part.set_payload([inner])
    return part


def build(request: MdnRequest, reporter: str, hostname: str, error_code: int | None,
          original: bytes = b"", original_subject: str = "", software_reference: str = "") -> bytes:
    """The MDN (RFC 8098) from ``reporter`` (the filing mailbox) to the requester.

    multipart/report with three parts: a readable text, the message/disposition-notification fields, and the
    original message (message/rfc822). An integration error (R10) is ``processed/error`` with
    ``Error: <code>^<label>`` and the subject ``[KO Intégration système !][<code>] <original subject>`` (ANS
    platform volet)."""
    disposition = "automatic-action/MDN-sent-automatically; processed"
    if error_code is not None:
        disposition += "/error"
        subject = ko_subject(error_code, original_subject)
    else:
        subject = "Accusé de traitement : " + " ".join(original_subject.split())[:MAX_SUBJECT]
    message = _base(reporter, request.notify, hostname, subject.strip(" :"), request.original_message_id,
                    software_reference)
    human = ("Les documents du message ont été intégrés." if error_code is None else
             f"Un document du message n'a pas pu être intégré automatiquement : {error_code} {label(error_code)}.")
    fields = [f"Reporting-UA: {hostname}; MSSante gateway",
              f"Original-Recipient: rfc822;{request.original_recipient}",
              f"Final-Recipient: rfc822;{request.original_recipient}"]
    if request.original_message_id:
        fields.append(f"Original-Message-ID: {request.original_message_id}")
    fields.append(f"Disposition: {disposition}")
    if error_code is not None:
        fields.append(f"Error: {error_code}^{label(error_code)}")
    message.set_content(human)
    message.make_mixed()
    message.set_type("multipart/report")
    message.set_param("report-type", "disposition-notification")
    report = EmailMessage(policy=email.policy.SMTP)
    report.set_payload("\r\n".join(fields) + "\r\n")
    report["Content-Type"] = "message/disposition-notification"
    message.attach(report)
    if original:
        message.attach(_original_part(original))
    return message.as_bytes()


def error_notice(sender: str, reporter: str, hostname: str, error_code: int, reasons: list[str],
                 original_message_id: str | None, original_subject: str, software_reference: str = "") -> bytes:
    """A readable error message to the sender of a message that asked for no MDN (no
    Disposition-Notification-To): an integration error is never silent (R10), only its form differs."""
    message = _base(reporter, sender, hostname, ko_subject(error_code, original_subject), original_message_id,
                    software_reference)
    lines = [f"Votre message « {' '.join(original_subject.split())[:MAX_SUBJECT]} » a été reçu par {reporter}, "
             "mais un document n'a pas pu être intégré automatiquement au dossier du patient.",
             "", f"Erreur : {error_code} {label(error_code)}."]
    lines += [f"- {reason}" for reason in reasons[:20]]
    lines += ["", "Le document est placé en attente de vérification ; aucun patient n'a été deviné.",
              "Ce message est envoyé automatiquement ; il n'est pas nécessaire d'y répondre."]
    message.set_content("\n".join(lines))
    return message.as_bytes()
