"""IDLE (RFC 2177): a new delivery reaches an idling client within one second, from this process or another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aioimaplib
from imap.imap_support import ALICE, PASSWORD, ImapHarness, message

WAKE_UP = 1.0


async def idling_client(imap: ImapHarness) -> aioimaplib.IMAP4_SSL:
    client = aioimaplib.IMAP4_SSL("127.0.0.1", imap.imaps_port, ssl_context=imap.client_context(), timeout=30)
    await client.wait_hello_from_server()
    assert (await client.login(ALICE, PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    return client


async def wake_up_time(client: aioimaplib.IMAP4_SSL, deliver: Callable[[], object]) -> float:
    """Seconds from the delivery's commit to the client's untagged EXISTS."""
    idle = await client.idle_start(timeout=30)
    await asyncio.sleep(0)  # the continuation has been read by idle_start; the server now waits
    start = time.monotonic()
    await asyncio.to_thread(deliver)
    committed = time.monotonic()
    lines: list[bytes] = []
    while not any(line.endswith(b"EXISTS") for line in lines):
        push = await client.wait_server_push(timeout=5)
        lines += [line for line in push if isinstance(line, bytes)] if isinstance(push, list) else []
    elapsed = time.monotonic() - committed
    client.idle_done()
    assert (await asyncio.wait_for(idle, 5)).result == "OK"
    assert committed - start < 10
    return elapsed


async def test_idle_wakes_on_delivery_in_this_process(imap: ImapHarness):
    client = await idling_client(imap)
    elapsed = await wake_up_time(client, lambda: imap.deliver(ALICE, message("Nouveau")))
    assert elapsed < WAKE_UP
    await client.logout()


async def test_idle_wakes_on_delivery_by_another_process(imap: ImapHarness):
    """PostgreSQL: NOTIFY reaches our LISTEN connection; SQLite: the MODSEQ poll sees the other writer."""
    client = await idling_client(imap)
    for n in range(3):
        elapsed = await wake_up_time(client, lambda n=n: imap.deliver_elsewhere(ALICE, message(f"Autre {n}")))
        assert elapsed < WAKE_UP
    response = await client.uid_search("ALL")
    assert response.lines[0].split() == [b"1", b"2", b"3"]
    await client.logout()


async def test_idle_done_without_changes_and_flag_changes_are_pushed(imap: ImapHarness):
    await asyncio.to_thread(imap.deliver, ALICE, message("Existant"))
    client = await idling_client(imap)
    idle = await client.idle_start(timeout=30)
    other = await idling_client(imap)
    assert (await other.store("1", "+FLAGS", "(\\Flagged)")).result == "OK"
    push = await client.wait_server_push(timeout=5)
    assert any(b"FETCH" in line and b"\\Flagged" in line for line in push if isinstance(line, bytes))
    client.idle_done()
    assert (await asyncio.wait_for(idle, 5)).result == "OK"
    for c in (client, other):
        await c.logout()


async def test_idle_ends_with_bye_when_the_folder_is_deleted(imap: ImapHarness):
    client = aioimaplib.IMAP4_SSL("127.0.0.1", imap.imaps_port, ssl_context=imap.client_context(), timeout=30)
    await client.wait_hello_from_server()
    await client.login(ALICE, PASSWORD)
    assert (await client.create("Projet")).result == "OK"
    assert (await client.select("Projet")).result == "OK"
    other = await idling_client(imap)
    await client.idle_start(timeout=30)
    assert (await other.delete("Projet")).result == "OK"
    push = await client.wait_server_push(timeout=5)
    assert any(line.startswith(b"BYE") for line in push if isinstance(line, bytes)), push
    await other.logout()
