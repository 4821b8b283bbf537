"""Benchmark: password logins per second over SMTP submission, with an empty credential cache and then cached.

Starts a real gateway process on SQLite (or --store-url) with a fresh PKI and --accounts mailboxes. Each login is
a new connection: STARTTLS, AUTH PLAIN, QUIT (SMTP allows one AUTH per session), --concurrency at a time.
The first pass logs every account in once (each login is a cache miss: one Argon2id verification in the
gateway's hashing workers); the second pass logs the same accounts in again (each a cache hit). Connection
limits are raised for the run, since every client is 127.0.0.1. Prints logins/s and latency percentiles.

    .venv/bin/python bench/auth.py --accounts 1000 --concurrency 16

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.pki import make_pki  # noqa: E402
from support.process import GatewayProcess  # noqa: E402
from support.store import Store  # noqa: E402

from gateway.auth.passwords import hash_password  # noqa: E402
from gateway.store import mailstore  # noqa: E402

PASSWORD = "bench password"


def user(i: int) -> str:
    return f"user{i}@pro.gateway.test"


async def login(port: int, tls: ssl.SSLContext, address: str) -> float:
    started = time.perf_counter()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=tls, start_tls=True, timeout=120)
    await client.connect()
    await client.login(address, PASSWORD)
    elapsed = time.perf_counter() - started
    await client.quit()
    return elapsed


def run_pass(port: int, ca_file: str, accounts: int, concurrency: int, processes: int) -> tuple[float, list[float]]:
    """One pass over every account, the load spread over ``processes`` client processes: one Python process
    doing TLS handshakes saturates its core long before the gateway does."""
    shares = [range(p, accounts, processes) for p in range(processes)]
    started = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        parts = list(pool.map(_client_process, [port] * processes, [ca_file] * processes, shares,
                              [max(1, concurrency // processes)] * processes))
    return time.perf_counter() - started, [latency for part in parts for latency in part]


def _client_process(port: int, ca_file: str, indices: range, concurrency: int) -> list[float]:
    return asyncio.run(_pass(port, ca_file, list(indices), concurrency))[1]


async def _pass(port: int, ca_file: str, indices: list[int], concurrency: int) -> tuple[float, list[float]]:
    tls = ssl.create_default_context(cafile=ca_file)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in indices:
        queue.put_nowait(i)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            latencies.append(await login(port, tls, user(queue.get_nowait())))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def hash_ceiling(stored: str, seconds: float = 3.0) -> float:
    """Argon2id verifications/s with one thread per core and nothing else: what the cores allow at these
    parameters, the ceiling of logins with an empty cache."""
    from gateway.auth.hashing import verify_sync

    cores = len(os.sched_getaffinity(0))
    done = [0] * cores
    deadline = time.perf_counter() + seconds

    def spin(n: int) -> None:
        while time.perf_counter() < deadline:
            verify_sync(stored, PASSWORD)
            done[n] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=spin, args=(n,)) for n in range(cores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def report(name: str, elapsed: float, latencies: list[float]) -> None:
    q = statistics.quantiles(latencies, n=100)
    print(f"{name:<22} {len(latencies) / elapsed:8.1f} logins/s   p50 {q[49] * 1000:6.1f} ms   "
          f"p99 {q[98] * 1000:6.1f} ms   ({len(latencies)} logins in {elapsed:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, help="client processes sharing the load")
    parser.add_argument("--store-url", help="default: a fresh SQLite file")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    pki = make_pki(folder / "pki")
    url = args.store_url or f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"
    store = Store(url)
    hashed = hash_password(PASSWORD)  # one hash for all: the cache is keyed by name and password, so all miss

    async def accounts(session: object) -> None:
        for i in range(args.accounts):
            await mailstore.create_mailbox(session, user(i), "PER", password_hash=hashed)  # type: ignore[arg-type]
    store.run(accounts)

    print(f"Argon2id alone, a thread per core, before the gateway starts: {hash_ceiling(hashed):.0f} "
          "verifications/s (the ceiling of logins with an empty cache)")
    gateway = GatewayProcess(folder / "gw", pki, url, log_level="warning")
    text = gateway.config_path.read_text(encoding="utf-8")
    gateway.config_path.write_text(text.replace(
        "[limits]\n", "[limits]\nconnections_per_address = 10000\nconnection_rate_per_address = 1000000\n", 1),
        encoding="utf-8")
    gateway.start()
    try:
        print(f"{args.accounts} accounts, {args.concurrency} concurrent clients in {args.processes} processes, "
              "a new TLS connection per login")
        for name in ("empty cache (Argon2id)", "cached"):
            elapsed, latencies = run_pass(gateway.smtp_port, str(pki.ca_bundle), args.accounts, args.concurrency,
                                          args.processes)
            report(name, elapsed, latencies)
    finally:
        gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
