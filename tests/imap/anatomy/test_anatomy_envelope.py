"""ENVELOPE address lists (RFC 9051 7.5.2): groups, routes, several senders and broken input never raise."""

from __future__ import annotations

from gateway.anatomy.analyse import analyse
from gateway.anatomy.envelope import Address, parse_addresses
from gateway.anatomy.headers import decode_words
from gateway.imap.anatomy import render


def test_group_is_written_with_start_and_end_markers() -> None:
    assert parse_addresses("Équipe: a@x.test, \"B, Dr\" <b@y.test>;, c@z.test") == (
        Address(None, None, "Équipe", None), Address(None, None, "a", "x.test"),
        Address("B, Dr", None, "b", "y.test"), Address(None, None, None, None), Address(None, None, "c", "z.test"))


def test_empty_group_and_unterminated_group() -> None:
    assert parse_addresses("undisclosed-recipients:;") == (
        Address(None, None, "undisclosed-recipients", None), Address(None, None, None, None))
    assert parse_addresses("list: a@b")[-1] == Address(None, None, None, None)


def test_route_comment_name_and_domain_literal() -> None:
    assert parse_addresses("<@relay.test,@other.test:joe@example.test>") == (
        Address(None, "@relay.test,@other.test", "joe", "example.test"),)
    assert parse_addresses("joe@example.test (Joe Bloggs)") == (Address("Joe Bloggs", None, "joe", "example.test"),)
    assert parse_addresses("x@[192.0.2.1]") == (Address(None, None, "x", "[192.0.2.1]"),)


def test_several_sender_addresses_are_all_kept() -> None:
    raw = b"From: a@x.test\r\nSender: s1@x.test, s2@x.test\r\n\r\n"
    envelope = analyse(raw).root.envelope
    assert envelope is not None
    assert [a.mailbox for a in envelope.sender] == ["s1", "s2"]
    assert envelope.reply_to == envelope.from_  # RFC 9051 7.5.2 default


def test_broken_addresses_give_best_effort_lists() -> None:
    for value in ('"unterminated <a@b', "<<>>", "a@b@c", "@", ",,,", ":;:;", "<a@b", "a@b>", "(((", "\\",
                  '"', "Name <>", "a" * 10_000, "<" * 5_000, "x:" * 3_000, "(" * 10_000 + "a@b"):
        result = parse_addresses(value)
        assert isinstance(result, tuple)
        render.envelope(analyse(b"From: " + value.encode() + b"\r\n\r\n").root.envelope)
    assert parse_addresses("a@b@c") == (Address(None, None, "a@b", "c"),)


def test_missing_header_fields_are_nil() -> None:
    assert render.envelope(analyse(b"\r\nbody").root.envelope) == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_rfc2047_words_decoded_for_search_and_kept_for_envelope() -> None:
    assert decode_words("=?utf-8?q?J=C3=A9r=C3=B4me?= =?ISO-8859-1?B?6Q==?= x") == "Jérômeé x"
    assert decode_words("=?x-unknown?q?abc?=") == "=?x-unknown?q?abc?="
    assert decode_words("=?utf-8?b?!!!?=") in ("=?utf-8?b?!!!?=", "")
    raw = b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n"
    assert b'"=?utf-8?q?caf=C3=A9?="' in render.envelope(analyse(raw).root.envelope)
