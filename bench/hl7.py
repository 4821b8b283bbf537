"""Benchmark: HL7 document messages accepted over MLLP, and the time from AA to the DMP deposit.

Starts a real gateway process (``[hl7]``, ``[dmp]``) on SQLite (or --store-url) with a fresh PKI and a
``gateway dmp-simulator`` process, then sends ``--messages`` ORU^R01 messages carrying the 135 KB ANS lab report
CDA (each with its own document id) over ``--connections`` concurrent MLLP connections, one message in flight per
connection as MLLP wants. It prints messages/s accepted (an AA is given after the commit that holds the MSSanté
message, its queue rows and the deposit job), p50/p99 of the send→AA latency, and, once the DMP simulator has
accepted every deposit, p50/p99 of AA→deposit accepted; then the same for ``--idle`` messages sent one at a time.
The MSSanté message of each HL7 message is stored and queued in the AA's own transaction (AA→queued is 0).

    .venv/bin/python bench/hl7.py --connections 4 --messages 600
    .venv/bin/python bench/hl7.py --dest DESTMSSANTEPS,DESTMSSANTEPAT,DESTDMP

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is named hl7.py: its folder must not hide the python-hl7 package the gateway imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import select  # noqa: E402
from support.commit_stats import commit_stats  # noqa: E402
from support.dmp_simulator import SimulatorProcess  # noqa: E402
from support.hl7_peer import BIO, DOCTOR, LAB, PATIENT, Hl7Gateway, dmp_section, oru  # noqa: E402
from support.pki import make_pki  # noqa: E402
from support.store import Store  # noqa: E402

from gateway.dmp_bridge.outbox import ACCEPTED, DmpDeposit  # noqa: E402
from gateway.hl7.mllp import END, frame  # noqa: E402

ORIGINAL_ID = b"1.2.250.1.213.1.1.1.55.2024.9.1"


def cda(index: int, run: str) -> bytes:
    return BIO.read_bytes().replace(ORIGINAL_ID, f"1.2.250.1.999.{run}.{index}".encode())


def unique_id(index: int, run: str) -> str:
    return f"1.2.250.1.999.{run}.{index}"


async def connection(port: int, messages: list[tuple[int, bytes]], acked: dict[int, float],
                     latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        for index, message in messages:
            started = time.perf_counter()
            writer.write(frame(message))
            await writer.drain()
            answer = await reader.readuntil(END)
            if b"MSA|AA|" not in answer:
                raise RuntimeError(f"not accepted: {answer[:300]!r}")
            acked[index] = time.time()
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def finished(store: Store, ids: set[str]) -> dict[str, datetime]:
    async def work(session: Any) -> dict[str, datetime]:
        rows = (await session.execute(select(DmpDeposit.unique_id, DmpDeposit.finished_at)
                                      .where(DmpDeposit.state == ACCEPTED))).all()
        return {r.unique_id: r.finished_at for r in rows if r.unique_id in ids}
    return store.run(work)


def wait_deposits(store: Store, ids: set[str], seconds: float) -> dict[str, datetime]:
    deadline = time.monotonic() + seconds
    done: dict[str, datetime] = {}
    while time.monotonic() < deadline:
        done = finished(store, ids)
        if len(done) == len(ids):
            break
        time.sleep(0.5)
    return done


def deposit_latencies(acked: dict[int, float], done: dict[str, datetime], run: str) -> list[float]:
    return [done[unique_id(i, run)].timestamp() - at for i, at in acked.items() if unique_id(i, run) in done]


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants (Linux /proc): a figure the
    other load on a shared machine does not inflate as much as wall time."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def report(name: str, values: list[float]) -> str:
    return f"{name} p50 {percentile(values, 0.5) * 1000:.0f} ms, p99 {percentile(values, 0.99) * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--idle", type=int, default=10, help="messages sent one at a time after the load")
    parser.add_argument("--dest", default="DESTMSSANTEPS,DESTDMP")
    parser.add_argument("--accept-only", action="store_true",
                        help="stop after the acceptance figures (no wait for the deposits, no --idle messages)")
    parser.add_argument("--store-url", help="default: a fresh SQLite file")
    parser.add_argument("--workers", type=int, default=2, help="[gateway] workers of the gateway process")
    parser.add_argument("--commit-stats", action="store_true",
                        help="run the gateway at debug level and summarise its group commits (size, wall time)")
    args = parser.parse_args()
    destinations = tuple(d for d in args.dest.split(",") if d)
    folder = Path(tempfile.mkdtemp(prefix="bench-hl7-"))
    pki = make_pki(folder / "pki")
    url = args.store_url or f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"
    store = Store(url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()
    simulator = SimulatorProcess.with_certificates(folder / "dmp", pki).start()
    dmp = {"url": simulator.url, "folder": simulator.folder}
    gateway = Hl7Gateway(folder / "gw", pki, url, extra_config=dmp_section(dmp, pki.ca_bundle),
                         log_level="debug" if args.commit_stats else "info")  # info: the "ready" of every worker
    text = gateway.config_path.read_text(encoding="utf-8")
    gateway.config_path.write_text(text.replace("[gateway]\n", f"[gateway]\nworkers = {args.workers}\n", 1),
                                   encoding="utf-8")
    gateway.start()
    try:
        # start() returns once the supervisor's sockets accept; the load starts once every worker serves, or
        # the first worker up takes every connection (they wait in the shared socket's backlog meanwhile).
        deadline = time.monotonic() + 120
        while not any('"event": "ready"' in line for line in gateway.log_lines) and time.monotonic() < deadline:
            time.sleep(0.1)
        run = str(os.getpid())
        prepared = [(i, oru(f"B{run}-{i}", cda(i, run), destinations=destinations)) for i in range(args.messages)]
        shares = [prepared[n::args.connections] for n in range(args.connections)]
        acked: dict[int, float] = {}
        latencies: list[float] = []

        async def load() -> float:
            started = time.perf_counter()
            await asyncio.gather(*(connection(gateway.hl7_port, share, acked, latencies) for share in shares))
            return time.perf_counter() - started

        assert gateway.process is not None
        cpu_before = tree_cpu(gateway.process.pid)
        elapsed = asyncio.run(load())
        cpu = tree_cpu(gateway.process.pid) - cpu_before
        size = len(prepared[0][1]) if prepared else 0
        print(f"{args.messages} ORU^R01 of {size // 1024} KiB ({', '.join(destinations)}) over "
              f"{args.connections} MLLP connections: {args.messages / elapsed:.0f} messages/s accepted "
              f"({elapsed:.1f} s); {report('send→AA', latencies)}; "
              f"gateway CPU {cpu * 1000 / max(1, args.messages):.1f} ms per message; "
              f"load average {os.getloadavg()[0]:.2f}")
        if "DESTDMP" in destinations and not args.accept_only:
            ids = {unique_id(i, run) for i in acked}
            started = time.monotonic()
            done = wait_deposits(store, ids, 600)
            print(f"deposits accepted by the DMP simulator: {len(done)}/{len(ids)} in "
                  f"{time.monotonic() - started:.1f} s after the last AA; "
                  f"{report('AA→deposit (under load)', deposit_latencies(acked, done, run))}")
            idle_run = run + "9"
            idle_acked: dict[int, float] = {}
            idle_latencies: list[float] = []
            for i in range(args.idle):
                message = oru(f"I{idle_run}-{i}", cda(i, idle_run), destinations=destinations)
                asyncio.run(connection(gateway.hl7_port, [(i, message)], idle_acked, idle_latencies))
                wait_deposits(store, {unique_id(i, idle_run)}, 60)
            done = finished(store, {unique_id(i, idle_run) for i in idle_acked})
            print(f"{args.idle} messages one at a time: {report('send→AA', idle_latencies)}; "
                  f"{report('AA→deposit', deposit_latencies(idle_acked, done, idle_run))}")
        print("MSSanté messages: stored and queued in the AA's transaction (AA→queued = 0 by construction)")
        if args.commit_stats:
            print(commit_stats(gateway.log_lines))
    finally:
        gateway.stop()
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
