"""The bytes-level header reader routing uses on every message (RFC 5322 unfolding, RFC 2047 Subject), and
its hostile-input fuzz tests: it must never raise anything but HeaderError, and stay bounded."""

from __future__ import annotations

import email.policy
import time
from email.parser import BytesHeaderParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.routing.headers import (
    MAX_HEADER_BYTES,
    HeaderError,
    addresses,
    decode_encoded_words,
    summarise,
    without_bcc,
)


def test_folded_fields_are_unfolded_rfc5322_2_2_3():
    summary = summarise(b"From: Dr House\r\n <Dr.House@Pro.Test>\r\nSubject: Compte\r\n\trendu\r\n\r\nbody")
    assert summary.from_addresses == ("dr.house@pro.test",)
    assert summary.subject == "Compte\trendu"


def test_rfc2047_subject_is_decoded_and_adjacent_words_join():
    raw = b"From: a@b.test\r\nSubject: =?utf-8?q?R=C3=A9sultats?= =?ISO-8859-1?B?IOk=?= [FIN]\r\n\r\n"
    summary = summarise(raw)
    assert summary.subject == "Résultats é [FIN]" and summary.fin_in_subject


def test_rfc6532_utf8_headers_are_read_as_utf8():
    summary = summarise("From: Élodie <élodie@pro.test>\r\nSubject: Bilan rénal\r\n\r\n".encode())
    assert summary.from_addresses == ("élodie@pro.test",) and summary.subject == "Bilan rénal"


@pytest.mark.parametrize(("value", "expected"), [
    ("a@b.test", ["a@b.test"]),
    ('"Dr, House" <A@B.test> (cabinet (Paris))', ["a@b.test"]),
    ("a@b.test, Wilson <c@d.test>", ["a@b.test", "c@d.test"]),
    ("Equipe: a@b.test, c@d.test;", ["a@b.test", "c@d.test"]),
    ("undisclosed-recipients:;", []),
    ("<@relay.test:a@b.test>", ["a@b.test"]),
    ("", []),
])
def test_address_lists_rfc5322_3_4(value: str, expected: list[str]):
    assert addresses(value) == expected


def test_several_from_fields_never_match_one_account():
    summary = summarise(b"From: a@b.test\r\nFrom: a@b.test\r\n\r\n")
    assert summary.from_addresses != ("a@b.test",)


def test_sender_field_is_read():
    assert summarise(b"From: a@b.test\r\nSender: <C@D.test>\r\n\r\n").sender_addresses == ("c@d.test",)
    assert summarise(b"From: a@b.test\r\n\r\n").sender_addresses == ()


def test_bcc_is_removed_with_its_continuation_lines_and_only_from_the_header():
    raw = b"From: a@b.test\r\nBcc: x@y.test,\r\n z@y.test\r\nSubject: s\r\n\r\nBcc: in the body\r\n"
    assert summarise(raw).has_bcc
    assert without_bcc(raw) == b"From: a@b.test\r\nSubject: s\r\n\r\nBcc: in the body\r\n"
    assert without_bcc(b"From: a@b.test\r\n\r\nbody") == b"From: a@b.test\r\n\r\nbody"


def test_header_section_over_the_bound_is_refused():
    with pytest.raises(HeaderError):
        summarise(b"X: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n")


def test_many_from_fields_are_refused():
    with pytest.raises(HeaderError):
        summarise(b"From: a@b.test\r\n" * 200 + b"\r\n")


def test_hostile_shapes_stay_linear():
    """Nested comments, endless continuation lines and encoded words: bounded work, no recursion."""
    shapes = [
        b"From: " + b"(" * 100_000 + b"a@b.test\r\n\r\n",
        b"From: a@b.test\r\nSubject: x" + b"\r\n x" * 60_000 + b"\r\n\r\n",
        b"From: a@b.test\r\nSubject: " + b"=?utf-8?q?a?= " * 15_000 + b"\r\n\r\n",
        b"From: " + b"<" * 200_000 + b"\r\n\r\n",
    ]
    for raw in shapes:
        start = time.perf_counter()
        try:
            summarise(raw)
        except HeaderError:
            pass
        assert time.perf_counter() - start < 2.0


def test_reader_agrees_with_the_standard_library_on_ordinary_messages():
    raw = (b"From: \"House, Gregory\" <g.house@pro.gateway.test>\r\nTo: b@c.test\r\n"
           b"Subject: =?utf-8?q?Suivi_termin=C3=A9?=\r\nMessage-ID: <1@x>\r\nX-MSS-MES: FIN\r\n\r\nbody\r\n")
    ours = summarise(raw)
    theirs = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    assert ours.subject == str(theirs["Subject"])
    assert ours.from_addresses == tuple(a.addr_spec.lower() for a in theirs["From"].addresses)
    assert ours.message_id == str(theirs["Message-ID"]) and ours.fin_header


field_names = st.sampled_from([b"From", b"from", b"Sender", b"Subject", b"Bcc", b"Message-ID", b"Date",
                               b"X-MSS-MES", b"X-Gateway-Patient-Replies", b"To", b"X"])
values = st.binary(max_size=200) | st.text(
    alphabet=st.sampled_from([*list('ab@.<>(),:;"\\ =?_QB\t\r\n'), "é", "\xa0"]), max_size=200
).map(lambda t: t.encode())


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(field_names, values), max_size=30), st.binary(max_size=100))
def test_fuzz_summarise_raises_only_header_error(fields: list[tuple[bytes, bytes]], body: bytes):
    raw = b"".join(name + b":" + value + b"\r\n" for name, value in fields) + b"\r\n" + body
    try:
        summary = summarise(raw)
    except HeaderError:
        return
    assert all(isinstance(a, str) for a in summary.from_addresses)
    stripped = without_bcc(raw)
    assert not summarise(stripped).has_bcc or b"\n" not in stripped[:stripped.find(b"\r\n\r\n")]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_encoded_word_decoding_never_raises(value: str):
    assert isinstance(decode_encoded_words(value), str)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_address_lists_never_raise(value: str):
    assert all(isinstance(a, str) and a == a.lower() for a in addresses(value))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2100), max_size=12), st.booleans())
def test_fuzz_long_line_scan_agrees_with_splitting(lengths: list[int], final_newline: bool):
    from gateway.smtp.data_lines import MAX_LINE, has_long_line

    data = b"\n".join(b"y" * n for n in lengths) + (b"\n" if final_newline else b"")
    assert has_long_line(data) == any(n > MAX_LINE for n in lengths)
