"""Benchmark: from the SMTP "250" of a lab report to its ``filing.done`` event (R10).

Starts a real gateway (``gateway serve``, TLS, a filing mailbox), submits lab reports one at a time over
SMTP and, for each, measures the time between the server's 250 reply and the commit of the filing worker's
``filing.done`` event. The worker is woken by the store's change notification when the message commits, so
the figure is the extraction and matching time, not a poll interval (the 0.5 s poll remains as a safety net).

    .venv/bin/python bench/filing_latency.py                  # SQLite, 30 messages
    .venv/bin/python bench/filing_latency.py --count 100 --store-url postgresql+asyncpg://gateway@127.0.0.1:55432/db

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import email.policy
import statistics
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import select  # noqa: E402
from support.pki import make_pki  # noqa: E402
from support.process import GatewayProcess  # noqa: E402
from support.store import Store  # noqa: E402

from gateway.samples import samples_dir  # noqa: E402
from gateway.store.models import Event, Message  # noqa: E402

LAB, RESULTS = "laboratoire@pro.gateway.test", "resultats@pro.gateway.test"
SAMPLE = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
DOC_ID = b"1.2.250.1.213.1.1.1.55.2024.9.1"
FILING = f'\n[documents]\nfiling_mailboxes = ["{RESULTS}"]\n'


def lab_report(n: int) -> tuple[str, bytes]:
    message_id = f"<{uuid.uuid4().hex}@lab.test>"
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = LAB, RESULTS, f"CR {n}"
    message["Message-ID"] = message_id
    message.set_content("Compte rendu")
    cda = SAMPLE.read_bytes().replace(DOC_ID, DOC_ID[:-1] + str(1000 + n).encode(), 1)
    message.add_attachment(cda, maintype="text", subtype="xml", filename="cr.xml")
    return message_id, message.as_bytes()


def done_at(store: Store, message_ids: list[str]) -> dict[str, float]:
    """When each message's filing.done was recorded (epoch seconds), by Message-ID header."""
    async def work(session: Any) -> dict[str, float]:
        rows = (await session.execute(
            select(Message.message_id_header, Event.at).join(Event, Event.message_id == Message.id)
            .where(Event.kind == "filing.done", Message.message_id_header.in_(message_ids)))).all()
        return {header: at.timestamp() for header, at in rows}
    return store.run(work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--store-url")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between messages (so none waits for another)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-filing-") as tmp:
        folder = Path(tmp)
        pki = make_pki(folder / "pki")
        url = args.store_url or f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"
        store = Store(url)
        store.add_mailbox(LAB, "ORG")
        store.add_mailbox(RESULTS, "ORG")
        store.add_identity()
        gateway = GatewayProcess(folder / "gw", pki, url, message_size=5_000_000, extra_config=FILING)
        gateway.start()
        try:
            accepted: dict[str, float] = {}
            with gateway.smtp(LAB) as client:
                for n in range(args.count):
                    message_id, raw = lab_report(n)
                    client.sendmail(LAB, [RESULTS], raw)
                    accepted[message_id] = time.time()  # the 250 to DATA has just been read
                    time.sleep(args.gap)
            deadline = time.monotonic() + 30
            filed = done_at(store, list(accepted))
            while len(filed) < len(accepted) and time.monotonic() < deadline:
                time.sleep(0.2)
                filed = done_at(store, list(accepted))
        finally:
            gateway.stop()
    latencies = sorted((filed[m] - t) * 1000 for m, t in accepted.items() if m in filed)
    if not latencies:
        print("no message was filed")
        return 1
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    print(f"SMTP 250 -> filing.done over {len(latencies)} lab reports ({'PostgreSQL' if args.store_url else 'SQLite'}):"
          f" median {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
