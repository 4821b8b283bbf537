"""The MSSanté messages of one HL7 document message (pure CPU work: no store access).

Each ``DESTMSSANTEPS`` / ``DESTMSSANTEPAT`` becomes a message built here: an IHE XDM zip with the CDA (and the
PDF a level-1 CDA wraps), the ``X-MSS-*`` headers of the ANS client specification, the subject convention
``XDM/1.0/DDM+<title> <NAME> <first name> <birth date>``, sent from the structure mailbox configured for the
peer; for ``DESTDMP`` alone, the record the deposit job reads, kept in that mailbox's Sent. The parts that do
not depend on the recipient (the zip, its base64) are made once for all the messages of one HL7 message.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import email.utils
import itertools
import os

import pybase64

from gateway.config import Config
from gateway.dmp_bridge.constants import VISIBILITY_HEADER
from gateway.documents.cda import CdaHeader
from gateway.documents.packaging import NIL_HEADER
from gateway.documents.xdm_writer import build_xdm, mss_headers
from gateway.hl7 import codes, headers
from gateway.hl7.message import Hl7Document
from gateway.routing.headers import Summary, summarise
from gateway.routing.policy import Target


def _subject(header: CdaHeader) -> str:
    """The ANS subject convention for a message carrying a CDA (domain.md, MSSanté headers)."""
    patient = header.patient
    label = header.title or (header.code.display_name if header.code else None) or "Document"
    parts = [label, (patient.birth_name or "").upper(), patient.first_name or "",
             (patient.birth_date or "").replace("-", "")]
    return "XDM/1.0/DDM+" + " ".join(p for p in parts if p)


def attachments(config: Config, doc: Hl7Document) -> list[tuple[bytes, str, str]]:
    """The XDM zip of the CDA and, for a level-1 CDA, the PDF it wraps: built once per HL7 message, from the
    header the listener already read (the CDA is parsed once)."""
    zipped, _ = build_xdm([doc.cda], source_name=config.software_reference, headers=[doc.cda_header],
                          store_documents=True)
    parts = [(zipped, "zip", "IHE_XDM.ZIP")]
    if doc.wrapped is not None and doc.wrapped.startswith(b"%PDF"):
        parts.append((doc.wrapped, "pdf", "document.pdf"))
    return parts


def encoded_parts(config: Config, doc: Hl7Document) -> list[tuple[bytes, str, str]]:
    """The attachments of every MSSanté message of ``doc``, in base64 lines: what does not depend on the
    recipients, made once, in the pass that read the HL7 message (:func:`gateway.hl7.accept.read`)."""
    return [(_base64(data), subtype, filename) for data, subtype, filename in attachments(config, doc)]


def build_mails(config: Config, sender: str, doc: Hl7Document, professionals: list[Target],
                patients: list[Target], *, qualified: bool, stamp: str,
                parts: list[tuple[bytes, str, str]] | None = None) -> list[tuple[list[Target], bytes, Summary]]:
    """Every MSSanté message of one HL7 message with its header summary: the XDM zip is built once for all of
    them (``parts``, from :func:`read`), and the summary is read here rather than in the transaction."""
    if parts is None:
        parts = encoded_parts(config, doc)
    built: list[tuple[list[Target], bytes, Summary]] = []
    for targets, to_patient, tag in ((professionals, False, "ps"), (patients, True, "pat")):
        if targets:
            raw_mail = build_mail(config, sender, [t.address for t in targets], doc, to_patient=to_patient,
                                  qualified=qualified, message_id=f"<hl7.{tag}.{stamp}@{config.hostname}>",
                                  parts=parts)
            built.append((targets, raw_mail, summarise(raw_mail)))
    if not built:  # DMP only: the record the deposit job reads, kept in the structure mailbox's Sent
        raw_mail = build_mail(config, sender, [sender], doc, to_patient=False, qualified=qualified,
                              message_id=f"<hl7.dmp.{stamp}@{config.hostname}>", parts=parts)
        built.append(([], raw_mail, summarise(raw_mail)))
    return built


def build_mail(config: Config, sender: str, recipients: list[str], doc: Hl7Document, *, to_patient: bool,
               qualified: bool, message_id: str, parts: list[tuple[bytes, str, str]]) -> bytes:
    """The MSSanté message for one destination (CPU work: called outside the transaction). ``parts``: the
    attachments already in base64 lines (:func:`encoded_parts`), encoded once for every message of one HL7
    message."""
    header = doc.cda_header
    fields = [headers.addresses("From", [sender]), headers.addresses("To", recipients),
              headers.text("Subject", _subject(header)),
              headers.text("Date", email.utils.formatdate(localtime=False)), headers.text("Message-ID", message_id)]
    fields += [headers.text(name, value) for name, value in mss_headers([header], qualified).items()]
    fields.append(headers.text(NIL_HEADER, config.software_reference))
    if to_patient and doc.no_reply:
        fields.append(b"X-MSS-MES: FIN\r\n")  # the volet's NTE-4: the patient may not answer (R2)
    if doc.reply_to:
        fields.append(headers.addresses("Reply-To", [doc.reply_to]))
    if codes.ACK_LECTURE in doc.flags or codes.ACK_LECTURE_MSS in doc.flags:
        fields.append(headers.addresses("Disposition-Notification-To", [sender]))  # read receipt (R6, RFC 8098)
    visibility = sorted(codes.DMP_VISIBILITY[f] for f in doc.flags if f in codes.DMP_VISIBILITY)
    if visibility:
        fields.append(headers.text(VISIBILITY_HEADER, ",".join(visibility)))
    body = doc.bodies.get(codes.CORPSMAIL_PATIENT if to_patient else codes.CORPSMAIL_PS)
    text = body or f"Veuillez trouver ci-joint le document « {header.title or 'CDA'} »."
    return _multipart(b"".join(fields), text, parts)


#: Boundaries need only differ from the content (checked below), not be secret: a counter, no entropy read.
_BOUNDARIES = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _multipart(head: bytes, text: str, parts: list[tuple[bytes, str, str]]) -> bytes:
    """The MIME body written directly (RFC 2045, 2046) after ``head``, the header fields made by
    :mod:`gateway.hl7.headers`: the parts are base64 in CRLF lines made in C, instead of the email generator's
    walk of every encoded line of the XDM zip. The boundary is ours: "=_" cannot occur in base64 nor in 8bit
    text we check."""
    boundary = f"=_hl7_{os.getpid():x}.{next(_BOUNDARIES):x}".encode("ascii")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    encoded = "\r\n".join(lines).encode("utf-8")
    plain = all(len(line) < 900 for line in lines) and b"\0" not in encoded and b"--=_hl7_" not in encoded
    out = [head,  # the header section without its closing empty line
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n",
           b"--" + boundary + b"\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: ",
           b"8bit\r\n\r\n" + encoded + b"\r\n" if plain else b"base64\r\n\r\n" + _base64(encoded)]
    for encoded_part, subtype, filename in parts:  # already in base64 lines
        out += [b"--", boundary, b"\r\nContent-Type: application/", subtype.encode("ascii"),
                b"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"",
                filename.encode("ascii"), b"\"\r\n\r\n", encoded_part]
    out += [b"--", boundary, b"--\r\n"]
    return b"".join(out)


def _base64(data: bytes) -> bytes:
    """Base64 in lines of 76 characters ended by CRLF (RFC 2045 6.8): pybase64's vectorised encoder writes the
    lines (LF) in C and one pass turns LF into CRLF, about half the time of cutting binascii's one line of a
    137 KB zip into 1,800 slices."""
    return pybase64.encodebytes(data).replace(b"\n", b"\r\n")
