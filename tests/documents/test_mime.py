"""The MIME walker: real structures read right, hostile ones refused fast with bounded memory."""

from __future__ import annotations

import base64
import random
import time
import tracemalloc
from email.message import EmailMessage

import pytest

from gateway.documents.errors import MimeRefused
from gateway.documents.limits import MimeLimits
from gateway.documents.mime import walk


def _message() -> bytes:
    outer = EmailMessage()
    outer["From"] = "lab@pro.gateway.test"
    outer["To"] = "doctor@pro.gateway.test"
    outer["Subject"] = "XDM/1.0/DDM+CR"
    outer.set_content("Bonjour, résultat ci-joint.")
    outer.add_attachment(b"PK\x03\x04" + bytes(200), maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    forwarded = EmailMessage()
    forwarded["Subject"] = "forwarded"
    forwarded.set_content("inner text")
    forwarded.add_attachment(b"%PDF-1.4 inner", maintype="application", subtype="pdf", filename="inner.pdf")
    outer.add_attachment(forwarded)
    return outer.as_bytes()


def test_walks_nested_multipart_and_forwarded_message() -> None:
    parts = walk(_message())
    assert [p.content_type for p in parts] == ["text/plain", "application/zip", "text/plain", "application/pdf"]
    assert parts[0].data.decode("utf-8").startswith("Bonjour, résultat")
    assert parts[1].filename == "IHE_XDM.ZIP" and parts[1].data == b"PK\x03\x04" + bytes(200)
    assert parts[3].filename == "inner.pdf" and parts[3].data == b"%PDF-1.4 inner"
    assert parts[3].depth > parts[1].depth  # inside the forwarded message/rfc822
    assert len({p.path for p in parts}) == len(parts)


def test_quoted_printable_and_rfc2231_file_name_with_lf_line_endings() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=\"xyz\"\n\n"
           b"preamble\n--xyz\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
           b"caf=C3=A9 =\nsuite\n"
           b"--xyz\nContent-Type: text/xml\nContent-Disposition: attachment;\n"
           b" filename*0*=utf-8''compte%20rendu%20;\n filename*1*=m%C3%A9dical.xml\n\n<x/>\n"
           b"--xyz--\nepilogue\n")
    text, xml = walk(raw)
    assert text.data == "café suite".encode()
    assert xml.filename == "compte rendu médical.xml"
    assert xml.is_attachment and xml.data == b"<x/>"


def test_file_name_cannot_carry_a_directory() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/pdf; name=\"../../etc/passwd\"\r\n\r\nx\r\n--b--\r\n")
    (part,) = walk(raw)
    assert part.filename == "passwd"


def test_boundary_prefix_of_a_longer_line_is_not_a_delimiter() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\nContent-Type: text/plain\r\n\r\n"
           b"--abc is text, not a delimiter\r\n--ab--\r\n")
    (part,) = walk(raw)
    assert part.data == b"--abc is text, not a delimiter"


def _nested(levels: int) -> bytes:
    heads = [f"Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n".encode() for i in range(levels)]
    tails = [f"\r\n--b{i}--\r\n".encode() for i in reversed(range(levels))]
    return b"".join(heads) + b"Content-Type: text/plain\r\n\r\nleaf" + b"".join(tails)


def test_ten_thousand_nested_parts_refused_fast_with_bounded_memory() -> None:
    raw = _nested(10_000)
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(MimeRefused) as refused:
        walk(raw)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert refused.value.reason == "too-deep"
    assert "nested deeper" in str(refused.value)
    assert elapsed < 1.0
    assert peak < 4 * len(raw) + (2 << 20)


def test_ten_thousand_sibling_parts_refused_by_count() -> None:
    body = b"".join(b"--s\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(10_000))
    raw = b"Content-Type: multipart/mixed; boundary=s\r\n\r\n" + body + b"--s--\r\n"
    started = time.perf_counter()
    with pytest.raises(MimeRefused) as refused:
        walk(raw)
    assert refused.value.reason == "too-many-parts"
    assert time.perf_counter() - started < 1.0


def test_fifty_megabyte_attachment_refused_without_decoding_it() -> None:
    encoded = base64.encodebytes(bytes(50 * 1024 * 1024))
    raw = (b"Content-Type: multipart/mixed; boundary=big\r\n\r\n--big\r\nContent-Type: application/pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=big.pdf\r\n\r\n"
           + encoded + b"\r\n--big--\r\n")
    del encoded
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(MimeRefused) as refused:
        walk(raw)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert refused.value.reason in {"part-too-large", "too-large"}
    assert peak < 4 << 20  # nothing of the 50 MB was decoded or copied
    assert elapsed < 2.0


def test_whole_message_over_the_raw_limit_refused() -> None:
    with pytest.raises(MimeRefused) as refused:
        walk(b"Subject: x\r\n\r\n" + bytes(2048), MimeLimits(max_message_bytes=1024))
    assert refused.value.reason == "message-too-large"


def test_total_decoded_size_is_capped_across_parts() -> None:
    body = b"".join(b"--s\r\nContent-Type: application/pdf\r\n\r\n" + bytes(600) + b"\r\n" for _ in range(3))
    raw = b"Content-Type: multipart/mixed; boundary=s\r\n\r\n" + body + b"--s--\r\n"
    with pytest.raises(MimeRefused) as refused:
        walk(raw, MimeLimits(max_decoded_total=1500))
    assert refused.value.reason == "too-large"


def test_malformed_inputs_are_refused_with_a_reason() -> None:
    no_boundary = b"Content-Type: multipart/mixed\r\n\r\nbody"
    with pytest.raises(MimeRefused, match="boundary"):
        walk(no_boundary)
    bad_base64 = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\nQ"
    with pytest.raises(MimeRefused) as refused:
        walk(bad_base64)
    assert refused.value.reason == "bad-base64"
    huge_header = b"X-Long: " + b"a" * 100_000 + b"\r\n\r\nbody"
    with pytest.raises(MimeRefused) as refused:
        walk(huge_header)
    assert refused.value.reason == "header-too-large"


def test_random_mutations_never_escape_as_other_exceptions() -> None:
    """Fuzz: whatever bytes come in, the walker returns parts or raises MimeRefused, nothing else."""
    seed = _message()
    rng = random.Random(4)
    for _ in range(300):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 20)):
            position = rng.randrange(len(data))
            data[position] = rng.choice(b"-\r\n:=;\"\\\x00\xff ab*'%")
        try:
            walk(bytes(data))
        except MimeRefused:
            pass


def test_rfc2047_encoded_file_name_is_decoded() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf;\r\n"
           b" name=\"=?UTF-8?B?Y29tcHRlIHJlbmR1IG3DqWRpY2FsLnBkZg==?=\"\r\n\r\nx\r\n--b--\r\n")
    (part,) = walk(raw)
    assert part.filename == "compte rendu médical.pdf"
