"""Benchmark: SMTP submission over STARTTLS + AUTH PLAIN, durably stored; optionally beside Debian's Postfix.

Starts a real gateway process on SQLite (or --store-url) with a fresh PKI and drives it with aiosmtplib from
several client processes (or, with ``--client pipelined``, a lean client that pipelines as MTAs do, and with
``--client blocking`` the same over blocking sockets, a thread per session: bench/smtp_pipelined.py). Two
modes: ``reuse`` (one login per session, many messages each) and ``login`` (a new connection, STARTTLS and AUTH
for every message). For each mode, message size (1 KiB, 100 KiB, 1 MiB) and
number of sessions it prints messages/s, MB/s, p50/p99 latency (a message's MAIL..250, or in ``login`` mode its
whole connection), the server's CPU per message (user + system of every server process, from /proc), the load
client's (its processes share the cores) and the load average at the end of the round. Beside each ratio with
Postfix, each server's ceiling: the rate at which it and this client would use every core. Every 250 counted
was given after the commit.

With ``--postfix`` a private Postfix (bench/postfix_peer.py: own config folder and port, the same certificate,
SASL PLAIN from a sasldb, delivery by ``virtual`` into Maildir) gets the same load in the same run, each round
right after the gateway's, and the ratio gateway/Postfix is printed. Postfix is installed with apt-get when
missing (as root), and stopped at the end.

    .venv/bin/python bench/smtp_ingest.py --sessions 20 --messages 3000
    .venv/bin/python bench/smtp_ingest.py --modes reuse,login --sizes 1k,100k,1m --sessions 1,20,50 --postfix
    .venv/bin/python bench/smtp_ingest.py --client pipelined --postfix

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import functools
import multiprocessing
import os
import shutil
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from postfix_peer import PostfixPeer, Unavailable, cpu_seconds  # noqa: E402
from smtp_pipelined import BlockingClient, PipelinedClient  # noqa: E402
from support.commit_stats import commit_stats  # noqa: E402
from support.pki import make_pki  # noqa: E402
from support.process import GatewayProcess, free_port  # noqa: E402
from support.store import Store  # noqa: E402
from support.workers import configure  # noqa: E402

DOMAIN = "pro.gateway.test"
RECIPIENT = f"inbox@{DOMAIN}"
PASSWORD = "secret-password"
SIZES = {"1k": 1024, "100k": 100 * 1024, "1m": 1024 * 1024}


def body(sender: str, index: int, size: int) -> bytes:
    head = (f"From: {sender}\r\nTo: {RECIPIENT}\r\nSubject: bench {index}\r\n"
            f"Message-ID: <{index}.{os.getpid()}.{sender}>\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    lines = max(0, (size - len(head)) // len(line))
    return head + line * lines


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    ca_file: str

    def tls(self) -> ssl.SSLContext:
        """The client's one TLS context (a mail client or an MTA loads its trust store once, not per login)."""
        return _client_context(self.ca_file)


@functools.cache
def _client_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


@dataclass(frozen=True)
class Load:
    mode: str  # "reuse" or "login"
    size: int
    per_session: int
    client: str = "aiosmtplib"  # or "pipelined" or "blocking" (bench/smtp_pipelined.py)


async def pipelined_session(target: Target, load: Load, sender: str, latencies: list[float]) -> None:
    """The same load through the lean PIPELINING client; in login mode QUIT follows the message's end."""
    if load.mode == "login":
        for i in range(load.per_session):
            started = time.perf_counter()
            client = await PipelinedClient.open(target.port, target.tls(), sender, PASSWORD)
            await client.send(sender, RECIPIENT, body(sender, i, load.size), quit_after=True)
            client.writer.close()
            latencies.append(time.perf_counter() - started)
        return
    client = await PipelinedClient.open(target.port, target.tls(), sender, PASSWORD)
    for i in range(load.per_session):
        message = body(sender, i, load.size)
        started = time.perf_counter()
        await client.send(sender, RECIPIENT, message)
        latencies.append(time.perf_counter() - started)
    await client.close()


def blocking_session(target: Target, load: Load, sender: str, latencies: list[float]) -> None:
    """:func:`pipelined_session` on a blocking socket, in a thread of its own."""
    if load.mode == "login":
        for i in range(load.per_session):
            started = time.perf_counter()
            client = BlockingClient.open(target.port, target.tls(), sender, PASSWORD)
            client.send(sender, RECIPIENT, body(sender, i, load.size), quit_after=True)
            client.sock.close()
            latencies.append(time.perf_counter() - started)
        return
    client = BlockingClient.open(target.port, target.tls(), sender, PASSWORD)
    for i in range(load.per_session):
        message = body(sender, i, load.size)
        started = time.perf_counter()
        client.send(sender, RECIPIENT, message)
        latencies.append(time.perf_counter() - started)
    client.close()


def threaded_sessions(target: Target, load: Load, senders: list[str]) -> list[float]:
    latencies: list[float] = []
    with concurrent.futures.ThreadPoolExecutor(len(senders)) as pool:
        for done in [pool.submit(blocking_session, target, load, s, latencies) for s in senders]:
            done.result()  # a refused command or a lost connection raises here
    return latencies


async def session(target: Target, load: Load, sender: str, latencies: list[float]) -> None:
    if load.client == "pipelined":
        await pipelined_session(target, load, sender, latencies)
        return

    def client() -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(hostname="127.0.0.1", port=target.port, tls_context=target.tls(), start_tls=True,
                               timeout=120)

    if load.mode == "login":
        for i in range(load.per_session):
            started = time.perf_counter()
            smtp = client()
            await smtp.connect()
            await smtp.login(sender, PASSWORD)
            await smtp.sendmail(sender, [RECIPIENT], body(sender, i, load.size))
            await smtp.quit()
            latencies.append(time.perf_counter() - started)
        return
    smtp = client()
    await smtp.connect()
    await smtp.login(sender, PASSWORD)
    for i in range(load.per_session):
        message = body(sender, i, load.size)
        started = time.perf_counter()
        await smtp.sendmail(sender, [RECIPIENT], message)
        latencies.append(time.perf_counter() - started)
    await smtp.quit()


async def sessions(target: Target, load: Load, senders: list[str]) -> list[float]:
    latencies: list[float] = []
    await asyncio.gather(*(session(target, load, s, latencies) for s in senders))
    return latencies


def client_process(target: Target, load: Load, senders: list[str], start: Any) -> tuple[list[float], float]:
    """One load-generating process: its own event loop (uvloop when installed) driving a share of the sessions;
    returns the latencies and the CPU seconds the process used for them (the load client shares the cores)."""
    start.wait()
    began = time.process_time()
    if load.client == "blocking":
        return threaded_sessions(target, load, senders), time.process_time() - began
    try:
        import uvloop
        latencies = uvloop.run(sessions(target, load, senders))
    except ImportError:
        latencies = asyncio.run(sessions(target, load, senders))
    return latencies, time.process_time() - began


@dataclass(frozen=True)
class Figures:
    messages: int
    elapsed: float
    latencies: list[float]
    cpu: float
    size: int
    load_average: float
    #: CPU seconds of the load client's processes over the round.
    client_cpu: float = 0.0
    #: For a server that delivers after its 250 (Postfix: queue, then virtual(8) into Maildir), seconds from the
    #: round's start to its last message's delivery; the server's CPU is counted up to then.
    delivered_after: float | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.elapsed

    @property
    def megabytes(self) -> float:
        return self.messages * self.size / self.elapsed / 1e6

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, int(len(ordered) * share) - 1)] * 1000

    def line(self, name: str) -> str:
        return (f"  {name:8} {self.rate:7.0f} msg/s {self.megabytes:6.1f} MB/s  p50 {self.percentile(0.5):6.1f} ms"
                f"  p99 {self.percentile(0.99):6.1f} ms  server CPU {self.cpu / self.messages * 1000:5.2f} ms/msg"
                f"  client CPU {self.client_cpu / self.messages * 1000:5.2f} ms/msg"
                f"  ({self.messages} msgs, load {self.load_average:.2f})"
                + (f"; all delivered at {self.messages / self.delivered_after:.0f} msg/s"
                   if self.delivered_after else ""))

    def ceiling(self, cores: int) -> float:
        """The rate at which server and client together would use every core (both at their CPU a message)."""
        return cores * self.messages / (self.cpu + self.client_cpu)


def wait_delivered(delivered: Callable[[], int], count: int, patience: float = 300) -> None:
    """Until ``delivered()`` reaches ``count`` (a server's queue has drained), within ``patience`` seconds."""
    deadline = time.monotonic() + patience
    while delivered() < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{delivered()} of {count} messages delivered after {patience:.0f} s")
        time.sleep(0.05)


def run(target: Target, load: Load, senders: list[str], processes: int, server_pid: int,
        delivered: Callable[[], int] | None = None) -> Figures:
    """Drive the sessions from several client processes, so that the client is not what is measured.

    ``delivered``: for a server that delivers after its 250, how many messages it has delivered so far; the
    round then ends when its queue is empty (so that its deliveries neither go uncounted nor run into the next
    server's round), and its CPU is counted up to then."""
    processes = max(1, min(processes, len(senders)))
    with multiprocessing.Manager() as manager:
        start = manager.Event()
        with multiprocessing.Pool(processes) as pool:
            shares = [senders[i::processes] for i in range(processes)]
            pending = [pool.apply_async(client_process, (target, load, share, start)) for share in shares]
            before = delivered() if delivered is not None else 0
            cpu_before = cpu_seconds(server_pid)
            started = time.perf_counter()
            start.set()
            results = [p.get() for p in pending]
            elapsed = time.perf_counter() - started
            latencies = [lat for share_latencies, _ in results for lat in share_latencies]
            delivered_after = None
            if delivered is not None:
                wait_delivered(delivered, before + len(latencies))
                delivered_after = time.perf_counter() - started
            cpu = cpu_seconds(server_pid) - cpu_before
    return Figures(len(latencies), elapsed, latencies, cpu, load.size, os.getloadavg()[0],
                   sum(used for _, used in results), delivered_after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="reuse", help="reuse, login, or both comma-separated")
    parser.add_argument("--sizes", default="1k", help="comma-separated among 1k, 100k, 1m")
    parser.add_argument("--sessions", default="20", help="comma-separated session counts, e.g. 1,20,50")
    parser.add_argument("--messages", type=int, default=3000,
                        help="messages per round of 1 KiB in reuse mode (100 KiB: a tenth, 1 MiB: a fiftieth; "
                             "login mode: a fifth of those)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of each case")
    parser.add_argument("--store-url", help="default: a fresh SQLite file")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--client", choices=("aiosmtplib", "pipelined", "blocking"), default="aiosmtplib",
                        help="aiosmtplib (a reply awaited per command), a lean client that pipelines MAIL, RCPT "
                             "and DATA as MTAs do, or that client on blocking sockets with a thread per session "
                             "(bench/smtp_pipelined.py); the same for every server")
    parser.add_argument("--workers", type=int, default=None, help="[gateway] workers (default: one per core)")
    parser.add_argument("--postfix", action="store_true", help="run the same load against a private Postfix")
    parser.add_argument("--commit-stats", action="store_true",
                        help="run the gateway at debug level and summarise its group commits (size, wall time)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    counts = [int(n) for n in args.sessions.split(",") if n.strip()]
    if any(m not in ("reuse", "login") for m in modes) or any(s not in SIZES for s in sizes):
        parser.error("--modes takes reuse and login, --sizes takes 1k, 100k and 1m")
    largest = max(SIZES[s] for s in sizes)
    senders = [f"sender{i}@{DOMAIN}" for i in range(max(counts))]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pki = make_pki(folder / "pki")
        url = args.store_url or f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}"
        store = Store(url)
        for address in [*senders, RECIPIENT]:
            store.add_mailbox(address, password=PASSWORD)
        gateway = GatewayProcess(folder / "gw", pki, url, log_level="debug" if args.commit_stats else "warning",
                                 message_size=2 * largest + 65536)
        if args.workers is not None:
            configure(gateway, workers=args.workers)
        postfix = None
        # Postfix's processes run as the postfix user: its folder must be reachable by it (not under 0700 tmp).
        postfix_folder = Path(tempfile.mkdtemp(prefix="bench-postfix-"))
        postfix_folder.chmod(0o755)
        if args.postfix:
            postfix = PostfixPeer(postfix_folder, pki.server_cert, pki.server_key, free_port(), DOMAIN,
                                  senders, PASSWORD, 2 * largest + 65536)
        try:
            gateway.start()
            assert gateway.process is not None
            targets: list[tuple[Target, int, Callable[[], int] | None]] = [
                (Target("gateway", gateway.smtp_port, str(pki.ca_bundle)), gateway.process.pid, None)]
            if postfix is not None:
                try:
                    postfix.start()
                except Unavailable as exc:
                    print(f"{exc} Running the gateway alone.")
                    postfix = None
            if postfix is not None:
                master = postfix.master_pid()
                assert master is not None
                targets.append((Target("postfix", postfix.port, str(pki.ca_bundle)), master, postfix.delivered))
            print(f"store: {'sqlite' if url.startswith('sqlite') else 'postgresql'}; client: {args.client}; "
                  f"workers: {args.workers or 'one per core'}; cores: {os.cpu_count()}; "
                  f"postfix: {'Maildir via virtual(8), SASL PLAIN from sasldb' if postfix else 'not run'}")
            for target, pid, delivered in targets:  # warm-up: TLS session caches, pools, first logins
                run(target, Load("reuse", 1024, 5), senders[:max(counts)], args.client_processes, pid, delivered)
            cores = os.cpu_count() or 1
            for mode in modes:
                for size_name in sizes:
                    size = SIZES[size_name]
                    for count in counts:
                        scale = {"1k": 1, "100k": 10, "1m": 50}[size_name] * (5 if mode == "login" else 1)
                        total = max(count, args.messages // scale)
                        load = Load(mode, size, max(1, total // count), args.client)
                        print(f"{mode}, {size_name}, {count} session(s):")
                        for _ in range(args.rounds):
                            figures = {}
                            for target, pid, delivered in targets:
                                figures[target.name] = run(target, load, senders[:count], args.client_processes,
                                                           pid, delivered)
                                print(figures[target.name].line(target.name), flush=True)
                            if "postfix" in figures:
                                ours, theirs = figures["gateway"], figures["postfix"]
                                cpu_ratio = (ours.cpu / ours.messages) / (theirs.cpu / theirs.messages)
                                print(f"  ratio gateway/postfix: {ours.rate / theirs.rate:.2f}x msg/s, "
                                      f"CPU per message {cpu_ratio:.1f}x; with this client on these "
                                      f"{cores} cores, ceilings ~{ours.ceiling(cores):.0f} / "
                                      f"~{theirs.ceiling(cores):.0f} msg/s")
        finally:
            gateway.stop()
            if postfix is not None:
                postfix.stop()
                print(f"delivered by postfix: {postfix.delivered()}")
            shutil.rmtree(postfix_folder, ignore_errors=True)
        print(f"stored by the gateway (with warm-up): {store.count_messages()}")
        if args.commit_stats:
            print(commit_stats(gateway.log_lines))


if __name__ == "__main__":
    main()
