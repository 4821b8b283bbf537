"""Our rendering of a CDA narrative: only whitelisted elements come out, every text escaped, nothing active —
no script, no event handler, no ``javascript:`` link, no external image — whatever the document holds; and
the document view serves it under the strict CSP."""

from __future__ import annotations

import re

from support.console import ConsoleServer, get, login

from gateway.documents.cda import read_header
from gateway.ins_matching.matching import Review
from gateway.ins_matching.record import open_review
from gateway.samples import samples_dir
from gateway.web.narrative import MAX_DEPTH, sections

SAMPLE = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
HOSTILE = """<text>
<paragraph onclick="alert('p')" styleCode="Bold">Résultat <content onmouseover="alert('c')">normal</content></paragraph>
<script>alert('script')</script>
<xhtml:script xmlns:xhtml="http://www.w3.org/1999/xhtml">alert('xhtml')</xhtml:script>
<xhtml:img xmlns:xhtml="http://www.w3.org/1999/xhtml" src="https://evil.example/x.png" onerror="alert('img')"/>
<linkHtml href="javascript:alert('lien')">voir le lien</linkHtml>
<renderMultiMedia referencedObject="image-externe"/>
<table onload="alert('t')"><tr><td colspan="2" style="background:url(https://evil.example/y.png)">&lt;b&gt;gras&lt;/b&gt;</td></tr></table>
<list listType="ordered"><item>un</item><item>deux <sup>2</sup></item></list>
<footnote>note <script>alert('note')</script></footnote>
</text>"""
ACTIVE = re.compile(r"<script|<img|<iframe|<object|<embed|<a\b|\bon[a-z]+\s*=|javascript:|https?://|style=|src=",
                    re.IGNORECASE)


def hostile_cda() -> bytes:
    text = SAMPLE.read_text(encoding="utf-8")
    start = text.index("<text")
    end = text.index("</text>", start) + len("</text>")
    return (text[:start] + HOSTILE + text[end:]).encode("utf-8")


def test_a_hostile_narrative_renders_nothing_active() -> None:
    html = "".join(str(s.html) for s in sections(hostile_cda()))
    assert not ACTIVE.search(html), ACTIVE.search(html)
    assert '<p class="gras">Résultat <span>normal</span></p>' in html
    assert "voir le lien" in html  # a link's words stay, as plain text
    assert "&lt;b&gt;gras&lt;/b&gt;" in html  # text that looks like markup stays text
    assert '<td colspan="2">' in html
    assert "<ol><li>un</li><li>deux <sup>2</sup></li></ol>" in html
    assert "alert" not in html and "note" not in html


def test_the_ans_samples_render_their_tables_and_titles() -> None:
    found = sections(SAMPLE.read_bytes())
    assert [s.title for s in found][:1] == ["BIOCHIMIE"]
    html = "".join(str(s.html) for s in found)
    assert "<table>" in html and "Thyréostimuline (TSH)" in html and not ACTIVE.search(html)


def test_deep_nesting_is_cut_without_recursion() -> None:
    deep = "<content>" * 200 + "fond" + "</content>" * 200  # under the parser's own ceiling (256)
    text = SAMPLE.read_text(encoding="utf-8")
    start = text.index("<text")
    end = text.index("</text>", start) + len("</text>")
    data = (text[:start] + f"<text><paragraph>{deep}</paragraph></text>" + text[end:]).encode()
    html = "".join(str(s.html) for s in sections(data))
    assert 0 < html.count("<span>") <= MAX_DEPTH and "fond" not in html


def test_a_document_that_is_not_a_cda_renders_no_section() -> None:
    assert sections(b"<html><script>alert(1)</script></html>") == []
    assert sections(b"not xml at all") == []
    assert sections(b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>') == []


async def test_the_document_view_of_a_hostile_cda_shows_its_text_and_nothing_active(console: ConsoleServer) -> None:
    content = hostile_cda()
    async with console.sessions() as session, session.begin():
        review_id = await open_review(session, Review(904, "Les traits ne correspondent pas."), content,
                                      read_header(content, validate=False))
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        status, page, response = await get(client, f"/a-classer/{review_id}")
    assert status == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    narrative = page[page.index('id="narratif"'):]
    assert "Résultat" in narrative and "voir le lien" in narrative
    assert not ACTIVE.search(narrative), ACTIVE.search(narrative)
