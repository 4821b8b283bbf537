"""Hostile bytes: the analysis, its stored form, rendering and search keys never raise and stay consistent."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.anatomy import codec
from gateway.anatomy.analyse import analyse
from gateway.anatomy.text import search_fields
from gateway.imap.anatomy import render
from gateway.imap.proto.fetch import Section

_PIECES = [b"\r\n", b"\n", b"--b", b"--b--", b"Content-Type: multipart/mixed; boundary=b\r\n",
           b"Content-Type: message/rfc822\r\n", b"Content-Type: text/plain; charset=utf-8\r\n",
           b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
           b"From: \"a\" <a@b>, g: c@d;\r\n", b"Subject: =?utf-8?q?x=C3?=\r\n", b" folded\r\n", b"\xff\x00",
           b"Content-Disposition: attachment; filename=\"x\r\n", b"(", b"\"", b"<", b";", b"=", b"abc"]

messages = st.one_of(st.binary(max_size=2000),
                     st.lists(st.sampled_from(_PIECES), max_size=200).map(b"".join))


def _read(raw: bytes) -> render.Reader:
    async def read(start: int, end: int) -> bytes:
        assert 0 <= start <= end <= len(raw)
        return raw[start:end]
    return read


@settings(max_examples=400, deadline=200, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_any_bytes_give_a_consistent_anatomy(raw: bytes) -> None:
    anatomy = analyse(raw)
    assert anatomy.size == len(raw)
    assert codec.decode(codec.encode(anatomy)) == anatomy
    render.body_structure(anatomy)
    render.body_structure(anatomy, extended=False, utf8=True)
    render.envelope(anatomy.root.envelope)
    search_fields(anatomy, raw)
    for part in anatomy.parts:
        assert 0 <= part.header_start <= part.body_start <= part.body_end <= len(raw)
    for path, part in render.part_paths(anatomy):
        assert render.locate(anatomy, path) is part
        for text in (None, "MIME", "HEADER", "TEXT"):
            data = asyncio.run(render.section_bytes(anatomy, Section(path, text), _read(raw)))
            if text is None:
                assert data is not None and len(data) == part.size
        try:
            asyncio.run(render.binary_bytes(anatomy, path, _read(raw)))
        except render.UnknownTransferEncoding:
            pass


@settings(max_examples=200, deadline=200)
@given(st.binary(max_size=300))
def test_damaged_stored_form_raises_only_value_error(data: bytes) -> None:
    for candidate in (data, b"j1" + data, b"z1" + data):
        try:
            codec.decode(candidate)
        except ValueError:
            pass
