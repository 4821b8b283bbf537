"""The readers' limits, in one place (style.md: one place per fact).

Defaults fit MSSanté traffic: messages are limited to a few tens of MB by operators, DMP documents to 5 MB
(R15); anything far above is refused rather than read.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class MimeLimits:
    #: Raw message size read at all.
    max_message_bytes: int = 96 * MiB
    #: Nesting of multiparts and message/rfc822 (a forwarded message counts one level).
    max_depth: int = 16
    #: Every part counted, containers included.
    max_parts: int = 512
    #: Decoded bytes of all leaf parts together, and of one part.
    max_decoded_total: int = 32 * MiB
    max_part_decoded: int = 32 * MiB
    #: Header block of one part.
    max_header_bytes: int = 64 * 1024


@dataclass(frozen=True)
class XdmLimits:
    #: The zip itself.
    max_archive_bytes: int = 64 * MiB
    #: Entries listed in the central directory.
    max_entries: int = 200
    #: One entry, inflated (both as declared and as actually inflated).
    max_entry_bytes: int = 32 * MiB
    #: All entries, inflated.
    max_total_bytes: int = 64 * MiB
    #: Inflated / compressed, per entry. XML compresses ~10-30x; zip bombs 1000x and more.
    max_ratio: int = 200
    #: METADATA.XML size.
    max_metadata_bytes: int = 4 * MiB
    #: Documents listed in one METADATA.XML.
    max_documents: int = 100


@dataclass(frozen=True)
class CdaLimits:
    #: A CDA document (a level-1 CDA wraps a base64 PDF; the DMP takes 5 MB, R15).
    max_bytes: int = 24 * MiB


MIME = MimeLimits()
XDM = XdmLimits()
CDA = CdaLimits()
#: A CDA considered for a DMP deposit: a level-1 CDA wrapping a 5 MB PDF (R15) in base64 is about 6.7 MB.
MAX_DEPOSIT_CDA = 8 * MiB
DEPOSIT_CDA = CdaLimits(max_bytes=MAX_DEPOSIT_CDA)
