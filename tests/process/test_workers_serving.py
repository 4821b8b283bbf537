"""Two worker processes serve the same SMTP and IMAP ports over one store; once-only work runs once."""

from __future__ import annotations

import asyncio
import imaplib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import aioimaplib
import pytest
from support.mail import PRO, PRO2, message
from support.process import GatewayProcess
from support.store import Store
from support.workers import PASSWORD, events, start, wait_until

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def test_two_workers_serve_smtp_and_imap_on_the_same_ports(make_daemon: Callable[..., GatewayProcess],
                                                           store: Store):
    daemon = start(make_daemon())
    ready = events(daemon, "ready")
    assert len(ready) == 1 and ready[0]["workers"] == 2
    assert {e["worker"] for e in events(daemon, "worker_ready")} == {0, 1}

    senders = [f"lgc{i}@pro.gateway.test" for i in range(8)]
    for sender in senders:  # one account per client: concurrent logins to one account are limited (anvil)
        store.add_mailbox(sender, "APP", PASSWORD)

    def submit(i: int) -> None:
        sender = senders[i % len(senders)]
        with daemon.smtp(sender, PASSWORD) as client:
            client.sendmail(sender, [PRO2], message(sender, PRO2, f"workers {i}"))

    served: set[int] = set()
    sent = 0
    with ThreadPoolExecutor(8) as pool:  # concurrent connections: the kernel hands them to both workers
        while served != {0, 1} and sent < 400:
            list(pool.map(submit, range(sent, sent + 8)))
            sent += 8
            served = {e["worker"] for e in events(daemon, "smtp.transaction")}
    assert served == {0, 1}, "one worker took every connection"
    wait_until(lambda: len(store.messages_in(PRO2)) == sent, what="every message stored")

    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.imaps_port, ssl_context=daemon.client_tls())
    assert imap.login(PRO2, PASSWORD)[0] == "OK"
    assert imap.select("INBOX")[1] == [str(sent).encode()]
    imap.logout()


async def test_a_delivery_by_one_worker_wakes_idle_clients_of_both_workers_promptly(
        make_daemon: Callable[..., GatewayProcess], store: Store):
    daemon = start(make_daemon())
    clients = []
    for _ in range(6):  # spread over both workers (checked below from the login lines)
        client = aioimaplib.IMAP4_SSL("127.0.0.1", daemon.imaps_port, ssl_context=daemon.client_tls(), timeout=30)
        await client.wait_hello_from_server()
        assert (await client.login(PRO2, PASSWORD)).result == "OK"
        assert (await client.select("INBOX")).result == "OK"
        clients.append(client)
    logged_in = {e.get("worker") for e in events(daemon, "login") if e.get("protocol") == "imap"}
    idles = [await c.idle_start(timeout=30) for c in clients]

    def send() -> None:
        with daemon.smtp(PRO, PASSWORD) as smtp:
            smtp.sendmail(PRO, [PRO2], message(PRO, PRO2, "Resultat"))

    await asyncio.to_thread(send)
    accepted = time.monotonic()

    async def woken(client: aioimaplib.IMAP4_SSL) -> float:
        while True:
            push = await client.wait_server_push(timeout=10)
            if any(isinstance(line, bytes) and line.endswith(b"EXISTS") for line in push):
                return time.monotonic() - accepted

    latencies = await asyncio.gather(*(woken(c) for c in clients))
    for client, idle in zip(clients, idles, strict=True):
        client.idle_done()
        assert (await asyncio.wait_for(idle, 5)).result == "OK"
        await client.logout()
    if logged_in == {0, 1}:  # IDLE sessions on both workers: the other worker's were woken across processes
        assert max(latencies) < 0.5, latencies
    assert max(latencies) < 1.0, latencies


def test_once_only_work_runs_in_one_worker(make_daemon: Callable[..., GatewayProcess], store: Store, tmp_path):
    from support.relay import whitelist_xml

    whitelist = tmp_path / "whitelist.xml"
    whitelist.write_bytes(whitelist_xml(["b.example", "c.example"]))
    daemon = make_daemon()
    with daemon.config_path.open("a", encoding="utf-8") as config:
        config.write(f'\n[whitelist]\nsource = "{whitelist}"\n')
    start(daemon)
    refreshes = events(daemon, "whitelist.refresh")
    assert len(refreshes) == 1 and refreshes[0]["worker"] == 0 and refreshes[0]["domains"] == 2
    once = [e["worker"] for e in events(daemon, "worker_ready") if e["once_only_work"]]
    assert once == [0]


def test_a_password_verified_by_one_worker_is_a_cached_login_on_the_other(
        make_daemon: Callable[..., GatewayProcess], store: Store):
    """The workers share their verified-credential caches (the supervisor relays each verified login as its
    keyed hash): a client reconnecting lands on either worker and its password is hashed once per daemon."""
    daemon = start(make_daemon())

    def login() -> None:
        imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.imaps_port, ssl_context=daemon.client_tls())
        assert imap.login(PRO, PASSWORD)[0] == "OK"
        imap.logout()

    def logins() -> list[dict[str, object]]:
        return [e for e in events(daemon, "login") if e.get("outcome") == "ok"]

    login()
    wait_until(lambda: len(logins()) == 1, what="the first login logged")
    first = logins()[0]["worker"]
    attempts = 1
    while attempts < 200 and all(e["worker"] == first for e in logins()):
        login()  # new connections until the kernel hands one to the other worker
        attempts += 1
    served = logins()
    assert {e["worker"] for e in served} == {0, 1}, "one worker took every connection"
    assert [e["cached"] for e in served] == [False] + [True] * (len(served) - 1)
