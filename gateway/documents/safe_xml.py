"""The one XML parser for what messages carry: no entity, no DTD, no network, no huge tree, bounded size.

A document with a DOCTYPE at all is refused (CDA and XDM metadata have none, and a DTD is how XXE and
"billion laughs" arrive). Used by the CDA reader, the XDM reader and the DMP's SOAP answers.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
import threading

from lxml import etree

from gateway.documents.errors import CdaRefused, DocumentRefused

_ELEMENT_START = re.compile(rb"<[A-Za-z_]")


def safe_parser(huge: bool = False) -> etree.XMLParser:
    """The only XML parser configuration used on received documents (no entities, DTD, network)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=huge, remove_comments=True, remove_pis=True)


_PARSER = threading.local()


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_PARSER, "value", None)
    if parser is None:
        parser = _PARSER.value = safe_parser()
    return parser



def parse_xml(data: bytes, max_bytes: int, what: str,
              error: type[DocumentRefused] = CdaRefused) -> etree._Element:
    """Parse ``data`` safely; refuse oversize input, DOCTYPEs and malformed XML with a sentence."""
    if len(data) > max_bytes:
        raise error("too-large", f"The {what} is {len(data)} bytes, over the limit of {max_bytes} bytes.")
    first_element = _ELEMENT_START.search(data)
    doctype = data.find(b"<!DOCTYPE", 0, first_element.start() if first_element else len(data))
    if doctype >= 0:
        raise error("dtd", f"The {what} declares a DTD (DOCTYPE); DTDs and entities are refused.")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as problem:
        raise error("not-xml", f"The {what} is not well-formed XML (line {problem.lineno}).") from None
    except ValueError:
        raise error("not-xml", f"The {what} is not XML.") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise error("dtd", f"The {what} declares a DTD (DOCTYPE); DTDs and entities are refused.")
    return root
