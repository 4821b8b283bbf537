"""Benchmark: SMTP ingest of 1 KiB messages over concurrent authenticated TLS sessions, durably stored and routed.

Starts a real gateway process on SQLite (or --store-url) with a fresh PKI, opens N sessions with aiosmtplib
(STARTTLS, AUTH PLAIN once per session), sends messages for a fixed count, and prints messages/s and latency
percentiles. Every 250 counted was given after the commit.

    .venv/bin/python bench/smtp_ingest.py --sessions 20 --messages 6000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.pki import make_pki  # noqa: E402
from support.process import GatewayProcess  # noqa: E402
from support.store import Store  # noqa: E402
from support.workers import configure  # noqa: E402

RECIPIENT = "inbox@pro.gateway.test"


def body(sender: str, index: int) -> bytes:
    head = (f"From: {sender}\r\nTo: {RECIPIENT}\r\nSubject: bench {index}\r\n"
            f"Message-ID: <{index}.{sender}>\r\n\r\n").encode()
    return head + b"x" * (1024 - len(head) - 2) + b"\r\n"


@dataclass(frozen=True)
class Target:
    port: int
    ca_file: str

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)


async def session(target: Target, sender: str, count: int, latencies: list[float]) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=target.port, tls_context=target.tls(),
                             start_tls=True, timeout=60)
    await client.connect()
    await client.login(sender, "secret-password")
    for i in range(count):
        started = time.perf_counter()
        await client.sendmail(sender, [RECIPIENT], body(sender, i))
        latencies.append(time.perf_counter() - started)
    await client.quit()


async def sessions(target: Target, senders: list[str], per_session: int) -> list[float]:
    latencies: list[float] = []
    await asyncio.gather(*(session(target, s, per_session, latencies) for s in senders))
    return latencies


def client_process(target: Target, senders: list[str], per_session: int, start: Any) -> list[float]:
    """One load-generating process: its own event loop (uvloop when installed) driving a share of the sessions."""
    start.wait()
    try:
        import uvloop
        return uvloop.run(sessions(target, senders, per_session))
    except ImportError:
        return asyncio.run(sessions(target, senders, per_session))


def run(target: Target, senders: list[str], per_session: int, processes: int) -> tuple[float, list[float]]:
    """Drive the sessions from several client processes, so that the client is not what is measured."""
    with multiprocessing.Manager() as manager:
        start = manager.Event()
        with multiprocessing.Pool(processes) as pool:
            shares = [senders[i::processes] for i in range(processes)]
            pending = [pool.apply_async(client_process, (target, share, per_session, start)) for share in shares]
            started = time.perf_counter()
            start.set()
            latencies = [lat for p in pending for lat in p.get()]
            return time.perf_counter() - started, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=6000, help="total messages")
    parser.add_argument("--store-url", help="default: a fresh SQLite file")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--workers", type=int, default=None, help="[gateway] workers (default: one per core)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.store_url or f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
        store = Store(url)
        senders = [f"sender{i}@pro.gateway.test" for i in range(args.sessions)]
        for address in [*senders, RECIPIENT]:
            store.add_mailbox(address)
        gateway = GatewayProcess(folder / "gw", make_pki(folder / "pki"), url, log_level="warning")
        if args.workers is not None:
            configure(gateway, workers=args.workers)
        gateway.start()
        try:
            per_session = max(1, args.messages // args.sessions)
            target = Target(gateway.smtp_port, str(gateway.pki.ca_bundle))
            run(target, senders, max(1, per_session // 10), args.client_processes)  # warm-up
            elapsed, latencies = run(target, senders, per_session, args.client_processes)
        finally:
            gateway.stop()
        stored = store.count_messages()
    latencies.sort()
    total = len(latencies)
    print(f"store: {'sqlite' if url.startswith('sqlite') else 'postgresql'}; workers: {args.workers or 'cores'}; "
          f"sessions: {args.sessions}; "
          f"messages: {total} of 1 KiB; stored in total (with warm-up): {stored}")
    print(f"throughput: {total / elapsed:.0f} msg/s over {elapsed:.1f} s")
    print(f"latency: p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {latencies[int(total * 0.99) - 1] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
