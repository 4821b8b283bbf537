"""IMAP benchmark: a real ``gateway serve`` process, driven over TLS, figures printed.

Measures:
- commands/s of a FETCH / SEARCH / STORE mix with 10 concurrent clients;
- IDLE wake-up latency (SMTP submission accepted -> untagged EXISTS at the idling client), p50 / p99;
- SELECT latency, and paging (FETCH of 50 headers), on a 100,000-message INBOX beside a 100-message one;
- resident memory of the gateway process with 1,000 concurrent idle authenticated IMAP connections.

Run: ``.venv/bin/python bench/imap.py`` (SQLite in a temporary folder), or with
``--database-url postgresql+asyncpg://user@host:port/db`` (an empty database). ``--quick`` for a smoke run.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import resource
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
from sqlalchemy import insert, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.auth.passwords import hash_password
from gateway.pki import DevelopmentPKI
from gateway.store import db, mailstore
from gateway.store.anatomy import index_messages
from gateway.store.models import Delivery, Folder, Message

PASSWORD = "bench-password"
HOST = "mail.gateway.test"
CONFIG = """\
[gateway]
hostname = "{host}"
domains = ["pro.gateway.test"]
patient_domain = "patient.gateway.test"
log_level = "warning"
workers = {workers}

[database]
url = "{url}"

[tls]
certificate = "{cert}"
private_key = "{key}"

[smtp]
submission = "127.0.0.1:{smtp}"

[imap]
listen = "127.0.0.1:{imap}"
listen_tls = "127.0.0.1:{imaps}"

[limits]
failed_logins = 100000
failed_logins_per_address = 100000
connections_per_address = 100000
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample(n: int) -> bytes:
    return (f"From: sender{n % 7}@pro.gateway.test\r\nTo: big@pro.gateway.test\r\nSubject: Resultat {n}\r\n"
            f"Message-ID: <bench-{n}@pro.gateway.test>\r\nDate: Sun, 22 Nov 2026 09:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Compte rendu numero {n}.\r\n" + "Ligne de texte du compte rendu.\r\n" * 20).encode()


async def populate(url: str, big: int, crowd: int = 0) -> None:
    """Accounts, a ``big`` INBOX and a 100-message one, written in bulk (the same rows SMTP writes); ``crowd``
    more accounts ``client0`` ... for the reconnection mode (one hash for all: the cache is keyed by name and
    password, so each is a miss)."""
    await db.migrate(url)
    engine = db.create_engine(url)
    hashed = hash_password(PASSWORD)
    try:
        async with db.sessionmaker(engine)() as session:
            names = ["big", "small", "idle", *[f"user{n}" for n in range(10)], *[f"client{n}" for n in range(crowd)]]
            ids = {}
            for name in names:
                ids[name] = await mailstore.create_mailbox(session, f"{name}@pro.gateway.test", "PER",
                                                           password_hash=hashed)
            await session.commit()
            for name, count in [("big", big), ("small", 100), *[(f"user{n}", 200) for n in range(10)]]:
                folder = await mailstore.folder_id(session, ids[name], "INBOX")
                now = datetime.now(UTC)
                for start in range(0, count, 5000):
                    stop = min(count, start + 5000)
                    raws = [sample(n) for n in range(start, stop)]
                    result = await session.execute(insert(Message).returning(Message.id), [
                        dict(received_at=now, sender_mailbox_id=None, mail_from="sender@pro.gateway.test",
                             rcpt_to=[f"{name}@pro.gateway.test"], message_id_header=None, subject=None,
                             header_from=None, size=len(raw), raw=raw) for raw in raws])
                    message_ids = list(result.scalars())
                    await index_messages(session, list(zip(message_ids, raws, strict=True)))
                    await session.execute(insert(Delivery), [
                        dict(folder_id=folder, message_id=mid, uid=start + i + 1,
                             flags="\\Seen" if (start + i) % 3 else "", seen=bool((start + i) % 3),
                             modseq=start + i + 1, internal_date=now)
                        for i, mid in enumerate(message_ids)])
                await session.execute(update(Folder).where(Folder.id == folder).values(
                    uidnext=count + 1, highestmodseq=count + 1))
                await session.commit()
    finally:
        await engine.dispose()


class Client:
    """A minimal IMAP client: one command at a time, reads until its tagged reply (literals included)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.n = 0

    @classmethod
    async def connect(cls, port: int, context: ssl.SSLContext, user: str | None, limit: int = 1 << 20) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, limit=limit)
        client = cls(reader, writer)
        await reader.readline()
        if user is not None:
            await client.command(f'LOGIN {user}@pro.gateway.test "{PASSWORD}"')
        return client

    async def read_response(self, tag: bytes) -> list[bytes]:
        lines = []
        prefix = tag + b" "
        while True:  # the load client's own cost stays small: a regular expression only for literal lines
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            match = re.search(rb"\{(\d+)\}\r\n$", line) if line.endswith(b"}\r\n") else None
            if match:
                line += await self.reader.readexactly(int(match.group(1)))
                continue_line = await self.reader.readline()
                line += continue_line
            lines.append(line)
            if line.startswith(prefix):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return lines

    async def command(self, text: str) -> list[bytes]:
        self.n += 1
        tag = b"t%d" % self.n
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        return await self.read_response(tag)

    async def command_bulk(self, text: str) -> int:
        """A command whose answer has no literal, read as one block up to its tagged line (as a C client would
        read it: the load client's own per-line work stays out of the figure); the number of lines."""
        self.n += 1
        tag = b"t%d" % self.n
        self.writer.write(tag + b" " + text.encode() + b"\r\n")
        data = await self.reader.readuntil(b"\r\n" + tag + b" ")
        status = await self.reader.readline()
        if not status.startswith(b"OK"):
            raise RuntimeError(status.decode(errors="replace"))
        return data.count(b"\r\n")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(b"z LOGOUT\r\n")
            self.writer.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def bench_mix(port: int, context: ssl.SSLContext, seconds: float) -> tuple[float, int]:
    """10 clients, each on its own 200-message INBOX, looping FETCH / SEARCH / STORE."""
    clients = [await Client.connect(port, context, f"user{n}") for n in range(10)]
    for client in clients:
        await client.command("SELECT INBOX")
    done = 0
    deadline = time.monotonic() + seconds
    timings: dict[str, list[float]] = {"FETCH": [], "SEARCH": [], "STORE": []}

    async def loop(client: Client) -> None:
        nonlocal done
        rng = random.Random(id(client))
        while time.monotonic() < deadline:
            first = rng.randint(1, 190)
            kind = rng.random()
            began = time.perf_counter()
            if kind < 0.5:
                await client.command(f"FETCH {first}:{first + 9} (UID FLAGS RFC822.SIZE "
                                     "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])")
            elif kind < 0.8:
                await client.command(rng.choice(["UID SEARCH UNSEEN", "SEARCH FLAGGED", "SEARCH FROM sender3"]))
            else:
                await client.command(f"STORE {first} {rng.choice(['+', '-'])}FLAGS.SILENT (\\Flagged)")
            timings["FETCH" if kind < 0.5 else "SEARCH" if kind < 0.8 else "STORE"].append(
                time.perf_counter() - began)
            done += 1

    start = time.monotonic()
    await asyncio.gather(*(loop(c) for c in clients))
    elapsed = time.monotonic() - start
    for client in clients:
        await client.close()
    print("  median latency under load: " + ", ".join(
        f"{kind} {statistics.median(values) * 1000:.0f} ms" for kind, values in timings.items() if values))
    return done / elapsed, done


async def bench_select(port: int, context: ssl.SSLContext, user: str, count: int, rounds: int
                       ) -> dict[str, float]:
    """Milliseconds: first SELECT (cold: nothing cached), then medians of SELECT and of commands on one page.

    The page is the last 50 messages, what a mail client shows first: their headers, a flag change on one of
    them, a search for unseen mail among them, and a search for unseen mail in the whole folder.
    """
    client = await Client.connect(port, context, user)
    page = f"{max(1, count - 49)}:{count}"
    commands = {
        "fetch": f"FETCH {page} (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])",
        "store": f"STORE {count} +FLAGS.SILENT (\\Flagged)",
        "search_page": f"SEARCH {page} UNSEEN",
        "search_all": "UID SEARCH UNSEEN",
    }
    timings: dict[str, list[float]] = {"select": [], **{name: [] for name in commands}}
    for _ in range(rounds):
        start = time.perf_counter()
        await client.command("SELECT INBOX")
        timings["select"].append(time.perf_counter() - start)
        for name, command in commands.items():
            start = time.perf_counter()
            await client.command(command)
            timings[name].append(time.perf_counter() - start)
        await client.command("CLOSE")
    await client.close()
    figures = {name: statistics.median(values[1:]) * 1000 for name, values in timings.items()}
    figures["first_select"] = timings["select"][0] * 1000
    return figures


async def bench_idle(port: int, smtp_port: int, context: ssl.SSLContext, cafile: str, rounds: int) -> list[float]:
    """SMTP submission accepted -> EXISTS at the idling client, ``rounds`` times."""
    client = await Client.connect(port, context, "idle")
    await client.command("SELECT INBOX")
    smtp_context = ssl.create_default_context(cafile=cafile)
    smtp = smtplib.SMTP("127.0.0.1", smtp_port, timeout=30)
    smtp.starttls(context=smtp_context)
    smtp.login("user0@pro.gateway.test", PASSWORD)
    latencies = []
    for n in range(rounds):
        client.writer.write(b"i IDLE\r\n")
        assert (await client.reader.readline()).startswith(b"+")
        raw = re.sub(rb"From: [^\r]*", b"From: user0@pro.gateway.test", sample(n).replace(b"big@", b"idle@"))
        await asyncio.to_thread(smtp.sendmail, "user0@pro.gateway.test", ["idle@pro.gateway.test"], raw)
        accepted = time.perf_counter()
        while not (await client.reader.readline()).rstrip().endswith(b"EXISTS"):
            pass
        latencies.append(time.perf_counter() - accepted)
        client.writer.write(b"DONE\r\n")
        await client.read_response(b"i")
    smtp.quit()
    await client.close()
    return latencies


async def bench_connections(port: int, context: ssl.SSLContext, count: int, pid: int) -> tuple[float, float]:
    """Memory of the gateway's processes before and with ``count`` idle authenticated connections (MB)."""
    process = psutil.Process(pid)

    def rss() -> float:
        """Proportional set size of the supervisor, its workers and their hashing processes together: pages
        the forked processes share are counted once, as the machine holds them (RSS would count them in each)."""
        return sum(p.memory_full_info().pss for p in [process, *process.children(recursive=True)]) / 1e6

    before = rss()
    clients: list[Client] = []
    semaphore = asyncio.Semaphore(20)

    async def one(n: int) -> None:
        async with semaphore:
            client = await Client.connect(port, context, f"user{n % 10}")
            await client.command("NOOP")
            clients.append(client)

    await asyncio.gather(*(one(n) for n in range(count)))
    await asyncio.sleep(2.0)  # let the login worker threads' Argon2 memory go back to the system
    with_connections = rss()
    if os.environ.get("BENCH_MEMORY_BREAKDOWN"):
        for p in [process, *process.children(recursive=True)]:
            print(f"  pid {p.pid} {' '.join(p.cmdline()[2:4])}: PSS {p.memory_full_info().pss / 1e6:.0f} MB, "
                  f"USS {p.memory_full_info().uss / 1e6:.0f} MB")
    await asyncio.gather(*(c.close() for c in clients))
    return before, with_connections


async def bench_reconnect(port: int, context: ssl.SSLContext, count: int, accounts: int, pid: int
                          ) -> tuple[float, float, list[float]]:
    """``count`` clients of ``accounts`` accounts connecting and logging in at once to a gateway just started (its
    credential cache empty), as after a restart; they stay connected. Seconds until all are in, gateway CPU
    seconds, LOGIN latencies. The load client opens at most 64 TLS handshakes at a time."""
    semaphore = asyncio.Semaphore(64)
    clients: list[Client] = []
    latencies: list[float] = []

    async def one(n: int) -> None:
        async with semaphore:
            client = await Client.connect(port, context, None)
            began = time.perf_counter()
            lines = await client.command(f'LOGIN client{n % accounts}@pro.gateway.test "{PASSWORD}"')
            latencies.append(time.perf_counter() - began)
            assert lines[-1].split()[1] == b"OK", lines[-1]
            clients.append(client)

    cpu = cpu_seconds(pid)
    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(count)))
    elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    await asyncio.gather(*(c.close() for c in clients))
    return elapsed, cpu, latencies


def stats_line(timings: dict[str, list[float]]) -> str:
    return ", ".join(f"{kind} p50 {percentile(values, 50) * 1000:.1f} / p99 {percentile(values, 99) * 1000:.1f} ms"
                     for kind, values in timings.items() if values)


async def bench_client_mix(port: int, context: ssl.SSLContext, seconds: float, *, logout: bool
                           ) -> tuple[float, int, dict[str, list[float]]]:
    """10 clients on their own 200-message INBOX, each looping what a mail client does in a visit: LOGIN,
    SELECT, FETCH of flags / envelopes / a body, STORE of a flag and a keyword, EXPUNGE of one message, APPEND
    of one, LOGOUT (``logout=False``: one login per client, the rest looped). The folder keeps its size."""
    timings: dict[str, list[float]] = {}
    done = 0
    deadline = time.monotonic() + seconds

    async def timed(client: Client, name: str, text: str) -> list[bytes]:
        nonlocal done
        began = time.perf_counter()
        lines = await client.command(text)
        timings.setdefault(name, []).append(time.perf_counter() - began)
        done += 1
        return lines

    async def visit(client: Client, rng: random.Random, user: str) -> None:
        lines = await timed(client, "SELECT", "SELECT INBOX")
        exists = next(int(line.split()[1]) for line in lines if line.rstrip().endswith(b"EXISTS"))
        await timed(client, "FETCH FLAGS", "FETCH 1:* (UID FLAGS)")
        await timed(client, "FETCH ENVELOPE", f"FETCH {max(1, exists - 19)}:* (UID RFC822.SIZE ENVELOPE)")
        one = rng.randint(1, exists)
        await timed(client, "FETCH BODY", f"FETCH {one} (BODY.PEEK[])")
        await timed(client, "STORE", f"STORE {one} {rng.choice('+-')}FLAGS (\\Seen)")
        await timed(client, "STORE keyword", f"STORE {one} {rng.choice('+-')}FLAGS.SILENT ($Label{rng.randint(1, 5)})")
        await timed(client, "STORE", f"STORE {rng.randint(1, exists)} +FLAGS.SILENT (\\Deleted)")
        await timed(client, "EXPUNGE", "EXPUNGE")
        raw = sample(rng.randint(0, 10_000)).replace(b"big@", f"{user}@".encode())
        began = time.perf_counter()
        client.n += 1
        tag = b"t%d" % client.n
        client.writer.write(tag + b" APPEND INBOX (\\Seen) {%d+}\r\n" % len(raw) + raw + b"\r\n")
        await client.read_response(tag)
        timings.setdefault("APPEND", []).append(time.perf_counter() - began)
        nonlocal done
        done += 1

    async def loop(n: int) -> None:
        nonlocal done
        rng = random.Random(n)
        user = f"user{n}"
        client: Client | None = None
        while time.monotonic() < deadline:
            if client is None:
                client = await Client.connect(port, context, None)
                await timed(client, "LOGIN", f'LOGIN {user}@pro.gateway.test "{PASSWORD}"')
            await visit(client, rng, user)
            if logout:
                began = time.perf_counter()
                await client.command("LOGOUT")
                timings.setdefault("LOGOUT", []).append(time.perf_counter() - began)
                done += 1
                client.writer.close()
                client = None
        if client is not None:
            await client.close()

    start = time.monotonic()
    await asyncio.gather(*(loop(n) for n in range(10)))
    elapsed = time.monotonic() - start
    return done / elapsed, done, timings


async def bench_logins(port: int, context: ssl.SSLContext, seconds: float, clients: int = 10
                       ) -> tuple[float, int, list[float]]:
    """``clients`` connections at a time, each looping connect, LOGIN (a password hash: the gateway runs with its
    credential cache off), LOGOUT; logins/s and their latencies."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def loop(n: int) -> None:
        while time.monotonic() < deadline:
            client = await Client.connect(port, context, None)
            began = time.perf_counter()
            await client.command(f'LOGIN user{n % 10}@pro.gateway.test "{PASSWORD}"')
            latencies.append(time.perf_counter() - began)
            await client.close()

    start = time.monotonic()
    await asyncio.gather(*(loop(n) for n in range(clients)))
    return len(latencies) / (time.monotonic() - start), len(latencies), latencies


async def bench_large(port: int, context: ssl.SSLContext, count: int, rounds: int = 3, pid: int = 0
                      ) -> dict[str, list[float]]:
    """A ``count``-message INBOX: all flags, a full-text search (rare and common word), the last 50 bodies."""
    client = await Client.connect(port, context, "big", limit=256 << 20)
    timings: dict[str, list[float]] = {}
    commands = {
        "SELECT": "SELECT INBOX",
        "FETCH 1:* (FLAGS)": "FETCH 1:* (FLAGS)",
        "SEARCH TEXT rare": f'SEARCH TEXT "numero {count // 2}."',
        "SEARCH TEXT common": "SEARCH TEXT rendu",
        "UID FETCH last 50 bodies": f"UID FETCH {max(1, count - 49)}:{count} (BODY.PEEK[])",
    }
    for _ in range(rounds):
        for name, command in commands.items():
            cpu = cpu_seconds(pid) if pid else 0.0
            began = time.perf_counter()
            if command.startswith("FETCH 1:*"):
                await client.command_bulk(command)
            else:
                await client.command(command)
            timings.setdefault(name, []).append(time.perf_counter() - began)
            if pid:
                timings.setdefault(name + " (gateway CPU)", []).append(cpu_seconds(pid) - cpu)
    await client.close()
    return timings


async def idlers(port: int, context: ssl.SSLContext, users: list[str]) -> list[Client]:
    """One IDLE connection per entry of ``users`` (logged in, INBOX selected), opened 50 at a time."""
    semaphore = asyncio.Semaphore(50)

    async def one(user: str) -> Client:
        async with semaphore:
            client = await Client.connect(port, context, user)
            await client.command("SELECT INBOX")
            client.writer.write(b"i IDLE\r\n")
            while not (await client.reader.readline()).startswith(b"+"):
                pass
            return client

    first = await one(users[0])  # its login fills the login cache: the others pay no password hash
    return [first, *await asyncio.gather(*(one(user) for user in users[1:]))]


def smtp_client(smtp_port: int, cafile: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", smtp_port, timeout=60)
    smtp.starttls(context=ssl.create_default_context(cafile=cafile))
    smtp.login("small@pro.gateway.test", PASSWORD)
    return smtp


def submit(smtp: smtplib.SMTP, user: str, n: int) -> float:
    """Seconds from DATA's end to the 250 of one submission to ``user``."""
    raw = re.sub(rb"From: [^\r]*", b"From: small@pro.gateway.test", sample(n).replace(b"big@", f"{user}@".encode()))
    began = time.perf_counter()
    smtp.sendmail("small@pro.gateway.test", [f"{user}@pro.gateway.test"], raw)
    return time.perf_counter() - began


async def bench_idle_wake(port: int, smtp_port: int, context: ssl.SSLContext, cafile: str, count: int,
                          rounds: int = 3) -> list[tuple[float, float]]:
    """``count`` idlers of one INBOX; per delivery: (SMTP 250 -> first EXISTS, SMTP 250 -> last EXISTS)."""
    clients = await idlers(port, context, ["idle"] * count)
    smtp = smtp_client(smtp_port, cafile)
    print(f"{count} idlers ready", flush=True)
    await asyncio.sleep(float(os.environ.get("BENCH_PAUSE", "0")))  # time to attach a profiler
    figures = []
    for n in range(rounds):

        async def until_exists(client: Client) -> float:
            while not (await client.reader.readline()).rstrip().endswith(b"EXISTS"):
                pass
            return time.perf_counter()

        waits = [asyncio.ensure_future(until_exists(c)) for c in clients]
        await asyncio.to_thread(submit, smtp, "idle", n)
        accepted = time.perf_counter()
        woken = await asyncio.wait_for(asyncio.gather(*waits), 300)
        figures.append((min(woken) - accepted, max(woken) - accepted))
    smtp.quit()
    for client in clients:
        client.writer.close()
    return figures


async def bench_idle_smtp(port: int, smtp_port: int, context: ssl.SSLContext, cafile: str, count: int,
                          submissions: int = 20) -> tuple[list[float], list[float]]:
    """SMTP 250 latency of ``submissions`` deliveries to 10 mailboxes, without idlers and with ``count``
    idlers spread over those mailboxes (each delivery wakes a tenth of them)."""
    smtp = smtp_client(smtp_port, cafile)
    alone = [await asyncio.to_thread(submit, smtp, f"user{n % 10}", n) for n in range(submissions)]
    clients = await idlers(port, context, [f"user{n % 10}" for n in range(count)])

    async def drain(client: Client) -> None:
        with contextlib.suppress(Exception):
            while await client.reader.readline():
                pass

    drains = [asyncio.ensure_future(drain(c)) for c in clients]
    loaded = [await asyncio.to_thread(submit, smtp, f"user{n % 10}", n) for n in range(submissions)]
    smtp.quit()
    for client in clients:
        client.writer.close()
    for task in drains:
        task.cancel()
    return alone, loaded


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the gateway's process tree (supervisor, workers, hashing pool)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


async def until_serving(port: int, context: ssl.SSLContext, deadline: float) -> None:
    """Until every worker process greets at once: the listening socket accepts before the workers have started
    (a loaded machine takes seconds to import them), and that start is not what the figures measure."""
    quick = 0
    while quick < 8:
        began = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        await reader.readline()
        writer.close()
        quick = quick + 1 if time.monotonic() - began < 0.5 else 0
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start serving")


async def single_mode(args: argparse.Namespace, port: int, smtp_port: int, context: ssl.SSLContext, cafile: str,
                      pid: int) -> None:
    if args.mix:
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        rate, total, timings = await bench_client_mix(port, context, args.seconds, logout=not args.no_logout)
        server_cpu, client_cpu = cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
        kind = "one login per client" if args.no_logout else "LOGIN ... LOGOUT visits"
        print(f"client mix, 10 clients, {kind}: {rate:.0f} commands/s ({total} in {args.seconds:.0f} s); "
              f"CPU per command: gateway {server_cpu * 1000 / total:.2f} ms, load client "
              f"{client_cpu * 1000 / total:.2f} ms; load average {os.getloadavg()[0]:.1f}")
        print("  " + stats_line(timings))
    if args.logins:
        cpu = cpu_seconds(pid)
        rate, total, latencies = await bench_logins(port, context, args.seconds)
        cpu = cpu_seconds(pid) - cpu
        cache = "on (every login a hit after the first of each account)" if args.cached else "off"
        print(f"password logins, credential cache {cache}, 10 clients (connect, LOGIN, LOGOUT): {rate:.0f} logins/s "
              f"({total} in {args.seconds:.0f} s), LOGIN p50 {percentile(latencies, 50) * 1000:.0f} / p99 "
              f"{percentile(latencies, 99) * 1000:.0f} ms; gateway CPU {cpu * 1000 / max(1, total):.1f} ms a login; "
              f"load average {os.getloadavg()[0]:.1f}")
    if args.reconnect:
        elapsed, cpu, latencies = await bench_reconnect(port, context, args.reconnect, args.accounts, pid)
        print(f"{args.reconnect} clients of {args.accounts} accounts logging in at once after a start (empty "
              f"credential cache): all in after {elapsed:.1f} s ({args.reconnect / elapsed:.0f} logins/s), LOGIN "
              f"p50 {percentile(latencies, 50) * 1000:.0f} / p99 {percentile(latencies, 99) * 1000:.0f} ms; "
              f"gateway CPU {cpu:.1f} s; load average {os.getloadavg()[0]:.1f}")
    if args.large:
        print(f"{args.large}-message INBOX, median of 3 / worst: " + ", ".join(
            f"{name} {statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f} ms"
            for name, values in (await bench_large(port, context, args.large, pid=pid)).items()))
    if args.idle:
        before, loaded = await bench_connections(port, context, args.idle, pid)
        print(f"gateway memory (PSS): {before:.0f} MB before, {loaded:.0f} MB with {args.idle} idle authenticated "
              f"IMAP connections ({(loaded - before) * 1000 / args.idle:.0f} kB each; target < 500 MB); "
              f"load average {os.getloadavg()[0]:.1f}")
    if args.idle_wake:
        for first, last in await bench_idle_wake(port, smtp_port, context, cafile, args.idle_wake):
            print(f"{args.idle_wake} idlers of one INBOX, SMTP 250 -> EXISTS: first {first * 1000:.0f} ms, "
                  f"all {last * 1000:.0f} ms (target < 1000 ms); load average {os.getloadavg()[0]:.1f}")
    if args.idle_smtp:
        alone, crowded = await bench_idle_smtp(port, smtp_port, context, cafile, args.idle_smtp)
        print(f"SMTP 250, median / worst of {len(alone)}: {statistics.median(alone) * 1000:.0f} / "
              f"{max(alone) * 1000:.0f} ms alone, {statistics.median(crowded) * 1000:.0f} / "
              f"{max(crowded) * 1000:.0f} ms with {args.idle_smtp} idlers on the 10 INBOXes; "
              f"load average {os.getloadavg()[0]:.1f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite in a temp folder)")
    parser.add_argument("--messages", type=int, default=100_000, help="size of the big INBOX")
    parser.add_argument("--connections", type=int, default=1000, help="idle authenticated connections")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the command mix")
    parser.add_argument("--quick", action="store_true", help="small figures, for a smoke run")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gateway worker processes")
    modes = parser.add_argument_group("single measurements (instead of the whole run)")
    modes.add_argument("--mix", action="store_true", help="10 clients looping LOGIN ... APPEND, LOGOUT")
    modes.add_argument("--no-logout", action="store_true", help="with --mix: one login per client")
    modes.add_argument("--logins", action="store_true", help="password logins/s, credential cache off")
    modes.add_argument("--cached", action="store_true", help="with --logins: credential cache on")
    modes.add_argument("--reconnect", type=int, metavar="N",
                       help="N clients logging in at once after a start (with --accounts: of that many accounts)")
    modes.add_argument("--accounts", type=int, default=1000, help="with --reconnect: distinct accounts")
    modes.add_argument("--large", type=int, metavar="N", help="FETCH/SEARCH/UID FETCH on an N-message INBOX")
    modes.add_argument("--idle", type=int, metavar="N", help="gateway RSS with N idle authenticated connections")
    modes.add_argument("--idle-wake", type=int, metavar="N", help="N idlers of one INBOX woken by one delivery")
    modes.add_argument("--idle-smtp", type=int, metavar="N", help="SMTP 250 latency with N idlers on 10 INBOXes")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.connections, args.seconds = 2000, 50, 2.0
    single = args.mix or args.logins or args.large or args.idle or args.idle_wake or args.idle_smtp or args.reconnect
    if single:
        args.messages = args.large or 0
        args.connections = max(args.connections, args.idle or 0, args.idle_wake or 0, args.idle_smtp or 0,
                               args.reconnect or 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.connections + 256)), hard))

    with tempfile.TemporaryDirectory(prefix="bench-imap-") as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
        pki = DevelopmentPKI.create()
        pki.save(folder)
        pki.server(HOST).write(folder / "server.crt", folder / "server.key")
        started = time.monotonic()
        await populate(url, args.messages, args.accounts if args.reconnect else 0)
        print(f"store: {url.split('://')[0]}, populated {args.messages + 100 + 2000} messages "
              f"in {time.monotonic() - started:.1f} s")
        ports = {"smtp": free_port(), "imap": free_port(), "imaps": free_port()}
        (folder / "gateway.toml").write_text(CONFIG.format(
            host=HOST, workers=args.workers, url=url, cert=folder / "server.crt", key=folder / "server.key", **ports)
            + ("\n[auth]\ncache_ttl = 0\n" if args.logins and not args.cached else ""))
        profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
        errors = None if os.environ.get("BENCH_STDERR") else subprocess.DEVNULL
        server = subprocess.Popen([sys.executable, *profile, "-m", "gateway.cli", "serve", "--config",  # noqa: ASYNC220
                                   str(folder / "gateway.toml")], stderr=errors,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", ports["imaps"]), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the gateway did not start") from None
                    await asyncio.sleep(0.1)
            context = ssl.create_default_context(cafile=str(folder / "ca-bundle.crt"))
            port = ports["imaps"]
            await until_serving(port, context, deadline)

            if single:
                await single_mode(args, port, ports["smtp"], context, str(folder / "ca-bundle.crt"), server.pid)
                return
            rate, total = await bench_mix(port, context, args.seconds)
            print(f"FETCH/SEARCH/STORE mix, 10 clients: {rate:.0f} commands/s ({total} in {args.seconds:.0f} s)")
            if os.environ.get("BENCH_ONLY_MIX"):
                return
            latencies = await bench_idle(port, ports["smtp"], context, str(folder / "ca-bundle.crt"),
                                         20 if args.quick else 100)
            print(f"IDLE wake-up after SMTP 250: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
                  f"p99 {percentile(latencies, 99) * 1000:.1f} ms (target p99 < 1000 ms)")
            small = await bench_select(port, context, "small", 100, 6)
            big = await bench_select(port, context, "big", args.messages, 6)
            labels = {"first_select": "SELECT INBOX, first after start", "select": "SELECT INBOX, median of next 5",
                      "fetch": "FETCH last 50 headers", "store": "STORE a flag on the last message",
                      "search_page": "SEARCH UNSEEN in the last 50", "search_all": "UID SEARCH UNSEEN, whole folder"}
            for key, label in labels.items():
                print(f"{label}: 100 messages {small[key]:.1f} ms, {args.messages} messages {big[key]:.1f} ms")
            before, loaded = await bench_connections(port, context, args.connections, server.pid)
            print(f"gateway memory (PSS): {before:.0f} MB before, {loaded:.0f} MB with {args.connections} idle "
                  f"authenticated IMAP connections (target < 200 MB)")
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    asyncio.run(main())
