"""Modified UTF-7 (RFC 3501 5.1.3) and the response writer (RFC 9051 4.3, 7).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.imap.proto import response, utf7
from gateway.imap.proto.response import Atom, Raw, Writer


@pytest.mark.parametrize(
    ("wire", "text"),
    [
        (b"INBOX", "INBOX"),
        (b"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),
        (b"&Jjo-!", "☺!"),
        (b"Hi Mom -&Jjo--!", "Hi Mom -☺-!"),
        (b"&-&-", "&&"),
        (b"&2D3cAA-", "\U0001f400"),
    ],
)
def test_rfc3501_modified_utf7_examples_round_trip(wire: bytes, text: str) -> None:
    assert utf7.decode(wire) == text
    assert utf7.encode(text) == wire


@pytest.mark.parametrize(
    "wire",
    [b"&Jjo-&&&-", b"&", b"a&b", b"&Jjo", b"&Jjp-", b"&AGE-", b"&2D0-", b"&AOkA-", b"\xc3\xa9", b"a\tb", b"&J-"],
)
def test_malformed_modified_utf7_is_refused(wire: bytes) -> None:
    with pytest.raises(ValueError):
        utf7.decode(wire)


@settings(max_examples=200, deadline=1000)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_modified_utf7_round_trips_any_text(text: str) -> None:
    assert utf7.decode(utf7.encode(text)) == text


@settings(max_examples=200, deadline=1000)
@given(st.binary(max_size=40))
def test_modified_utf7_decode_only_raises_value_error(data: bytes) -> None:
    try:
        text = utf7.decode(data)
    except ValueError:
        return
    assert utf7.encode(text) == data


def test_strings_are_atoms_quoted_or_literals_as_they_must_be() -> None:
    assert response.astring("Drafts") == b"Drafts"
    assert response.astring("NIL") == b'"NIL"'
    assert response.astring("two words") == b'"two words"'
    assert response.string('say "hi" \\') == b'"say \\"hi\\" \\\\"'
    assert response.string("line\r\nbreak") == b"{11}\r\nline\r\nbreak"
    assert response.string("x" * 1001) == b"{1001}\r\n" + b"x" * 1001
    assert response.string("é") == b"{2}\r\n\xc3\xa9"
    assert response.string("é", utf8=True) == b'"\xc3\xa9"'
    assert response.nstring(None) == b"NIL"
    assert response.literal(b"a\x00b", binary=True) == b"~{3}\r\na\x00b"


def test_mailbox_names_are_encoded_unless_utf8_accept() -> None:
    assert response.mailbox("inbox") == b"INBOX"
    assert response.mailbox("Envoyés") == b"Envoy&AOk-s"
    assert response.mailbox("Envoyés", utf8=True) == b'"Envoy\xc3\xa9s"'
    assert response.mailbox("A & B") == b'"A &- B"'


def test_status_lines_and_continuation() -> None:
    assert response.tagged("a1", "OK", "SELECT completed", "READ-WRITE") == b"a1 OK [READ-WRITE] SELECT completed\r\n"
    assert response.tagged("a2", "BAD", "no\r\ninjection") == b"a2 BAD no injection\r\n"
    assert response.untagged(b"3 EXISTS") == b"* 3 EXISTS\r\n"
    assert response.untagged_status("OK", "Still here", "ALERT") == b"* OK [ALERT] Still here\r\n"
    assert response.continuation() == b"+ Ready\r\n"
    assert response.continuation(b"") == b"+ \r\n"
    assert response.flag_list(["\\Seen", "$Junk"]) == b"(\\Seen $Junk)"


def test_writer_builds_nested_values_without_recursion() -> None:
    w = Writer()
    w.atom("12 FETCH ").value(
        [Atom("UID"), 7, Atom("FLAGS"), [Atom("\\Seen")], Atom("ENVELOPE"), Raw(b"(NIL)"), Atom("X"), [None, "a b", []]]
    )
    assert w.line() == b'* 12 FETCH (UID 7 FLAGS (\\Seen) ENVELOPE (NIL) X (NIL "a b" ()))\r\n'
    deep: list[object] = []
    node = deep
    for _ in range(5000):
        child: list[object] = []
        node.append(child)
        node = child
    out = Writer().value(deep).getvalue()  # type: ignore[arg-type]
    assert out == b"(" * 5001 + b")" * 5001
