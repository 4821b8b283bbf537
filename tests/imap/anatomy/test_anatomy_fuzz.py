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


def _delimiters_by_pattern(raw: bytes, boundary: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """RFC 2046 5.1.1's delimiter lines as one regular expression per boundary: the reference the analyser's
    search (a ``find`` of the boundary, then one constant pattern) must agree with."""
    import re
    escaped = re.escape(boundary)
    pattern = re.compile(rb"\n--" + escaped + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    parts: list[tuple[int, int]] = []
    opened = None
    first = re.compile(rb"--" + escaped + rb"(--)?[ \t]*(?:\r?\n|\Z)").match(raw, start, end)
    if first is not None:
        if first.group(1):
            return []
        opened = first.end()
    pos = opened if opened is not None else start
    while (match := pattern.search(raw, max(pos - 1, start), end)) is not None:
        before = match.start() - 1 if match.start() > start and raw[match.start() - 1] == 0x0D else match.start()
        if opened is not None:
            parts.append((opened, max(opened, before)))
        if match.group(1):
            return parts
        opened = pos = match.end()
    if opened is not None:
        parts.append((opened, end))
    return parts


_DELIMITER_PIECES = [b"\r\n", b"\n", b"\r", b"--", b"--b", b"--b--", b"b", b" ", b"\t", b"x", b"-",
                     b"--b\r\n", b"x\r\n--b\r\n", b"\r\n--b--", b"\n--b \t\n", b"\r\n--bb\r\n"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_DELIMITER_PIECES), max_size=60).map(b"".join), st.data())
def test_delimiters_are_found_as_the_rfc_pattern_finds_them(raw: bytes, data: st.DataObject) -> None:
    from gateway.anatomy.analyse import _delimiters
    start = data.draw(st.integers(0, len(raw)))
    end = data.draw(st.integers(start, len(raw)))
    assert _delimiters(raw, b"b", start, end) == _delimiters_by_pattern(raw, b"b", start, end)
