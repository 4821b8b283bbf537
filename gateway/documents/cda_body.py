"""What a CDA carries beside its header: the ClinicalDocument inside an auto-presentable wrapper (ANS CI-SIS),
and the content a level-1 CDA wraps (``nonXMLBody``).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64

from lxml import etree

from gateway.documents.errors import DocumentRefused
from gateway.documents.limits import CDA, CdaLimits
from gateway.documents.safe_xml import parse_xml

HL7 = "urn:hl7-org:v3"
NS = {"h": HL7}
#: The XSLT namespace of an auto-presentable CDA (ANS CI-SIS): an ``xsl:stylesheet`` that carries the
#: ClinicalDocument with the transform that renders it, so that a browser shows it as it is.
XSLT = "http://www.w3.org/1999/XSL/Transform"


def unwrapped(data: bytes, limits: CdaLimits = CDA) -> bytes:
    """The ClinicalDocument alone from an auto-presentable CDA (what the DMP and XDS consumers expect); any
    other input is returned as it is."""
    try:
        outer = parse_xml(data, limits.max_bytes, "CDA document")
    except DocumentRefused:
        return data
    inner = clinical_document(outer)
    if inner is None or inner is outer:
        return data
    return bytes(etree.tostring(inner, xml_declaration=True, encoding="UTF-8"))


def clinical_document(root: etree._Element) -> etree._Element | None:
    """The ClinicalDocument of a parsed document: the root itself, or the one an auto-presentable CDA
    (root ``xsl:stylesheet`` or ``xsl:transform``) wraps; None for any other XML. The search is lxml's
    iterative walk over an already bounded tree (no recursion driven by the input)."""
    if root.tag == f"{{{HL7}}}ClinicalDocument":
        return root
    if root.tag not in (f"{{{XSLT}}}stylesheet", f"{{{XSLT}}}transform"):
        return None
    return next(root.iter(f"{{{HL7}}}ClinicalDocument"), None)


def non_xml_body(data: bytes, limits: CdaLimits = CDA) -> bytes | None:
    """The content a level-1 CDA wraps (``nonXMLBody/text``, base64), None when it wraps nothing readable; the
    DMP bridge compares it with a message's attachments to leave out the rendering of a CDA."""
    try:
        outer = parse_xml(data, limits.max_bytes, "CDA document")
    except DocumentRefused:
        return None
    root = clinical_document(outer)
    return None if root is None else wrapped_content(root)


#: The characters base64 text may be folded with (RFC 2045 line breaks, indentation).
_FOLDING = b" \t\r\n\x0b\x0c"


def wrapped_content(root: etree._Element) -> bytes | None:
    """:func:`non_xml_body` of a ClinicalDocument already parsed (a reader of its header and its content parses
    it once)."""
    text = root.find("h:component/h:nonXMLBody/h:text", NS)
    if text is None or text.get("representation") != "B64":
        return None
    value = text.text or ""
    try:  # the usual ASCII text: its folding removed in C rather than split into lines and joined
        return base64.b64decode(value.encode("ascii").translate(None, _FOLDING), validate=True)
    except (UnicodeEncodeError, ValueError):
        pass
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError:
        return None
