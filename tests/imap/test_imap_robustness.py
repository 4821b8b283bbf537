"""IMAP under hostile load, against a real ``gateway serve`` process: bounded memory and latency.

These are bounds, not speed targets (generous slack for a loaded machine); the measured figures are printed.
Clients that stop reading a ``FETCH 1:* (BODY[])`` hold the producer at the transport's write buffer (RFC 9051
5.5), a store outage is a tagged ``NO [UNAVAILABLE]`` (RFC 5530), poison MIME is served as one flat part, and
garbage from one client never stalls the others.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imap.robust_support import MB, RawImap, rss, settle, timed_noop
from smtp.test_store_outage import Cluster
from sqlalchemy.ext.asyncio import AsyncSession
from support.mail import PRO, PRO2
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.smtp_session import with_settings
from support.store import Store

from gateway.store import mailstore

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def _gateway(folder: Path, pki: PKIFiles, url: str, **kwargs: object) -> GatewayProcess:
    """One worker process, so the process's RSS is the server's."""
    return with_settings(GatewayProcess(folder, pki, url, **kwargs), "gateway", workers=1)  # type: ignore[arg-type]


def _big_message(number: int, size: int = 100 * 1024) -> bytes:
    head = (f"From: {PRO2}\r\nTo: {PRO}\r\nSubject: Dossier {number}\r\nMessage-ID: <big.{number}@t>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    line = (f"{number:06d} " + "x" * 68 + "\r\n").encode()
    return head + line * (size // len(line))


def _fill_inbox(store: Store, mailbox: int, raws: list[bytes]) -> None:
    async def work(session: AsyncSession) -> None:
        folder = await mailstore.folder_id(session, mailbox, "INBOX")
        for raw in raws:
            message_id = await mailstore.store_message(session, mailstore.StoredMessage(
                raw=raw, mail_from=PRO2, rcpt_to=[PRO], sender_mailbox_id=None, message_id_header=None,
                subject=None, header_from=None))
            await mailstore.deliver(session, message_id, folder)
    store.run(work)


class NoopProbe:
    """A second client sending NOOPs in a thread; records each latency."""

    def __init__(self, gateway: GatewayProcess, user: str) -> None:
        self.client = RawImap(gateway)
        self.client.login(user)
        self.latencies: list[float] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.latencies.append(timed_noop(self.client))
            except BaseException as exc:  # reported by the test
                self.errors.append(exc)
                return
            self._stop.wait(0.05)

    def __enter__(self) -> NoopProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        start = len(self.latencies)
        while len(self.latencies) < start + count and time.monotonic() < deadline and not self.errors:
            time.sleep(0.02)
        assert not self.errors, self.errors
        assert len(self.latencies) >= start + count, "NOOPs not answered in time"


# --- 1. clients that stop reading a large FETCH -----------------------------------------------------------------
HANGING = 20


def test_fetch_everything_by_clients_that_stop_reading_keeps_server_memory_bounded_and_returned(
        tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    store = Store(store_url)
    _fill_inbox(store, store.add_mailbox(PRO), [_big_message(n) for n in range(300)])
    gateway = _gateway(tmp_path / "gw", pki, store_url).start()
    hanging: list[RawImap] = []
    try:
        assert gateway.process is not None
        pid = gateway.process.pid
        warm = RawImap(gateway)  # warm the code paths and caches once before the baseline
        warm.login(PRO)
        warm.command("SELECT INBOX")
        tagged, lines = warm.command("FETCH 1:3 (BODY.PEEK[])")
        assert b" OK" in tagged and len(lines) == 3
        warm.close()
        before = settle(pid, 0, 0)

        for _ in range(HANGING):
            client = RawImap(gateway, rcvbuf=32 * 1024)
            client.login(PRO)
            tagged, _ = client.command("EXAMINE INBOX")
            assert b" OK" in tagged
            client.send(b"f FETCH 1:* (BODY[])\r\n")  # and never read the answer
            hanging.append(client)

        with NoopProbe(gateway, PRO) as probe:
            peak = before
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:  # the producers run until their write buffers are full
                peak = max(peak, rss(pid))
                time.sleep(0.1)
            probe.wait_for(3)
            noop_max = max(probe.latencies)
        for client in hanging:
            client.close()
        hanging.clear()
        after = settle(pid, before + 20 * MB, 30)
        print(f"\nRSS before {before / MB:.1f} MB, peak while {HANGING} clients hang {peak / MB:.1f} MB "
              f"(+{(peak - before) / MB:.1f}), after they left {after / MB:.1f} MB; "
              f"NOOP max {noop_max * 1000:.0f} ms over {len(probe.latencies)}")
        assert peak - before < 60 * MB
        assert noop_max < 2.0
        assert after - before < 20 * MB
    finally:
        for client in hanging:
            client.close()
        gateway.stop()


def test_large_body_is_read_from_the_store_while_it_is_written(
        tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    store = Store(store_url)
    raw = _big_message(7, size=20 * MB)
    _fill_inbox(store, store.add_mailbox(PRO), [raw])
    gateway = _gateway(tmp_path / "gw", pki, store_url, message_size=32 * MB).start()
    hanging: list[RawImap] = []
    try:
        assert gateway.process is not None
        pid = gateway.process.pid
        reader = RawImap(gateway, timeout=60)
        reader.login(PRO)
        reader.command("EXAMINE INBOX")
        start = time.monotonic()
        tagged, lines = reader.command("FETCH 1 (BODY.PEEK[] BODY.PEEK[]<1000.3000000>)")
        elapsed = time.monotonic() - start
        assert b" OK" in tagged
        assert lines[0] == (b"* 1 FETCH (BODY[] {%d}\r\n" % len(raw) + raw
                            + b" BODY[]<1000> {3000000}\r\n" + raw[1000:3001000] + b")")
        before = settle(pid, 0, 0)
        for _ in range(5):
            client = RawImap(gateway, rcvbuf=32 * 1024)
            client.login(PRO)
            client.command("EXAMINE INBOX")
            client.send(b"f FETCH 1 (BODY.PEEK[])\r\n")  # and never read the answer
            hanging.append(client)
        peak = before
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            peak = max(peak, rss(pid))
            time.sleep(0.1)
        noop = timed_noop(reader)
        grown = (peak - before) / MB
        print(f"\n20 MiB BODY[] read in {elapsed * 1000:.0f} ms; 5 clients hanging on it: RSS +{grown:.1f} MB; "
              f"NOOP {noop * 1000:.1f} ms")
        if not store_url.startswith("sqlite"):  # SQLite reads a section whole (substr loads the whole BLOB)
            assert peak - before < 20 * MB  # a whole body per client would be 100 MB
        assert noop < 2.0
    finally:
        for client in hanging:
            client.close()
        gateway.stop()


# --- 2. the database stops under APPEND --------------------------------------------------------------------------
@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.remove()


def _append(client: RawImap, raw: bytes) -> bytes:
    client.counter += 1
    tag = b"a%d" % client.counter
    client.send(tag + b" APPEND INBOX (\\Seen) {%d+}\r\n" % len(raw) + raw + b"\r\n")
    return client.until(tag)[0]


def _unavailable(tagged: bytes) -> bool:
    text = tagged.lower()
    return (b" NO [UNAVAILABLE]" in tagged
            and not any(word in text for word in (b"sql", b"asyncpg", b"traceback", b"exception", b"connection")))


def test_store_stopped_under_append_answers_no_unavailable_and_service_resumes(
        tmp_path: Path, pki: PKIFiles, cluster: Cluster) -> None:
    store = Store(cluster.url)
    store.add_mailbox(PRO)
    store.add_mailbox(PRO2)
    gateway = _gateway(tmp_path / "gw", pki, cluster.url).start()
    try:
        writer, reader, newcomer = RawImap(gateway), RawImap(gateway), RawImap(gateway)
        writer.login(PRO)
        assert b" OK" in writer.command("SELECT INBOX")[0]
        reader.login(PRO)

        cluster.stop()

        first = (f"From: {PRO}\r\nTo: {PRO}\r\nSubject: Brouillon\r\n\r\nPendant la panne.\r\n").encode()
        tagged = _append(writer, first)
        assert _unavailable(tagged), tagged
        tagged, _ = newcomer.command(f'LOGIN "{PRO2}" "secret-password"')  # never logged in: not cached
        assert _unavailable(tagged), tagged
        tagged, _ = reader.command("EXAMINE INBOX")
        assert _unavailable(tagged), tagged
        for client in (writer, reader, newcomer):  # still in step, never a BYE
            assert b" OK" in client.command("NOOP")[0]

        cluster.start()
        second = (f"From: {PRO}\r\nTo: {PRO}\r\nSubject: Reprise\r\n\r\nApres la panne.\r\n").encode()
        deadline = time.monotonic() + 30
        tagged = _append(writer, second)
        while b" OK" not in tagged and time.monotonic() < deadline:  # the pool reconnects at the next use
            tagged = _append(writer, second)
        assert b" OK [APPENDUID" in tagged, tagged
        stored = store.messages_in(PRO)
        assert len(stored) == 1 and stored[0].endswith(b"Apres la panne.\r\n")
        assert b" OK" in newcomer.command(f'LOGIN "{PRO2}" "secret-password"')[0]
        assert b" OK" in reader.command("EXAMINE INBOX")[0]
        assert not any("Traceback" in line for line in gateway.log_lines if not line.startswith("{"))
        events = [json.loads(line) for line in gateway.log_lines if line.startswith("{")]
        print("\n" + "\n".join(json.dumps(e) for e in events if e.get("event", "").startswith("imap_")))
        assert not [e for e in events if e.get("event") == "imap_command_failed"]  # each outage was recognised
        refused = {e["command"] for e in events if e.get("event") == "imap_command_refused"
                   and e.get("code") == "UNAVAILABLE"}
        assert {"APPEND", "LOGIN", "SELECT"} <= refused  # EXAMINE is the read-only SELECT
        for client in (writer, reader, newcomer):
            client.close()
    finally:
        gateway.stop()


# --- 3. poison messages -------------------------------------------------------------------------------------------
def _nested(depth: int) -> bytes:
    head = f"From: {PRO}\r\nTo: {PRO2}\r\nSubject: Profond\r\nMIME-Version: 1.0\r\n".encode()
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (n, n)
                       for n in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nfond\r\n" + closing


def _siblings(count: int) -> bytes:
    head = (f"From: {PRO}\r\nTo: {PRO2}\r\nSubject: Large\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"s\"\r\n\r\n").encode()
    parts = b"".join(b"--s\r\nContent-Type: text/plain\r\n\r\npartie %05d\r\n" % n for n in range(count))
    return head + parts + b"--s--\r\n"


ITEMS = ("FLAGS", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[]", "BODY.PEEK[1]", "BODY.PEEK[1.MIME]",
         "BINARY.PEEK[1]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]")


def test_poison_mime_is_served_flat_promptly_without_stalling_others(
        tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    store = Store(store_url)
    store.add_mailbox(PRO)
    store.add_mailbox(PRO2)
    deep, wide = _nested(10_000), _siblings(50_000)
    print(f"\nnested message {len(deep) / 1024:.0f} KiB, sibling parts message {len(wide) / MB:.2f} MiB")
    gateway = _gateway(tmp_path / "gw", pki, store_url, message_size=8 * MB).start()
    try:
        assert gateway.process is not None
        pid = gateway.process.pid
        with gateway.smtp(PRO) as client:
            client.sendmail(PRO, [PRO2], deep)
            client.sendmail(PRO, [PRO2], wide)
        stored = store.messages_in(PRO2)
        assert len(stored) == 2
        flat = store.events("imap.anatomy.flat")
        print("refusal events: " + "; ".join(f"{e.kind} {e.detail}" for e in flat))
        assert len(flat) == 2
        assert [e.detail["limit"] for e in flat] == ["MIME nesting deeper than 32", "more than 1000 MIME parts"]

        reader = RawImap(gateway)
        reader.login(PRO2)
        assert b" OK" in reader.command("EXAMINE INBOX")[0]
        reader.command("FETCH 1 (FLAGS)")
        before = settle(pid, 0, 0)
        peak = before
        times: dict[str, float] = {}
        with NoopProbe(gateway, PRO) as probe:
            for number, raw in ((1, stored[0]), (2, stored[1])):
                for item in ITEMS:
                    start = time.monotonic()
                    tagged, lines = reader.command(f"FETCH {number} ({item})")
                    elapsed = time.monotonic() - start
                    times[f"{number} {item}"] = elapsed
                    peak = max(peak, rss(pid))
                    assert b" OK" in tagged, (item, tagged)
                    answer = b"\r\n".join(lines)
                    if item == "RFC822.SIZE":
                        assert b"RFC822.SIZE %d)" % len(raw) in answer
                    elif item == "BODY.PEEK[]":
                        assert answer.endswith(b"BODY[] {%d}\r\n" % len(raw) + raw + b")")
                    elif item == "BODYSTRUCTURE":
                        assert b'"APPLICATION" "OCTET-STREAM"' in answer.upper()
            probe.wait_for(2)
            noops = list(probe.latencies)
        reader.close()
        print("FETCH times (ms): " + ", ".join(f"{k} {v * 1000:.1f}" for k, v in times.items()))
        print(f"NOOP max {max(noops) * 1000:.1f} ms over {len(noops)}; RSS {before / MB:.1f} MB, "
              f"peak +{(peak - before) / MB:.1f} MB")
        assert max(times.values()) < 1.0
        assert max(noops) < 1.0
        assert peak - before < 20 * MB
    finally:
        gateway.stop()


# --- 4. garbage ------------------------------------------------------------------------------------------------------
def _garbage(gateway: GatewayProcess, payload: bytes, login: bool, sent: list[int], cut: list[bytes]) -> None:
    """Keep sending ``payload`` until the server closes the connection (then its first bytes go to ``cut``)."""
    try:
        client = RawImap(gateway, timeout=20)
        if login:
            client.login(PRO)
        for _ in range(200):
            client.send(payload)
            sent.append(len(payload))
    except (OSError, ConnectionError):
        cut.append(payload[:10])


def test_garbage_from_clients_does_not_stall_others(tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.add_mailbox(PRO)
    gateway = _gateway(tmp_path / "gw", pki, sqlite_url).start()
    try:
        silent = RawImap(gateway)  # a literal announced and never sent
        silent.login(PRO)
        silent.send(b"s1 APPEND INBOX {500000}\r\n")
        assert silent.line().startswith(b"+")
        silent_unauth = RawImap(gateway)
        silent_unauth.send(b"s2 LOGIN {100}\r\n")
        sent: list[int] = []
        cut: list[bytes] = []
        payloads = [(os.urandom(256 * 1024), False), (os.urandom(256 * 1024), True),
                    (b"a NOOP " + b"x" * (4 * MB) + b"\r\n", True), (b"b " + b"(" * (1 * MB), False),
                    (b"c FETCH 1:* (" + b"BODY[1." * 100_000 + b"\r\n", True)]
        threads = [threading.Thread(target=_garbage, args=(gateway, data, login, sent, cut), daemon=True)
                   for data, login in payloads]
        with NoopProbe(gateway, PRO) as probe:
            for thread in threads:
                thread.start()
            probe.wait_for(10)
            for thread in threads:
                thread.join(60)
            probe.wait_for(3)
            latencies = list(probe.latencies)
        print(f"\nNOOP max {max(latencies) * 1000:.1f} ms over {len(latencies)} while {sum(sent) / MB:.0f} MiB of "
              "garbage arrived")
        assert max(latencies) < 1.0
        assert not any(thread.is_alive() for thread in threads)
        assert len(cut) == len(payloads), cut  # every garbage sender was cut off
        for client in (silent, silent_unauth):
            client.close()
        with socket.create_connection(("127.0.0.1", gateway.imaps_port), timeout=5):
            pass
    finally:
        gateway.stop()
