"""Search and sort keys: decoded, case-folded text (RFC 9051 6.4.4), base subject (RFC 5256 2.1), RFC 5957."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.anatomy.analyse import analyse
from gateway.anatomy.limits import MAX_TEXT
from gateway.anatomy.text import base_subject, search_fields

from .messages import MIXED


@pytest.mark.parametrize(("subject", "base"), [
    ("Re: hello", "hello"), ("RE: Re: re:hello", "hello"), ("Fwd: [list] Re: hello (fwd)", "hello"),
    ("[fwd: Re: hello]", "hello"), ("[PATCH] fix", "fix"), ("[only blob]", "[only blob]"),
    ("Fw:  spaced   out ", "spaced out"), ("=?utf-8?q?Re=3A_caf=C3=A9?=", "café"), ("", ""), ("Re:", ""),
])
def test_rfc5256_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


def test_search_fields_of_a_mixed_message() -> None:
    found = search_fields(analyse(MIXED), MIXED)
    assert found.subject == "résultats du bilan"
    assert found.sort_subject == "résultats du bilan"
    assert found.from_ == "dr demo <dr.demo@pro.gateway.test>"
    assert (found.sort_from, found.display_from, found.display_to) == ("dr.demo", "dr demo",
                                                                       "patient@patient.gateway.test")
    assert found.sent_at == datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
    assert (found.message_id, found.references) == ("<m1@pro.gateway.test>", "<m0@pro.gateway.test>")
    assert "bonjour, voici le résultat." in found.body  # quoted-printable and UTF-8 decoded
    assert "compte rendu & le reste" in found.body and "<b>" not in found.body  # HTML as text
    assert "texte transmis unique." in found.body and "subject: forwarded" in found.body
    assert "jvberi0x" not in found.body  # attachments are not text
    assert "message-id: <m1@pro.gateway.test>" in found.header


def test_unparseable_date_and_missing_fields() -> None:
    found = search_fields(analyse(b"Date: someday\r\nIn-Reply-To: <p@x> <q@x>\r\n\r\nx"), b"")
    assert found.sent_at is None and found.references == "<p@x>" and found.sort_from == ""


def test_search_text_is_bounded() -> None:
    raw = b"Content-Type: text/plain\r\n\r\n" + b"abcdefgh\r\n" * 300_000
    assert len(search_fields(analyse(raw), raw).body) <= MAX_TEXT


def test_charsets_and_nul_are_cleaned() -> None:
    raw = b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\x00 OK"
    assert search_fields(analyse(raw), raw).body == "café ok"
    raw = b"Content-Type: text/plain; charset=x-bogus\r\n\r\ncaf\xc3\xa9"
    assert search_fields(analyse(raw), raw).body == "café"
