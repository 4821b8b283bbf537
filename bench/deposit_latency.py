"""Benchmark: from the SMTP "250" of a lab report sent to a patient to its DMP deposit (R12).

Starts a DMP simulator (``gateway dmp-simulator``) and a gateway (``gateway serve``) configured to deposit
what its biologist sends, submits lab reports one at a time over SMTP and, for each, reads from the store:

- when the deposit filing job was considered (the ``dmp.considered`` event: the job claimed, the documents
  read through gateway/documents and put in the outbox, R12-R16), and
- when the outbox claimed the deposit (``dmp_deposits.sent_at``, set by the claim, before the ITI-41 call).

Both wake-ups go through the store's change notification, so the figures are work, not poll intervals.

    .venv/bin/python bench/deposit_latency.py --count 15
    .venv/bin/python bench/deposit_latency.py --store-url postgresql+asyncpg://gateway@127.0.0.1:55432/db

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from dmp_bridge.test_end_to_end import BIO, PATIENT, SENDER, SimulatorProcess, dmp_config, submission  # noqa: E402
from sqlalchemy import select  # noqa: E402
from support.pki import make_pki  # noqa: E402
from support.process import GatewayProcess  # noqa: E402
from support.store import Store  # noqa: E402
from support.wait import wait_until  # noqa: E402

from gateway.dmp_bridge.outbox import DmpDeposit  # noqa: E402
from gateway.store.models import Event, Message  # noqa: E402

DOC_ID = b"1.2.250.1.213.1.1.1.55.2024.9.1"


def milestones(store: Store) -> dict[str, tuple[float | None, float | None]]:
    """Per Message-ID header: when the deposit job was considered, and when the outbox first claimed it."""
    async def work(session: Any) -> dict[str, tuple[float | None, float | None]]:
        considered = dict((await session.execute(
            select(Message.message_id_header, Event.at).join(Event, Event.message_id == Message.id)
            .where(Event.kind == "dmp.considered"))).all())
        claimed = dict((await session.execute(
            select(Message.message_id_header, DmpDeposit.sent_at)
            .join(DmpDeposit, DmpDeposit.message_id == Message.id))).all())
        return {header: (considered[header].timestamp() if header in considered else None,
                         claimed[header].timestamp() if claimed.get(header) else None)
                for header in set(considered) | set(claimed)}
    return store.run(work)


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and its descendants (Linux /proc): a figure
    the other programs sharing the cores change less than a latency."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    def under(pid: int) -> bool:
        for _ in range(64):
            if pid == root:
                return True
            pid = parents.get(pid, 0)
            if pid <= 1:
                return False
        return False
    return sum(seconds for pid, seconds in used.items() if under(pid))


def summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    if not values:
        return f"{name}: none"
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"{name}: median {statistics.median(values):.1f} ms, p95 {p95:.1f} ms, max {values[-1]:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=15)
    parser.add_argument("--store-url")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between messages (so none waits for another)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="lab reports sent first and not counted (the first deposits pay for imports and caches)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-deposit-") as tmp:
        folder = Path(tmp)
        pki = make_pki(folder / "pki")
        dmp_folder = folder / "dmp"
        dmp_folder.mkdir()
        pki.pki.server("localhost").write(dmp_folder / "dmp.crt", dmp_folder / "dmp.key")
        client, signer = pki.pki.software("structure-tls"), pki.pki.signing("structure-signing")
        client.write(dmp_folder / "client.crt", dmp_folder / "client.key")
        signer.write(dmp_folder / "signing.crt", dmp_folder / "signing.key")
        simulator = SimulatorProcess(dmp_folder, pki.ca_bundle)
        simulator.start()
        dmp = {"url": f"https://localhost:{simulator.port}", "folder": dmp_folder}
        url = args.store_url or f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"
        store = Store(url)
        store.add_mailbox(SENDER, "PER")
        store.add_mailbox(PATIENT, "PAT")
        store.add_identity()  # qualifiée (R7): its documents may go to the DMP
        gateway = GatewayProcess(folder / "gw", pki, url, message_size=5_000_000,
                                 extra_config=dmp_config(dmp, pki.ca_bundle))
        gateway.start()
        accepted: dict[str, float] = {}
        try:
            with gateway.smtp(SENDER) as smtp:
                for n in range(args.warmup + args.count):
                    cda = BIO.read_bytes().replace(DOC_ID, DOC_ID[:-1] + str(2000 + n).encode(), 1)
                    raw = submission(cda)
                    header = raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
                    if n == args.warmup:
                        assert gateway.process is not None
                        cpu_before = tree_cpu(gateway.process.pid)
                    smtp.sendmail(SENDER, [PATIENT], raw)
                    if n >= args.warmup:
                        accepted[header] = time.time()  # the 250 to DATA has just been read
                    time.sleep(args.gap)
            found = wait_until(
                lambda: (lambda seen: seen if sum(seen.get(m, (None, None))[1] is not None for m in accepted)
                         >= len(accepted) else None)(
                    milestones(store)), 60, "every deposit claimed", interval=0.2)
            assert gateway.process is not None
            cpu = (tree_cpu(gateway.process.pid) - cpu_before) * 1000 / len(accepted)
        finally:
            gateway.stop()
            simulator.stop()
    considered = [(found[m][0] - t) * 1000 for m, t in accepted.items() if m in found and found[m][0]]
    claimed = [(found[m][1] - t) * 1000 for m, t in accepted.items() if m in found and found[m][1]]
    store_name = "PostgreSQL" if args.store_url else "SQLite"
    print(f"{len(accepted)} lab reports to a patient ({store_name}):")
    print("  " + summary("SMTP 250 -> deposit job considered (dmp.considered)", considered))
    print("  " + summary("SMTP 250 -> deposit claimed by the outbox (sent_at)", claimed))
    print(f"  gateway CPU per lab report (SMTP, filing, deposit, ITI-41 call included): {cpu:.1f} ms; "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
