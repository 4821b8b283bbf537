"""Mail between two gateways arrives once: the relay answers 250 to a message it already accepted from the same
operator (same Message-ID and envelope, within ``relay.dedupe_window``) without storing it again, and the
outbound worker records each answer before its session carries the next message, so an instance killed while
delivering leaves nothing doubled at the receiving gateway."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from support.mail import message
from support.pki import PKIFiles
from support.relay import OperatorProcess, free_port, make_pair, queue_rows, wait_for, write_whitelist
from support.store import Store

from gateway.store.events import now
from gateway.store.models import OutboundRecipient, RelayReceipt

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

DR_A = "dr.alpha@pro.a.test"
DR_B = "dr.beta@pro.b.test"
DR_B2 = "dr.gamma@pro.b.test"


@pytest.fixture
def b(tmp_path: Path, pki: PKIFiles) -> Iterator[OperatorProcess]:
    """Operator B alone, with a short dedupe window given in its configuration."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}"
    process = OperatorProcess(tmp_path / "b", pki, url, "b", relay_port=free_port(),
                              whitelist=write_whitelist(tmp_path), routes={"a": free_port()})
    process.config_path.write_text(process.config_path.read_text().replace(
        "[whitelist]", "dedupe_window = 3600\n\n[whitelist]"), encoding="utf-8")
    store = Store(url)
    store.add_mailbox(DR_B)
    store.add_mailbox(DR_B2)
    process.start()
    yield process
    process.stop()
    print("\n".join(process.log_lines[-30:]))


def _message_ids(store: Store, address: str) -> Counter[str]:
    return Counter(str(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"])
                   for raw in store.messages_in(address))


def test_relay_same_message_id_and_envelope_from_the_same_operator_is_answered_250_and_stored_once(
        b: OperatorProcess, pki: PKIFiles, tmp_path: Path):
    a_certificate = pki.pki.operator("mx.a.test", ("pro.a.test", "patient.a.test"))
    raw = message(DR_A, DR_B, "Compte rendu")
    with b.relay_client(a_certificate, tmp_path) as client:
        assert client.sendmail(DR_A, [DR_B], raw) == {}
        code, text = client.docmd("NOOP")
        assert code == 250
    with b.relay_client(a_certificate, tmp_path) as client:  # A died before recording our 250: it sends again
        client.mail(DR_A)
        client.rcpt(DR_B)
        code, text = client.data(raw)
    assert (code, text) == (250, b"2.0.0 Message accepted (already received)")
    store = Store(b.store_url)
    assert list(_message_ids(store, DR_B).values()) == [1]
    [event] = store.events("relay.duplicate")
    assert event.outcome == "accepted" and event.detail["peer"] == "mx.a.test"


def test_relay_same_message_id_with_another_envelope_or_without_message_id_is_stored_again(
        b: OperatorProcess, pki: PKIFiles, tmp_path: Path):
    a_certificate = pki.pki.operator("mx.a.test", ("pro.a.test", "patient.a.test"))
    raw = message(DR_A, DR_B, "Compte rendu")
    bare = b"From: " + DR_A.encode() + b"\r\nTo: " + DR_B.encode() + b"\r\nSubject: sans identifiant\r\n\r\nTexte.\r\n"
    with b.relay_client(a_certificate, tmp_path) as client:
        assert client.sendmail(DR_A, [DR_B], raw) == {}
        assert client.sendmail(DR_A, [DR_B, DR_B2], raw) == {}  # other recipients: another envelope
        assert client.sendmail(DR_A, [DR_B], bare) == {}
        assert client.sendmail(DR_A, [DR_B], bare) == {}  # no Message-ID: nothing to tell them apart by
    store = Store(b.store_url)
    assert len(store.messages_in(DR_B)) == 4 and len(store.messages_in(DR_B2)) == 1
    assert store.events("relay.duplicate") == []


def test_relay_kill_9_of_one_of_two_instances_while_delivering_stores_no_duplicate_at_the_remote(
        tmp_path: Path, pki: PKIFiles, two_stores: list[str]):
    count = 100  # under the submission ceiling of 120 messages a minute per account
    pair = make_pair(tmp_path, pki, two_stores, concurrency=5, lease=3)
    second = OperatorProcess(tmp_path / "a2", pki, two_stores[0], "a", relay_port=free_port(),
                             whitelist=pair.whitelist, routes={"b": pair.b.relay_port}, concurrency=5, lease=3)
    accepted: list[int] = []
    try:
        dr_a, dr_b = pair.a.address("dr.alpha"), pair.b.address("dr.beta")
        pair.store_a.add_mailbox(dr_a)
        pair.store_b.add_mailbox(dr_b)
        second.config_path.write_text(second.config_path.read_text().replace(  # one process: kill -9 ends it all
            "[gateway]\n", "[gateway]\nworkers = 1\n", 1), encoding="utf-8")
        second.start()

        def submit() -> None:  # through the second instance: its own deliverer wakes at once for each message
            try:
                with second.smtp(dr_a) as client:
                    for i in range(count):
                        client.sendmail(dr_a, [dr_b], message(dr_a, dr_b, f"Message {i}"))
                        accepted.append(i)
            except (smtplib.SMTPException, OSError):
                pass  # the instance was killed under this session

        sender = threading.Thread(target=submit)
        sender.start()
        second.wait_log("outbound.delivered", timeout=60)  # the second instance is delivering ...
        second.kill()  # ... and dies at once, with answers maybe unrecorded
        sender.join(timeout=60)
        assert not sender.is_alive() and accepted
        wait_for(lambda: all(r.state == "sent" for r in queue_rows(pair.store_a)), timeout=120)  # A takes over
        ids = _message_ids(pair.store_b, dr_b)
        # every message answered 250 arrives, once; the one whose 250 the kill may have cut arrives once too
        assert len(accepted) <= len(ids) <= len(accepted) + 1 and set(ids.values()) == {1}
        resent = [r for r in queue_rows(pair.store_a) if r.attempts > 1]
        duplicates = pair.store_b.events("relay.duplicate")
        assert len(duplicates) <= len(resent) <= 5  # at most what was in flight on each of its 5 sessions
    finally:
        second.stop()
        pair.stop()


def test_relay_same_message_after_the_dedupe_window_is_stored_again_and_old_receipts_are_dropped(
        b: OperatorProcess, pki: PKIFiles, tmp_path: Path):
    a_certificate = pki.pki.operator("mx.a.test", ("pro.a.test", "patient.a.test"))
    raw, other = message(DR_A, DR_B, "Compte rendu"), message(DR_A, DR_B, "Autre")
    store = Store(b.store_url)
    with b.relay_client(a_certificate, tmp_path) as client:
        assert client.sendmail(DR_A, [DR_B], raw) == {}

    async def age(session: AsyncSession) -> None:  # the receipt is older than the hour B keeps them
        await session.execute(update(RelayReceipt).values(received_at=now() - timedelta(hours=2)))

    async def receipts(session: AsyncSession) -> int:
        return len((await session.execute(select(RelayReceipt.id))).all())
    store.run(age)
    b.restart()  # a fresh process prunes at its first relayed message
    with b.relay_client(a_certificate, tmp_path) as client:
        assert client.sendmail(DR_A, [DR_B], other) == {}
    assert store.run(receipts) == 1  # the old one dropped, the new one kept
    with b.relay_client(a_certificate, tmp_path) as client:
        assert client.sendmail(DR_A, [DR_B], raw) == {}
    assert sorted(_message_ids(store, DR_B).values()) == [1, 2] and store.events("relay.duplicate") == []


def test_relay_a_sender_that_lost_the_answer_sends_again_and_the_remote_stores_once(
        tmp_path: Path, pki: PKIFiles, two_stores: list[str]):
    pair = make_pair(tmp_path, pki, two_stores, concurrency=2)
    try:
        dr_a, dr_b = pair.a.address("dr.alpha"), pair.b.address("dr.beta")
        pair.store_a.add_mailbox(dr_a)
        pair.store_b.add_mailbox(dr_b)
        with pair.a.smtp(dr_a) as client:
            client.sendmail(dr_a, [dr_b], message(dr_a, dr_b, "Compte rendu"))
        wait_for(lambda: [r for r in queue_rows(pair.store_a) if r.state == "sent"], timeout=60)

        async def forget(session: AsyncSession) -> None:  # what an instance killed after B's 250 leaves behind
            await session.execute(update(OutboundRecipient).values(state="queued", next_attempt_at=now(),
                                                                   finished_at=None))
        pair.store_a.run(forget)
        wait_for(lambda: pair.store_b.events("relay.duplicate"), timeout=60)
        wait_for(lambda: all(r.state == "sent" for r in queue_rows(pair.store_a)), timeout=60)
        assert list(_message_ids(pair.store_b, dr_b).values()) == [1]
        assert [r.last_reply for r in queue_rows(pair.store_a)] == ["250 2.0.0 Message accepted (already received)"]
    finally:
        pair.stop()


class CountingSink:
    """A plain SMTP server (not a gateway: no dedupe of its own) counting each Message-ID it accepts."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        await asyncio.sleep(0.05)  # slower than submission: the queue builds up and every connection is busy
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received[str(parsed["Message-ID"])] += 1
        return "250 2.0.0 Stored"


def test_relay_kill_9_while_delivering_to_a_plain_smtp_server_resends_at_most_one_per_connection(
        tmp_path: Path, pki: PKIFiles):
    """The outbound worker records each answer before its connection carries the next message: killed at any
    moment, it re-sends at most the message in flight on each of its connections."""
    from aiosmtpd.controller import Controller

    count, connections = 60, 5
    sink = CountingSink()
    certificate = pki.pki.operator("mx.b.test", ("pro.b.test", "patient.b.test"))
    certificate.write(tmp_path / "sink.crt", tmp_path / "sink.key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tmp_path / "sink.crt"), str(tmp_path / "sink.key"))
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    controller.start()
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite3'}"
    a = OperatorProcess(tmp_path / "a", pki, url, "a", relay_port=free_port(), whitelist=write_whitelist(tmp_path),
                        routes={"b": port}, concurrency=connections, lease=3)
    a.config_path.write_text(a.config_path.read_text().replace(  # one process: kill -9 ends it all
        "[gateway]\n", "[gateway]\nworkers = 1\n", 1), encoding="utf-8")
    store = Store(url)
    accepted: list[str] = []
    try:
        store.run(_migrate)
        dr_a, dr_b = a.address("dr.alpha"), "dr.beta@pro.b.test"
        store.add_mailbox(dr_a)
        a.start()

        def submit() -> None:
            try:
                with a.smtp(dr_a) as client:
                    for i in range(count):
                        raw = message(dr_a, dr_b, f"Message {i}")
                        client.sendmail(dr_a, [dr_b], raw)
                        accepted.append(str(email.message_from_bytes(raw)["Message-ID"]))
            except (smtplib.SMTPException, OSError):
                pass  # the instance was killed under this session

        sender = threading.Thread(target=submit)
        sender.start()
        wait_for(lambda: sum(sink.received.values()) >= 15, timeout=60)  # delivering on several connections ...
        a.kill()  # ... and killed at once
        sender.join(timeout=60)
        assert not sender.is_alive() and accepted
        a.start()
        wait_for(lambda: all(r.state == "sent" for r in queue_rows(store)), timeout=120)
    finally:
        a.stop()
        controller.stop()
    assert set(accepted) <= set(sink.received)  # nothing acknowledged is lost
    resent = sum(n - 1 for n in sink.received.values())
    assert resent <= connections and all(n <= 2 for n in sink.received.values())


async def _migrate(_session: object) -> None:
    """Nothing: opening a session migrates the store before the daemon starts, as an operator would."""
