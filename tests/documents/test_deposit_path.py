"""The zip bomb, zip slip and nesting attacks against the path a DMP deposit takes (R12–R15).

A deposit job reads its message with the same bounded reader as filing
(:func:`gateway.documents.pipeline.read_message`) and the bridge picks its CDAs and attachments from that
result (:func:`gateway.dmp_bridge.bridge.cdas_of`, :func:`gateway.dmp_bridge.attachments.find_attachments`):
each hostile archive must give nothing to deposit, quickly, and never an exception.
"""

from __future__ import annotations

import email.policy
import io
import time
import zipfile
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from documents.helpers import entry, raw_zip, zeros_bomb

from gateway.dmp_bridge.attachments import find_attachments
from gateway.dmp_bridge.bridge import cdas_of
from gateway.documents.pipeline import read_message
from gateway.documents.xdm_writer import build_xdm


def _metadata(bio: bytes) -> bytes:
    archive, _ = build_xdm([bio])
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return opened.read("IHE_XDM/SUBSET01/METADATA.XML")


def _mail(archive: bytes, pdf: bool = False) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = "dr@pro.test", "colleague@pro.test", "Courrier"
    message.set_content("Courrier joint.")
    message.add_attachment(archive, maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    if pdf:
        message.add_attachment(b"%PDF-1.4 rendering", maintype="application", subtype="pdf", filename="DOC0001.pdf")
    return message.as_bytes()


def _honest_bomb(bio: bytes) -> bytes:
    stream, size = zeros_bomb(3.5)
    return raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata(bio)),
                    dict(name="IHE_XDM/SUBSET01/DOC0001.XML", data=stream, method=8, crc=0, size=size & 0xFFFFFFFF)])


def _lying_bomb(bio: bytes) -> bytes:
    stream, _ = zeros_bomb(3.5)
    return raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata(bio)),
                    dict(name="IHE_XDM/SUBSET01/DOC0001.XML", data=stream, method=8, crc=0, size=1000)])


def _slip(name: str) -> Callable[[bytes], bytes]:
    def build(bio: bytes) -> bytes:
        return raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata(bio)),
                        entry("IHE_XDM/SUBSET01/DOC0001.XML", bio), entry(name, b"owned")])
    return build


def _nested_by_name(bio: bytes) -> bytes:
    inner, _ = build_xdm([bio])
    return raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata(bio)),
                    entry("IHE_XDM/SUBSET01/DOC0001.XML", bio), entry("IHE_XDM/SUBSET01/MORE.ZIP", inner)])


def _nested_by_content(bio: bytes) -> bytes:
    inner, _ = build_xdm([bio])
    return raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata(bio)), entry("IHE_XDM/SUBSET01/DOC0001.XML",
                                                                                  inner)])


HOSTILE = {
    "zip-bomb-honest-header": _honest_bomb,
    "zip-bomb-lying-header": _lying_bomb,
    "zip-slip-parent": _slip("../evil.xml"),
    "zip-slip-absolute": _slip("/etc/cron.d/evil"),
    "zip-slip-windows": _slip("IHE_XDM\\..\\..\\evil.xml"),
    "nested-archive-by-name": _nested_by_name,
    "nested-archive-by-content": _nested_by_content,
}


@pytest.mark.parametrize("attack", list(HOSTILE), ids=list(HOSTILE))
def test_r15_a_hostile_xdm_gives_nothing_to_deposit(bio: bytes, attack: str) -> None:
    raw = _mail(HOSTILE[attack](bio))
    started = time.perf_counter()
    extracted = read_message(raw, validate=False)
    assert cdas_of(extracted) == []
    assert find_attachments(extracted) == []
    assert time.perf_counter() - started < 3.0
    [refused] = extracted.documents
    assert refused.header is None and refused.problem  # the reason a person reads in the trail


def test_r15_deeply_nested_mime_gives_nothing_to_deposit() -> None:
    heads = [f"Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n".encode() for i in range(10_000)]
    tails = [f"\r\n--b{i}--\r\n".encode() for i in reversed(range(10_000))]
    raw = b"".join(heads) + b"Content-Type: application/pdf\r\n\r\n%PDF" + b"".join(tails)
    started = time.perf_counter()
    extracted = read_message(raw, validate=False)
    assert cdas_of(extracted) == [] and find_attachments(extracted) == []
    assert time.perf_counter() - started < 1.0


def test_r13_a_sound_xdm_gives_its_cda_and_its_rendering_is_not_deposited_again(bio: bytes) -> None:
    archive, _ = build_xdm([bio])
    extracted = read_message(_mail(archive, pdf=True), validate=False)
    [(content, header)] = cdas_of(extracted)
    assert content == bio and header.type_code == "11502-2"
    assert find_attachments(extracted) == []  # DOC0001.pdf renders DOC0001.XML of the zip
