"""The HL7 ``ACK`` answered to every message (ANS volet: MSH, MSA, and ERR when MSA-1 is AE or AR).

ERR-2 locates the field (``SEG^sequence^field``), ERR-3 is the HL7 table 0357 condition, ERR-4 the severity
(``E``), ERR-8 a sentence for the person reading the sender's log. Values copied from the received MSH are
escaped (HL7 v2.5 2.7), so a hostile MSH cannot add fields or segments to our answer.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.hl7 import codes
from gateway.hl7.message import Header, Refusal

_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\"))


def escape(value: str, limit: int = 200) -> str:
    """A value safe inside one ER7 component: delimiters escaped, control characters dropped."""
    value = "".join(c for c in value[:limit] if c >= " " or c == "\t")
    for raw, escaped in _ESCAPES:
        value = value.replace(raw, escaped)
    return value


def _event(header: Header) -> str:
    parts = header.message_type.split("^")
    return parts[1] if len(parts) > 1 and parts[1] else "R01"


def build(header: Header | None, code: str, refusal: Refusal | None = None, *, application: str = "MSSANTE",
          facility: str = "", now: datetime | None = None) -> str:
    """The ACK (ER7, segments separated by CR) answering ``header`` with MSA-1 ``code``."""
    header = header or Header()
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    control = escape(header.control_id, 199)
    version = header.version if header.version in codes.VERSIONS else "2.5"
    msh = "|".join(["MSH", "^~\\&", application, escape(facility or header.receiving_facility),
                    escape(header.sending_application), escape(header.sending_facility), moment, "",
                    f"ACK^{escape(_event(header), 3)}^ACK", f"ACK{control}"[:199], "P", version,
                    "", "", "", "", "FRA", "UNICODE UTF-8"])
    segments = [msh, f"MSA|{code}|{control}"]
    if refusal is not None:
        condition, name = refusal.condition
        segments.append(f"ERR||{refusal.location}|{condition}^{escape(name)}^HL70357|E||||"
                        f"{escape(refusal.text, 400)}")
    return "\r".join(segments)
