"""A professional's attachments as documents of their own (R13: scanned documents, photos; a letter's
attachments are deposited separately), each wrapped in a CDA level 1 (XDS-SD) so that it goes through the same
rules and outbox as any CDA.

Which attachments: PDF, JPEG, TIFF, plain text and RTF parts marked as attachments (R15's formats), at most
:data:`MAX_ATTACHMENTS`. Not the readable copy of a structured document: a part whose file name (without its
extension) is the name of an XML or XDM zip part of the same message (``CR-BIO.xml`` and ``CR-BIO.pdf``) or of a
file inside its XDM zip (``IHE_XDM/SUBSET01/CR-BIO.xml`` beside ``CR-BIO.pdf``), or whose bytes are those of a
document of the zip or of what a level-1 CDA of the message wraps, is the rendering of that document; PDFs inside
an XDM zip are never deposited.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from gateway.dmp_bridge import constants as c
from gateway.documents.mime import Part
from gateway.documents.pipeline import Extracted
from gateway.documents.xdm import XdmArchive

#: Attachments considered in one message; the rest are left alone (recorded by the caller).
MAX_ATTACHMENTS = 10
#: Media types some mail clients use for the formats of R15.
_ALIASES = {"application/x-pdf": "application/pdf", "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg",
            "image/tif": "image/tiff", "application/x-rtf": "application/rtf"}
_STRUCTURED = ("xml", "zip")
#: The type code of a deposited attachment when neither the sender nor a CDA of the message gives one.
DEFAULT_ATTACHMENT_TYPE = c.TYPE_CONSULTATION_REPORT
#: The sender header choosing the type code of a message's attached documents (our design, see README).
TYPE_HEADER = "X-DMP-Type"


@dataclass(frozen=True)
class Attachment:
    """An attached document to deposit: its MIME position, file name, media type and bytes."""

    path: str
    filename: str
    media_type: str
    content: bytes

    @property
    def title(self) -> str:
        """The file name without its extension: what the professional called the document."""
        return PurePosixPath(self.filename).stem.strip() or self.filename

    def unique_id(self, root: str, message_key: str) -> str:
        """A stable OID for the wrapped document: the same message and part always give the same uniqueId,
        which is the outbox's idempotency key (considering a message twice never deposits twice)."""
        digest = hashlib.sha256(f"{message_key}|{self.path}|".encode() + self.content).hexdigest()
        return f"{root}.{int(digest[:30], 16)}"[:64]


def _stem(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).stem.lower()


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def find_attachments(extracted: Extracted, renderings: frozenset[str] = frozenset()) -> list[Attachment]:
    """The attachments to deposit as their own documents, among the parts the one document reader walked
    (:func:`gateway.documents.pipeline.read_message`; none when the message could not be read).

    ``renderings``: :func:`digest` of the contents the message's level-1 CDAs wrap, which are not deposited twice.
    """
    parts = extracted.parts
    structured = {_stem(p.filename) for p in parts
                  if p.filename and p.filename.lower().rsplit(".", 1)[-1] in _STRUCTURED}
    copies = set(renderings)
    for archive in extracted.archives.values():
        names, contents = _in_xdm(archive)
        structured |= names
        copies |= contents
    found: list[Attachment] = []
    for part in parts:
        media_type = _ALIASES.get(part.content_type, part.content_type)
        if not _is_document(part, media_type) or _stem(part.filename or "") in structured:
            continue
        if copies and digest(part.data) in copies:
            continue
        found.append(Attachment(part.path, part.filename or f"document-{part.path}", media_type, part.data))
        if len(found) == MAX_ATTACHMENTS:
            break
    return found


def _in_xdm(archive: XdmArchive) -> tuple[set[str], set[str]]:
    """The names (without extension) of an XDM zip's files and the digests of its documents: a part of the message
    with such a name or content is a copy of what the zip carries."""
    names = {_stem(name) for name in archive.entries} - {"metadata", "index", "readme"}
    return names, {digest(document.content) for document in archive.documents}


def _is_document(part: Part, media_type: str) -> bool:
    return part.is_attachment and media_type in c.ALLOWED_MEDIA_TYPES and bool(part.data)
