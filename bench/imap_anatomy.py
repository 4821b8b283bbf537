"""Benchmark of the IMAP anatomy: analysis cost per message, poison messages, and SEARCH through the index.

    .venv/bin/python bench/imap_anatomy.py [--messages 50000] [--url postgresql+asyncpg://...]

Seeds one folder with ``--messages`` messages (indexed as delivery does), then prints the analysis time of a
1 KiB message and of poison messages (10,000 levels deep, 50,000 parts), and the latency of SEARCH TEXT,
BODY, SUBJECT and HEADER over the folder. Without ``--url`` a temporary SQLite file is used.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, update

from gateway.anatomy.analyse import analyse
from gateway.imap.anatomy.store import search_text
from gateway.store import db, mailstore
from gateway.store.anatomy import index_messages
from gateway.store.models import Delivery, Folder, Message

WORDS = ("bilan", "sanguin", "ordonnance", "radiologie", "compte", "rendu", "consultation", "patient", "dossier",
         "analyse", "résultat", "hémoglobine", "glycémie", "cholestérol", "prescription", "suivi", "allergie")


def sample(n: int, rng: random.Random) -> bytes:
    words = " ".join(rng.choice(WORDS) for _ in range(120))
    return (f"From: Dr {n % 97} <dr{n % 97}@pro.gateway.test>\r\nTo: p{n}@patient.gateway.test\r\n"
            f"Subject: Compte rendu {n} {rng.choice(WORDS)}\r\nDate: Tue, 1 Jul 2025 10:00:00 +0200\r\n"
            f"Message-ID: <{n}@pro.gateway.test>\r\nX-Dossier: D-{n:06d}\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{words}\r\nRéférence unique ref{n:06d}x.\r\n"
            ).encode()


def nested(depth: int) -> bytes:
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    return b"Subject: deep\r\n" + head + b"\r\nbottom" + b"".join(b"\r\n--b%d--" % i for i in range(depth))


def siblings(count: int) -> bytes:
    return (b"Content-Type: multipart/mixed; boundary=s\r\n\r\n"
            + b"".join(b"--s\r\n\r\n%d\r\n" % i for i in range(count)) + b"--s--\r\n")


def analysis_figures() -> None:
    small = sample(1, random.Random(1))[:1024]
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        analyse(small)
    print(f"analyse 1 KiB message: {(time.perf_counter() - started) / runs * 1e6:.0f} µs")
    for label, raw in (("10,000 levels deep", nested(10_000)), ("50,000 parts", siblings(50_000))):
        analyse(raw)
        started = time.perf_counter()
        anatomy = analyse(raw)
        elapsed = time.perf_counter() - started
        tracemalloc.start()  # measured apart: tracing slows the walk several times
        analyse(raw)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"analyse poison {label} ({len(raw) / 1e6:.1f} MB): {elapsed * 1e3:.1f} ms, "
              f"peak {peak / 1e6:.1f} MB, refused: {anatomy.refused}")


async def seed(url: str, count: int) -> int:
    await db.migrate(url)
    engine = db.create_engine(url)
    rng = random.Random(7)
    try:
        async with db.sessionmaker(engine)() as session:
            mailbox = await mailstore.create_mailbox(session, "bench@pro.gateway.test", "PER")
            folder = await mailstore.folder_id(session, mailbox, "INBOX")
            await session.commit()
            now = datetime.now(UTC)
            started = time.perf_counter()
            for start in range(0, count, 1000):
                raws = [sample(n, rng) for n in range(start, min(count, start + 1000))]
                result = await session.execute(insert(Message).returning(Message.id, sort_by_parameter_order=True), [
                    dict(received_at=now, sender_mailbox_id=None, mail_from="", rcpt_to=[], size=len(raw), raw=raw)
                    for raw in raws])
                ids = list(result.scalars())
                await index_messages(session, list(zip(ids, raws, strict=True)))
                await session.execute(insert(Delivery), [
                    dict(folder_id=folder, message_id=mid, uid=start + i + 1, flags="", seen=False,
                         modseq=start + i + 1, internal_date=now) for i, mid in enumerate(ids)])
                await session.commit()
            await session.execute(update(Folder).where(Folder.id == folder).values(
                uidnext=count + 1, highestmodseq=count + 1))
            await session.commit()
            elapsed = time.perf_counter() - started
            print(f"stored and indexed {count} messages: {elapsed:.1f} s ({count / elapsed:.0f}/s)")
            return folder
    finally:
        await engine.dispose()


async def search_figures(url: str, folder: int, count: int) -> None:
    engine = db.create_engine(url)
    try:
        async with db.read_sessionmaker(engine)() as session:
            cases = [("TEXT", f"ref{count // 2:06d}x", None), ("BODY", "hémoglobine glycémie", None),
                     ("TEXT", "zzzz-absent", None), ("SUBJECT", f"rendu {count - 1} ", None),
                     ("FROM", "dr13@", None), ("HEADER", f"d-{count // 3:06d}", "X-Dossier"), ("BODY", "x.", None)]
            for field, needle, name in cases:
                times, found = [], 0
                for _ in range(5):
                    started = time.perf_counter()
                    found = len(await search_text(session, folder, needle, field, name))
                    times.append(time.perf_counter() - started)
                print(f"SEARCH {field}{' ' + name if name else ''} {needle!r}: median "
                      f"{statistics.median(times) * 1e3:.1f} ms, {found} messages")
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--url", help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    analysis_figures()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        print(f"store: {url.split('://', 1)[0]}", file=sys.stderr)
        folder = asyncio.run(seed(url, args.messages))
        asyncio.run(search_figures(url, folder, args.messages))


if __name__ == "__main__":
    main()
