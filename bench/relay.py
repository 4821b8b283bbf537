"""Benchmark: mail between two operators over mutual TLS, and queue catch-up after an outage.

Starts two real gateway processes A and B (own domains, stores and operator certificates from a fresh test
PKI) and measures:

1. relay ingest at B: 20 concurrent relay sessions presenting A's operator certificate (STARTTLS, mutual TLS,
   whitelist and certificate checks), each message stored and filed before "250";
2. end to end A → B: messages submitted to A over 20 authenticated sessions, queued, delivered by A's outbound
   worker (20 concurrent SMTP transactions) to B;
3. catch-up after an outage: messages accepted by A while B is down, then B starts; time until A's queue is
   empty.

    .venv/bin/python bench/relay.py --messages 2000 --sessions 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.pki import make_pki  # noqa: E402
from support.relay import Pair, make_pair  # noqa: E402

from gateway.pki import Issued  # noqa: E402
from gateway.store import db  # noqa: E402

DR_A, DR_B = "dr.alpha@pro.a.test", "dr.beta@pro.b.test"


def body(sender: str, to: str, tag: str, index: int) -> bytes:
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: bench {tag} {index}\r\n"
            f"Message-ID: <{tag}.{index}@bench>\r\n\r\n").encode()
    return head + b"x" * (1024 - len(head) - 2) + b"\r\n"


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def relay_session(port: int, tls: object, count: int, tag: str, latencies: list[float]) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=tls, start_tls=True, timeout=60,
                             local_hostname="mx.a.test")
    await client.connect()
    for i in range(count):
        started = time.perf_counter()
        await client.sendmail(DR_A, [DR_B], body(DR_A, DR_B, tag, i))
        latencies.append(time.perf_counter() - started)
    await client.quit()


async def submit_session(port: int, tls: object, count: int, tag: str) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=tls, start_tls=True, timeout=60)
    await client.connect()
    await client.login(DR_A, "secret-password")
    for i in range(count):
        await client.sendmail(DR_A, [DR_B], body(DR_A, DR_B, tag, i))
    await client.quit()


async def wait_until(count: Callable[[], object], target: int, limit: float = 900) -> float:
    """Seconds until ``await count()`` reaches ``target`` (polled every 50 ms)."""
    started = time.perf_counter()
    while True:
        value = await count()  # type: ignore[misc]
        if value >= target:
            return time.perf_counter() - started
        if time.perf_counter() - started > limit:
            raise TimeoutError(f"only {value} of {target} after {limit} s")
        await asyncio.sleep(0.05)


class Counter:
    """Counts rows with one long-lived engine (the store helpers open one per call, too slow for polling)."""

    def __init__(self, url: str, sql: str) -> None:
        from sqlalchemy import text

        self.engine = db.create_engine(url)
        self.reads = db.read_sessionmaker(self.engine)
        self.query = text(sql)

    async def __call__(self) -> int:
        async with self.reads() as session:
            return int((await session.execute(self.query)).scalar_one())


async def measure(pair: Pair, messages: int, sessions: int, a_cert: Issued, folder: Path) -> None:
    import ssl

    ca = str(pair.a.pki.ca_bundle)
    cert, key = folder / "bench-a.crt", folder / "bench-a.key"
    a_cert.write(cert, key)
    relay_tls = ssl.create_default_context(cafile=ca)
    relay_tls.load_cert_chain(str(cert), str(key))
    submit_tls = ssl.create_default_context(cafile=ca)
    at_b = Counter(pair.b.store_url, "SELECT count(*) FROM messages")
    sent_a = Counter(pair.a.store_url, "SELECT count(*) FROM outbound_queue WHERE state = 'sent'")

    # 1. relay ingest at B
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(relay_session(pair.b.relay_port, relay_tls, n, f"r{i}", latencies)
                           for i, n in enumerate(split(messages, sessions))))
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(f"relay ingest at B ({sessions} mutual-TLS sessions, 1 KiB): {messages} messages in {elapsed:.2f} s = "
          f"{messages / elapsed:.0f} msg/s; latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms")

    # 2. end to end A -> B through A's queue
    base = await at_b()
    started = time.perf_counter()
    await asyncio.gather(*(submit_session(pair.a.smtp_port, submit_tls, n, f"e{i}")
                           for i, n in enumerate(split(messages, sessions))))
    accepted = time.perf_counter() - started
    await wait_until(at_b, base + messages)
    elapsed = time.perf_counter() - started
    print(f"end to end A -> B ({sessions} submission sessions, outbound concurrency {sessions}): {messages} "
          f"messages accepted in {accepted:.2f} s, all delivered at B after {elapsed:.2f} s = "
          f"{messages / elapsed:.0f} msg/s")

    # 3. catch-up after an outage of B
    pair.b.stop()
    started = time.perf_counter()
    await asyncio.gather(*(submit_session(pair.a.smtp_port, submit_tls, n, f"o{i}")
                           for i, n in enumerate(split(messages, sessions))))
    print(f"outage: {messages} messages accepted by A into its queue in {time.perf_counter() - started:.2f} s "
          f"while B was down")
    done_before = await sent_a()
    pair.b.start()
    catch_up = await wait_until(sent_a, done_before + messages)
    print(f"catch-up after B returned: {messages} queued messages delivered in {catch_up:.2f} s = "
          f"{messages / catch_up:.0f} msg/s (includes the retry wait, at most one poll interval)")
    for counter in (at_b, sent_a):
        await counter.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pki = make_pki(folder / "pki")
        urls = [f"sqlite+aiosqlite:///{folder / f'{n}.sqlite3'}" for n in ("a", "b")]
        pair = make_pair(folder, pki, urls, retry="[0.5]", concurrency=args.sessions, log_level="warning")
        try:
            pair.store_a.add_mailbox(DR_A)
            pair.store_b.add_mailbox(DR_B)
            a_cert = pki.pki.operator("mx.a.test", ("pro.a.test", "patient.a.test"))
            asyncio.run(measure(pair, args.messages, args.sessions, a_cert, folder))
        finally:
            pair.a.stop()
            pair.b.stop()


if __name__ == "__main__":
    main()
