"""Benchmark: DMP deposits (ITI-41 over HTTPS, MTOM, signed VIHF) against the local simulator.

Starts the DMP simulator in its own process (schema validation, signature checks, storage: the real work of a
DMP front end), then measures
1. deposits/s with 8 deposits in flight, client straight to the simulator (no outbox);
2. the catch-up time of a backlog of 2,000 deposit jobs through the durable outbox (claim, send, record).

    .venv/bin/python bench/dmp.py                       # SQLite outbox in a temp dir
    .venv/bin/python bench/dmp.py --store-url postgresql+asyncpg://gateway@127.0.0.1:55432/somedb

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from dmp_bridge.dmp_support import BIOLOGIST, CDA, MATRICULE, SCHEMA_DIR, endpoint, make_dmp_pki, policy  # noqa: E402

from gateway import logs  # noqa: E402
from gateway.dmp_bridge import constants as c  # noqa: E402
from gateway.dmp_bridge import outbox  # noqa: E402
from gateway.dmp_bridge.deposit import Depositor, prepare  # noqa: E402
from gateway.dmp_bridge.outbox_worker import OutboxWorker  # noqa: E402
from gateway.dmp_bridge.soap import DmpClient  # noqa: E402
from gateway.documents.cda import read_header  # noqa: E402
from gateway.store import db  # noqa: E402


def document(base: bytes, old_id: bytes, n: int, run: int) -> bytes:
    """The sample with a unique id (the DMP refuses a second deposit of a uniqueId)."""
    return base.replace(old_id, f'<id root="1.2.250.1.999.42.{run}.{n}"/>'.encode(), 1)


_DRAINS: set[asyncio.Task[None]] = set()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


async def start_simulator(folder: Path) -> tuple[asyncio.subprocess.Process, str]:
    pki = folder / "pki"
    code = ("import sys; from gateway.dmp_bridge.simulator import main; sys.exit(main(sys.argv[1:]))")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--listen", "127.0.0.1:0", "--certificate", str(pki / "dmp.crt"),
        "--key", str(pki / "dmp.key"), "--ca", str(pki / "ca-bundle.crt"), "--schema-dir", str(SCHEMA_DIR),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=str(ROOT))
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            raise RuntimeError("the simulator did not start")
        if "listening on" in line:
            # Keep reading what it prints: a full pipe would stall the simulator and, once its reader pauses,
            # keep proc.wait() from ever seeing the pipe close.
            _DRAINS.add(asyncio.create_task(_drain(proc.stdout)))
            return proc, line.split("listening on ", 1)[1].split()[0]


async def direct(depositor: Depositor, base: bytes, old_id: bytes, count: int, in_flight: int) -> None:
    latencies: list[float] = []
    sem = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        async with sem:
            prepared = prepare(document(base, old_id, n, 1), title="", visibility=(), author=BIOLOGIST,
                               submission_uid=f"1.2.250.1.999.42.100.{n}", policy=policy())
            start = time.perf_counter()
            result = await depositor.send(prepared)
            latencies.append(time.perf_counter() - start)
            assert result.success, result.message

    await one(0)  # warm up (TLS session, schema compilation in the simulator)
    latencies.clear()
    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(1, count + 1)))
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100)
    print(f"direct ITI-41: {count} deposits, {in_flight} in flight: {count / elapsed:.1f} deposits/s "
          f"(p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms)")


async def backlog(store_url: str, depositor: Depositor, base: bytes, old_id: bytes, count: int,
                  in_flight: int) -> None:
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    sessions = db.sessionmaker(engine)
    header = read_header(base, validate=False, limits=c.CDA_LIMITS)
    start = time.perf_counter()
    for first in range(0, count, 100):
        async with sessions() as session, session.begin():
            for n in range(first, min(count, first + 100)):
                cda = document(base, old_id, n, 2)
                await outbox.enqueue(session, cda=cda, unique_id=f"1.2.250.1.999.42.2.{n}", matricule=MATRICULE,
                                     author_id=BIOLOGIST.national_id, title=header.title,
                                     type_code=header.type_code)
    print(f"outbox: {count} jobs enqueued in {time.perf_counter() - start:.1f} s")
    worker = OutboxWorker(sessions, depositor, policy(), concurrency=in_flight, poll_interval=0.05)
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(worker.run(stop))
    while True:
        await asyncio.sleep(0.5)
        async with sessions() as session:
            counts = await outbox.counts(session)
        if counts.get(outbox.ACCEPTED, 0) + counts.get(outbox.REFUSED, 0) >= count:
            break
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    await engine.dispose()
    print(f"outbox catch-up: {count} jobs, {in_flight} in flight: {elapsed:.1f} s ({count / elapsed:.1f} deposits/s); "
          f"states {counts}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", default="BIO-CR-BIO_2024.01_TSH_1.xml", help="CDA sample to deposit")
    parser.add_argument("--direct", type=int, default=400, help="deposits for the direct measurement")
    parser.add_argument("--backlog", type=int, default=2000, help="jobs in the outbox backlog")
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--store-url", default=None, help="outbox store (default: SQLite in a temp dir)")
    args = parser.parse_args()
    logs.configure("warning")
    base = (CDA / args.sample).read_bytes()
    unique = read_header(base, validate=False, limits=c.CDA_LIMITS).unique_id
    old_id = f'<id root="{unique}"/>'.encode()
    assert old_id in base, "the sample's id must be a plain root"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pki = make_dmp_pki(folder / "pki")
        proc, url = await start_simulator(folder)
        client = DmpClient(endpoint(pki, url, timeout=60), pki.signer, max_connections=args.in_flight)
        depositor = Depositor(client, pki.signer, policy())
        try:
            print(f"sample {args.sample} ({len(base)} bytes)")
            await direct(depositor, base, old_id, args.direct, args.in_flight)
            store_url = args.store_url or f"sqlite+aiosqlite:///{folder / 'outbox.sqlite3'}"
            await backlog(store_url, depositor, base, old_id, args.backlog, args.in_flight)
        finally:
            await client.close()
            proc.kill()
            await proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
