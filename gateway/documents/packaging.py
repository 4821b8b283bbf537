"""Outgoing CDA as the ANS client specification wants them: inside an IHE XDM zip, announced by headers.

A practice software that attaches bare CDA documents gets an ``IHE_XDM.ZIP`` added (built from those documents
by :func:`gateway.documents.xdm_writer.build_xdm`; the bare parts stay for receivers without XDM support), and
every message carrying CDA in XDM leaves with ``X-MSS-CODECDA`` and ``X-MSS-INS``. Messages without CDA, or that
cannot be read within the readers' limits, are left exactly as they are.
"""

from __future__ import annotations

import email.policy
from collections.abc import Callable, Sequence
from email import message_from_bytes
from email.message import EmailMessage

from gateway.documents.cda import CdaHeader, read_header
from gateway.documents.errors import DocumentRefused
from gateway.documents.mime import Part, walk
from gateway.documents.xdm import looks_like_zip, read_xdm
from gateway.documents.xdm_writer import SUBJECT_PREFIX, build_xdm, mss_headers, xdm_subject

CODE_HEADER = "X-MSS-CODECDA"
INS_HEADER = "X-MSS-INS"
#: The software reference (ANS client specification) on the messages the gateway builds or rebuilds.
NIL_HEADER = "X-MSS-NIL"


def _is_cda(part: Part) -> bool:
    return (part.content_type.endswith("xml") or (part.filename or "").lower().endswith(".xml")) \
        and b"ClinicalDocument" in part.data[:4096]


def _headers(documents: Sequence[bytes]) -> list[CdaHeader]:
    return [read_header(document, validate=False) for document in documents]


def find_cda(raw: bytes) -> tuple[list[bytes], list[bytes]]:
    """The message's bare CDA documents, and the CDA documents inside its XDM zips."""
    bare: list[bytes] = []
    in_xdm: list[bytes] = []
    for part in walk(raw):
        if looks_like_zip(part.data):
            archive = read_xdm(part.data)
            in_xdm += [d.content for d in archive.documents if b"ClinicalDocument" in d.content[:4096]]
        elif _is_cda(part):
            bare.append(part.data)
    return bare, in_xdm


def matricules(raw: bytes) -> list[str]:
    """The INS matricules of the CDA the message carries (to ask the repository which are qualifiée)."""
    try:
        bare, in_xdm = find_cda(raw)
        return [h.patient.matricule for h in _headers(bare or in_xdm) if h.patient and h.patient.matricule]
    except DocumentRefused:
        return []


def package(raw: bytes, is_qualified: Callable[[str], bool], software_reference: str = "") -> bytes | None:
    """The message with its CDA packaged and announced, or None when nothing is to change; a rebuilt message
    names the gateway in ``X-MSS-NIL`` unless the sending software already named itself."""
    try:
        bare, in_xdm = find_cda(raw)
        if not bare and not in_xdm:
            return None
        message = message_from_bytes(raw, policy=email.policy.SMTP)
        assert isinstance(message, EmailMessage)
        if in_xdm:
            if message.get(CODE_HEADER) is not None:
                return None  # already announced by the sender
            headers = _headers(in_xdm)
        else:
            zipped, _ = build_xdm(bare)
            headers = _headers(bare)
            if message.get_content_maintype() != "multipart":
                message.make_mixed()
            message.add_attachment(zipped, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    except (DocumentRefused, ValueError):
        return None  # unreadable, several patients, or not a CDA we can package: leave the message as it is
    qualified = all(is_qualified(h.patient.matricule) for h in headers if h.patient and h.patient.matricule)
    for name, value in mss_headers(headers, qualified).items():
        del message[name]
        message[name] = value
    if not str(message.get("Subject", "")).startswith(SUBJECT_PREFIX):  # the ANS subject convention
        del message["Subject"]
        message["Subject"] = xdm_subject(headers)
    if software_reference and message.get(NIL_HEADER) is None:
        message[NIL_HEADER] = software_reference
    # Header lines up to RFC 5322's 998 characters: the ANS subject is often longer than 78, and the library
    # would otherwise fold it right after "Subject:", which readers unfold into a subject starting with a space.
    return message.as_bytes(policy=message.policy.clone(max_line_length=998))
