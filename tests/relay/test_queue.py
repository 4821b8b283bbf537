"""The outbound queue: the remote side down, retries, delivery once it returns, DSN on final failure, and no
loss when the sending gateway is killed (SIGKILL) with mail in the queue."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mail import message
from support.pki import PKIFiles
from support.relay import Pair, make_pair, queue_rows, wait_for

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

DR_A, DR_B = "dr.alpha@pro.a.test", "dr.beta@pro.b.test"


@pytest.fixture
def b_down(tmp_path: Path, pki: PKIFiles, two_stores: list[str]) -> Iterator[Pair]:
    """A running, B configured but not started (the remote operator is down)."""
    p = make_pair(tmp_path, pki, two_stores, start_b=False, lease=3)
    p.store_a.add_mailbox(DR_A)
    p.store_b.add_mailbox(DR_B)
    yield p
    p.stop()


def submit(pair: Pair, raw: bytes, to: str = DR_B) -> None:
    with pair.a.smtp(DR_A) as client:
        client.sendmail(DR_A, [to], raw)


def message_ids(raws: list[bytes]) -> list[str]:
    return [str(email.message_from_bytes(r, policy=email.policy.default)["Message-ID"]) for r in raws]


def test_remote_down_mail_is_queued_retried_then_delivered_once(b_down: Pair):
    raw = message(DR_A, DR_B, "Pendant la panne")
    submit(b_down, raw)  # accepted: it is durable in A's queue
    row = wait_for(lambda: [r for r in queue_rows(b_down.store_a) if r.attempts >= 2])[0]
    assert row.state == "queued" and "127.0.0.1" in (row.last_reply or "")
    # The second attempt's event may be committed just after its row is read: waited for, not read at once.
    deferred = wait_for(lambda: (lambda events: events if len(events) >= 2 else [])(
        b_down.store_a.events("outbound.deferred")))
    assert [e.detail["attempts"] for e in deferred[:2]] == [1, 2]
    assert {e.kind for e in b_down.store_a.events("outbound.")} == {"outbound.queued", "outbound.deferred"}

    b_down.b.start()
    wait_for(lambda: [r for r in queue_rows(b_down.store_a) if r.state == "sent"], timeout=30)
    assert [m.endswith(raw) for m in b_down.store_b.messages_in(DR_B)] == [True]
    assert b_down.store_a.messages_in(DR_A) == []  # no DSN: nobody asked for one on success


def test_permanent_failure_returns_a_dsn_and_is_not_retried(b_down: Pair):
    b_down.b.start()
    submit(b_down, message(DR_A, "nobody@pro.b.test"), to="nobody@pro.b.test")
    row = wait_for(lambda: [r for r in queue_rows(b_down.store_a) if r.state == "failed"])[0]
    assert row.attempts == 1 and (row.last_reply or "").startswith("550 5.1.1")
    report = email.message_from_bytes(wait_for(lambda: b_down.store_a.messages_in(DR_A))[0],
                                      policy=email.policy.default)
    assert report["Subject"] == "Undelivered mail returned to sender" and report["Auto-Submitted"] == "auto-replied"
    status = report.get_payload()[1].as_string()
    assert "Action: failed" in status and "Status: 5.1.1" in status and "Remote-MTA: dns; 127.0.0.1" in status
    returned = report.get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"  # RET=HDRS by default: no body returned


def test_sigkill_with_mail_in_the_queue_loses_nothing(b_down: Pair):
    sent = [message(DR_A, DR_B, f"Message {i}") for i in range(20)]
    with b_down.a.smtp(DR_A) as client:
        for raw in sent:
            client.sendmail(DR_A, [DR_B], raw)
    b_down.a.kill()  # SIGKILL: no chance to tidy up
    assert len(queue_rows(b_down.store_a)) == 20
    b_down.b.start()
    b_down.a.start()
    wait_for(lambda: all(r.state == "sent" for r in queue_rows(b_down.store_a)), timeout=60)
    assert sorted(message_ids(b_down.store_b.messages_in(DR_B))) == sorted(message_ids(sent))


def test_sigkill_during_delivery_loses_nothing(b_down: Pair):
    """Killed while delivering: claimed rows come due again when their lease lapses (at-least-once)."""
    b_down.b.start()
    sent = [message(DR_A, DR_B, f"Rafale {i}") for i in range(40)]
    with b_down.a.smtp(DR_A) as client:
        for raw in sent:
            client.sendmail(DR_A, [DR_B], raw)
    b_down.a.kill()
    b_down.a.start()
    wait_for(lambda: all(r.state == "sent" for r in queue_rows(b_down.store_a)), timeout=60)
    received = message_ids(b_down.store_b.messages_in(DR_B))
    assert set(received) == set(message_ids(sent))  # nothing lost; a message in flight may arrive twice
    assert len(received) - len(sent) <= 20


def test_final_failure_after_max_age_returns_a_dsn(tmp_path: Path, pki: PKIFiles):
    urls = [f"sqlite+aiosqlite:///{tmp_path / f'{n}.sqlite3'}" for n in ("a", "b")]
    pair = make_pair(tmp_path, pki, urls, start_b=False, max_age=1.5, retry="[0.3]")
    try:
        pair.store_a.add_mailbox(DR_A)
        submit(pair, message(DR_A, DR_B))
        row = wait_for(lambda: [r for r in queue_rows(pair.store_a) if r.state == "failed"], timeout=30)[0]
        assert row.attempts >= 2
        report = pair.store_a.messages_in(DR_A)[0]
        assert b"Action: failed" in report and b"Status: 4.4.7" in report
    finally:
        pair.stop()


def test_a_peer_whose_certificate_does_not_chain_to_the_trust_anchors_gets_nothing(b_down: Pair):
    """Outbound TLS verifies the next hop: B presenting a certificate from another CA is never sent the mail."""
    from gateway.pki import DevelopmentPKI

    rogue = DevelopmentPKI.create("Rogue").operator("mx.b.test", ("pro.b.test", "patient.b.test"))
    rogue.write(b_down.b.folder / "operator.crt", b_down.b.folder / "operator.key")
    b_down.b.start()
    submit(b_down, message(DR_A, DR_B))
    row = wait_for(lambda: [r for r in queue_rows(b_down.store_a) if r.attempts >= 2])[0]
    assert row.state == "queued" and "CERTIFICATE_VERIFY_FAILED" in (row.last_reply or "")
    assert b_down.store_b.messages_in(DR_B) == []
