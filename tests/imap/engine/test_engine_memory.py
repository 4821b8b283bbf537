"""What an idle connection keeps: the TLS layer's memory BIOs give back their last burst before a wait.

Real sockets, real TLS, implicit and STARTTLS; the server-side BIOs are read through gateway.tls_buffers.
"""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from typing import Any

import pytest
from imap.engine.engine_support import ALICE, EngineHarness, message

from gateway import tls_buffers

BIG = 200_000
BIOS = tls_buffers._memory_bios()


def bio_capacities(harness: EngineHarness) -> list[tuple[int, int]]:
    """(incoming, outgoing) storage of each open session's TLS BIOs, read in the server's loop."""

    async def read() -> list[tuple[int, int]]:
        assert harness.service is not None
        bios = BIOS
        assert bios is not None
        result = []
        for session in harness.service.sessions:
            protocol: Any = session.channel.writer.transport._ssl_protocol  # type: ignore[attr-defined]
            result.append(tuple(bios._capacity(bios.pointer(getattr(protocol, name)))  # type: ignore[arg-type]
                                for name in ("_incoming", "_outgoing")))
        return result  # type: ignore[return-value]

    return harness.call(read())


def wait_sessions(harness: EngineHarness, count: int) -> None:
    async def until() -> None:
        assert harness.service is not None
        async with asyncio.timeout(10):
            while len(harness.service.sessions) != count:
                await asyncio.sleep(0.01)

    harness.call(until())


def test_memory_bio_released_when_empty_and_usable_after():
    """A BIO grown by a burst is given back once read out; what is written next reads back whole."""
    bio = ssl.MemoryBIO()
    bio.write(b"x" * 50_000)
    bios = BIOS
    if bios is None:
        pytest.skip("no ctypes access to this OpenSSL's memory BIOs")
    assert not bios.release(bio)  # something is still in it: kept
    assert bio.read() == b"x" * 50_000
    assert bios.release(bio)
    assert bios._capacity(bios.pointer(bio)) == 0  # type: ignore[arg-type]
    bio.write(b"after")
    assert bio.read() == b"after"


@pytest.mark.parametrize("starttls", [False, True], ids=["implicit-tls", "starttls"])
def test_idle_connection_keeps_no_burst_in_its_tls_bios(engine: EngineHarness, starttls: bool):
    """After a 200 kB APPEND and FETCH, the connection waiting for its next command holds under 1 KiB of BIOs
    (they held the handshake flight and the last records before)."""
    engine.deliver(ALICE, message("Grand", "ligne de texte\r\n" * (BIG // 16)))
    client: imaplib.IMAP4 = engine.imap_starttls() if starttls else engine.imaps()
    try:
        wait_sessions(engine, 1)
        if BIOS is None:
            pytest.skip("no ctypes access to this OpenSSL's memory BIOs")
        client.select("INBOX")
        typ, data = client.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and len(data[0][1]) > BIG
        typ, _ = client.append("INBOX", "", imaplib.Time2Internaldate(0), b"Subject: x\r\n\r\n" + b"y" * BIG)
        assert typ == "OK"
        assert client.noop()[0] == "OK"  # the server answered and now waits for the next command
        [(incoming, outgoing)] = bio_capacities(engine)
        assert incoming < tls_buffers.RELEASE_AT and outgoing < tls_buffers.RELEASE_AT
        typ, data = client.fetch("1", "(BODY.PEEK[])")  # and the connection still carries whole answers
        assert typ == "OK" and len(data[0][1]) > BIG
    finally:
        client.logout()
