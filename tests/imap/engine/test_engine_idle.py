"""IDLE fan-out and timers: many idling sessions woken at once by one delivery; autologout before login."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from imap.engine.engine_support import ALICE, PASSWORD, EngineHarness, make_engine, message
from support.pki import PKIFiles

from gateway.imap.engine.server import Timers

IDLERS = 1000


async def _idler(harness: EngineHarness, ready: asyncio.Queue[None]) -> tuple[asyncio.StreamReader,
                                                                                asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", harness.imaps_port, ssl=harness.client_context(),
                                                   server_hostname="127.0.0.1", limit=1 << 20)
    await reader.readline()
    writer.write(f'a LOGIN {ALICE} "{PASSWORD}"\r\nb SELECT INBOX\r\nc IDLE\r\n'.encode())
    while not (line := await reader.readline()).startswith(b"+ "):
        assert line and not line.startswith((b"a NO", b"b NO", b"c NO", b"c BAD")), line
    ready.put_nowait(None)
    return reader, writer


async def _until_exists(reader: asyncio.StreamReader) -> float:
    while not (await reader.readline()).endswith(b"EXISTS\r\n"):
        pass
    return time.monotonic()


@pytest.mark.slow
async def test_one_delivery_wakes_every_one_of_a_thousand_idlers(engine_sqlite: EngineHarness):
    ready: asyncio.Queue[None] = asyncio.Queue()
    semaphore = asyncio.Semaphore(50)

    async def start() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with semaphore:
            return await _idler(engine_sqlite, ready)

    first = await start()  # its login fills the login cache: the others pay no password hash
    clients = [first, *await asyncio.gather(*(start() for _ in range(IDLERS - 1)))]
    assert ready.qsize() == IDLERS
    await asyncio.to_thread(engine_sqlite.deliver, ALICE, message("Pour tous"))
    woken = await asyncio.wait_for(asyncio.gather(*(_until_exists(r) for r, _ in clients)), 120)
    assert len(woken) == IDLERS  # how fast: bench/imap.py --idle-wake
    for _, writer in clients:
        writer.close()


def test_unauthenticated_connection_is_logged_out_by_its_timer(tmp_path: Path, pki: PKIFiles):
    harness = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'imap.sqlite3'}", pki,
                          timers=Timers(unauthenticated=0.5, authenticated=60.0, account_check=0.0))
    try:
        context = harness.client_context()
        with context.wrap_socket(socket.create_connection(("127.0.0.1", harness.imaps_port), timeout=10),
                                 server_hostname="127.0.0.1") as sock:
            data = b""
            deadline = time.monotonic() + 10
            while b"* BYE" not in data and time.monotonic() < deadline:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert b"* BYE Autologout" in data
    finally:
        harness.stop()
