"""End to end through real ``gateway serve`` processes: SMTP submission in one, IMAP IDLE in another."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aioimaplib
import pytest
from support.mail import PRO, PRO2, message
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

PASSWORD = "secret-password"


def wait_imap(process: GatewayProcess, timeout: float = 30.0) -> None:
    """The process counts as ready once SMTP listens; IMAP starts just after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", process.imaps_port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("IMAP did not start:\n" + "\n".join(process.log_lines[-20:]))


@pytest.fixture
def two_gateways(tmp_path: Path, pki: PKIFiles, store_url: str) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateway processes on one store (PostgreSQL, or one SQLite file)."""
    store = Store(store_url)
    store.add_mailbox(PRO, "PER", PASSWORD)
    store.add_mailbox(PRO2, "PER", PASSWORD)
    first = GatewayProcess(tmp_path / "a", pki, store_url)
    second = GatewayProcess(tmp_path / "b", pki, store_url)
    first.start()
    try:
        second.start()
        wait_imap(first)
        wait_imap(second)
    except BaseException:
        first.stop()
        raise
    yield first, second
    second.stop()
    first.stop()
    print("\n".join(first.log_lines[-20:] + second.log_lines[-20:]))


async def _idle_until_exists(client: aioimaplib.IMAP4_SSL) -> None:
    while True:
        push = await client.wait_server_push(timeout=10)
        if any(isinstance(line, bytes) and line.endswith(b"EXISTS") for line in push):
            return


async def test_smtp_delivery_in_one_process_wakes_idle_in_the_other(two_gateways: tuple[GatewayProcess, ...]):
    smtp_side, imap_side = two_gateways
    client = aioimaplib.IMAP4_SSL("127.0.0.1", imap_side.imaps_port, ssl_context=imap_side.client_tls(), timeout=30)
    await client.wait_hello_from_server()
    assert (await client.login(PRO2, PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    raw = message(PRO, PRO2, "Resultat", "Voir piece jointe.")
    latencies = []
    for _ in range(3):
        idle = await client.idle_start(timeout=30)

        def send() -> None:
            with smtp_side.smtp(PRO, PASSWORD) as smtp:
                smtp.sendmail(PRO, [PRO2], raw)

        await asyncio.to_thread(send)
        accepted = time.monotonic()
        await _idle_until_exists(client)
        latencies.append(time.monotonic() - accepted)
        client.idle_done()
        assert (await asyncio.wait_for(idle, 5)).result == "OK"
    assert max(latencies) < 1.0, latencies
    fetched = await client.uid("fetch", "1", "(BODY.PEEK[])")
    assert raw in b"".join(bytes(x) for x in fetched.lines if isinstance(x, (bytes, bytearray)))
    await client.logout()
