"""Hostile HL7 through a real socket: every bad input gets AR/AE or a closed connection, in bounded time, and the
listener goes on serving the next peer (a well-formed message is still accepted afterwards)."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from support.hl7_peer import DOCTOR, LAB, PATIENT, Hl7Gateway, Mllp, code_of, oru
from support.pki import PKIFiles
from support.store import Store

from gateway.hl7.mllp import frame


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, pki: PKIFiles) -> Iterator[Hl7Gateway]:
    folder = tmp_path_factory.mktemp("hl7-hostile")
    url = f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"
    store = Store(url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()
    daemon = Hl7Gateway(folder / "gw", pki, url).start()
    yield daemon
    daemon.stop()


def still_serving(gateway: Hl7Gateway) -> None:
    client = Mllp(gateway.hl7_port)
    try:
        answer = client.exchange(oru(f"OK-{time.monotonic_ns()}", destinations=("DESTMSSANTEPS",)))
        assert code_of(answer) == ("AA", None), answer
    finally:
        client.close()


def rss(gateway: Hl7Gateway) -> int:
    assert gateway.process is not None
    parent = psutil.Process(gateway.process.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])


def test_truncated_segments_get_ae_naming_the_field(gateway: Hl7Gateway):
    message = oru("T-1")
    client = Mllp(gateway.hl7_port)
    answer = client.exchange(message[:message.index(b"\rPID") + 8])
    client.close()
    assert code_of(answer) == ("AE", "PID^1^3"), answer
    still_serving(gateway)


def test_wrong_encoding_characters_get_ar(gateway: Hl7Gateway):
    client = Mllp(gateway.hl7_port)
    answer = client.exchange(oru("E-1").replace(b"MSH|^~\\&|", b"MSH|^^^^|", 1))
    client.close()
    assert code_of(answer) == ("AR", "MSH^1^2"), answer
    still_serving(gateway)


def test_a_10_mb_obx_gets_ae_without_holding_the_memory(gateway: Hl7Gateway):
    before = rss(gateway)
    client = Mllp(gateway.hl7_port)
    answer = client.exchange(oru("BIG-1", cda=b"<x/>" * 1_900_000))  # 7.6 MB, 10 MB of base64 in OBX-5
    client.close()
    assert code_of(answer) == ("AE", "OBX^1^5"), answer
    assert rss(gateway) - before < 200 * 1024 * 1024
    still_serving(gateway)


def test_ten_thousand_segments_get_ar(gateway: Hl7Gateway):
    client = Mllp(gateway.hl7_port)
    started = time.monotonic()
    answer = client.exchange(oru("SEG-1") + b"\rNTE|1||x" * 10_000)
    client.close()
    assert code_of(answer)[0] == "AR", answer
    assert time.monotonic() - started < 10
    still_serving(gateway)


def test_a_zip_bomb_in_disguise_gets_ae_from_the_documents_readers(gateway: Hl7Gateway):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("CR-BIO.xml", b"<ClinicalDocument>" + b" " * 200_000_000 + b"</ClinicalDocument>")
    client = Mllp(gateway.hl7_port)
    answer = client.exchange(oru("ZIP-1", cda=buffer.getvalue()))
    client.close()
    assert code_of(answer) == ("AE", "OBX^1^5"), answer
    still_serving(gateway)


def test_a_frame_without_end_block_is_closed_after_the_read_timeout(gateway: Hl7Gateway):
    client = Mllp(gateway.hl7_port)
    client.send_raw(frame(oru("NOEND-1"))[:-2])  # the message, without <FS><CR>
    started = time.monotonic()
    assert client.closed_by_peer(15)  # [hl7] read_timeout = 2 in these tests
    assert time.monotonic() - started < 10
    client.close()
    still_serving(gateway)


def test_an_endless_frame_is_closed_at_the_size_cap(gateway: Hl7Gateway):
    client = Mllp(gateway.hl7_port)
    chunk = b"OBX|1|ED|x||" + b"A" * 1_000_000
    sent = 0
    closed = False
    try:
        client.send_raw(b"\x0b")
        while sent < 40_000_000:  # the cap is 12 MB here
            client.send_raw(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    assert closed or client.closed_by_peer(15)
    assert sent < 30_000_000
    client.close()
    still_serving(gateway)


def test_an_unknown_peer_is_closed_before_anything_is_read(tmp_path: Path, pki: PKIFiles, sqlite_url: str):
    Store(sqlite_url).add_mailbox(LAB, "APP")
    daemon = Hl7Gateway(tmp_path / "gw", pki, sqlite_url,
                        hl7_extra="").start()
    try:
        config = daemon.config_path.read_text(encoding="utf-8").replace('addresses = ["127.0.0.1"]',
                                                                        'addresses = ["10.9.9.9"]')
        daemon.config_path.write_text(config, encoding="utf-8")
        daemon.restart()
        client = Mllp(daemon.hl7_port)
        client.send_raw(frame(oru("X-1")))
        assert client.closed_by_peer(10)
        client.close()
        assert daemon.wait_log('"reason": "unknown_peer"')
    finally:
        daemon.stop()


def test_the_hl7_simulator_sends_the_ans_sample_with_python_hl7_and_gets_aa(gateway: Hl7Gateway):
    """`gateway hl7-simulator send` (python-hl7's asyncio MLLP client) against the listener."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gateway.cli", "hl7-simulator", "send", "--to",
                           f"127.0.0.1:{gateway.hl7_port}", "--recipient", DOCTOR, "--dest", "DESTMSSANTEPS,"
                           "DESTMSSANTEPAT", "--count", "2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.count("MSA|AA|") == 2
