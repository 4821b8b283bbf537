"""Our own rendering of a CDA's narrative (``section/title`` and ``section/text``) as safe HTML.

Never the document's stylesheet: the text is read from the parsed tree and written again element by element
from a whitelist (paragraph, list/item, table and its rows and cells, caption, content, br, sub, sup); every
text is escaped; no attribute of the document is copied (``styleCode`` becomes one of our own classes,
``colspan``/``rowspan`` are kept when they are small numbers). Everything else — script, event handlers,
``linkHtml`` targets, ``renderMultiMedia``, external images — is left out, its content too, except the text of
a ``linkHtml`` (shown as plain text). The walk is iterative with a depth and size ceiling: no recursion the
input can drive (the tree is already bounded by gateway/documents/safe_xml.parse_xml).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree
from markupsafe import Markup, escape

from gateway.documents.cda_body import HL7, clinical_document
from gateway.documents.errors import DocumentRefused
from gateway.documents.limits import CDA
from gateway.documents.safe_xml import parse_xml

#: Deepest nesting of narrative elements rendered; deeper content is cut (a hostile document, not a report).
MAX_DEPTH = 24
#: Most elements rendered for one document.
MAX_ELEMENTS = 20_000
#: Deepest nesting of sections followed.
MAX_SECTIONS = 8

_TAGS = {
    "paragraph": "p", "item": "li", "table": "table", "thead": "thead", "tbody": "tbody", "tfoot": "tfoot",
    "tr": "tr", "td": "td", "th": "th", "caption": "caption", "content": "span", "sub": "sub", "sup": "sup",
    "br": "br", "linkHtml": "span", "col": None, "colgroup": None,
}
_STYLES = {"bold": "gras", "italics": "italique", "underline": "souligne", "emphasis": "gras"}
_SPANS = ("colspan", "rowspan")


@dataclass(frozen=True)
class Section:
    title: str
    html: Markup
    level: int


def _local(tag: object) -> str | None:
    if not isinstance(tag, str) or not tag.startswith(f"{{{HL7}}}"):
        return None
    return tag[len(HL7) + 2:]


def _open(element: etree._Element, name: str) -> tuple[str, str]:
    if name == "list":
        tag = "ol" if (element.get("listType") or "").lower() == "ordered" else "ul"
    else:
        tag = _TAGS[name] or ""
    attributes = ""
    styles = [_STYLES[s.lower()] for s in (element.get("styleCode") or "").split() if s.lower() in _STYLES]
    if styles:
        attributes += f' class="{" ".join(sorted(set(styles)))}"'
    if name in ("td", "th"):
        for span in _SPANS:
            value = element.get(span) or ""
            if value.isdigit() and 1 < int(value) <= 50:
                attributes += f' {span}="{int(value)}"'
    return tag, attributes


def render_text(text: etree._Element) -> Markup:
    """One ``section/text`` as HTML, from the whitelist only."""
    out: list[str] = []
    count = 0
    # Stack of (element, closing tag or None); the element's children are pushed in reverse order.
    stack: list[tuple[str, etree._Element | str]] = [("kids", text)]
    if text.text:
        out.append(str(escape(text.text)))
    depth: dict[int, int] = {id(text): 0}
    while stack:
        what, item = stack.pop()
        if what == "close":
            out.append(str(item))
            continue
        if what == "tail":
            out.append(str(escape(str(item))))
            continue
        assert isinstance(item, etree._Element)
        if what == "kids":
            level = depth.get(id(item), 0)
            for child in reversed(list(item)):
                if child.tail:
                    stack.append(("tail", child.tail))
                depth[id(child)] = level + 1
                stack.append(("element", child))
            continue
        count += 1
        if count > MAX_ELEMENTS or depth[id(item)] > MAX_DEPTH:
            continue
        name = _local(item.tag)
        if name is None or (name not in _TAGS and name != "list"):
            continue  # script, style, renderMultiMedia, footnote, anything foreign: left out with its content
        tag, attributes = _open(item, name)
        if tag == "":
            continue
        if tag == "br":
            out.append("<br>")
            continue
        out.append(f"<{tag}{attributes}>")
        stack.append(("close", f"</{tag}>"))
        stack.append(("kids", item))
        if item.text:
            out.append(str(escape(item.text)))
    return Markup("".join(out))  # noqa: S704 -- built from whitelisted tags and escape()d text only


def sections(content: bytes) -> list[Section]:
    """The narrative sections of a CDA (level 2/3), in document order; none for an unreadable or level-1 one."""
    try:
        root = clinical_document(parse_xml(content, CDA.max_bytes, "CDA document"))
    except DocumentRefused:
        return []
    if root is None:
        return []
    body = root.find(f"{{{HL7}}}component/{{{HL7}}}structuredBody")
    if body is None:
        return []
    found: list[Section] = []
    pending: list[tuple[etree._Element, int]] = [
        (s, 1) for s in reversed(body.findall(f"{{{HL7}}}component/{{{HL7}}}section"))]
    while pending and len(found) < 500:
        section, level = pending.pop()
        title = section.find(f"{{{HL7}}}title")
        text = section.find(f"{{{HL7}}}text")
        found.append(Section("".join(title.itertext()).strip() if title is not None else "",
                             render_text(text) if text is not None else Markup(""), level))
        if level < MAX_SECTIONS:
            pending.extend((s, level + 1) for s in reversed(section.findall(f"{{{HL7}}}component/{{{HL7}}}section")))
    return found
