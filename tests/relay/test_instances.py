"""Two instances of operator A share one store and one outbound queue: every message leaves exactly once
(claims use SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite serialises writers)."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from pathlib import Path

import pytest
from support.mail import message
from support.pki import PKIFiles
from support.relay import OperatorProcess, free_port, make_pair, queue_rows, wait_for

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def test_two_instances_share_the_queue_and_deliver_each_message_once(tmp_path: Path, pki: PKIFiles,
                                                                     two_stores: list[str]):
    pair = make_pair(tmp_path, pki, two_stores, concurrency=5)
    second = OperatorProcess(tmp_path / "a2", pki, two_stores[0], "a", relay_port=free_port(),
                             whitelist=pair.whitelist, routes={"b": pair.b.relay_port}, concurrency=5)
    try:
        second.start()
        dr_a, dr_b = pair.a.address("dr.alpha"), pair.b.address("dr.beta")
        pair.store_a.add_mailbox(dr_a)
        pair.store_b.add_mailbox(dr_b)
        sent = [message(dr_a, dr_b, f"Message {i}") for i in range(60)]
        for instance, batch in ((pair.a, sent[::2]), (second, sent[1::2])):
            with instance.smtp(dr_a) as client:
                for raw in batch:
                    client.sendmail(dr_a, [dr_b], raw)
        wait_for(lambda: all(r.state == "sent" for r in queue_rows(pair.store_a)), timeout=60)
        ids = Counter(str(email.message_from_bytes(r, policy=email.policy.default)["Message-ID"])
                      for r in pair.store_b.messages_in(dr_b))
        assert len(ids) == 60 and set(ids.values()) == {1}
        assert all(r.attempts == 1 for r in queue_rows(pair.store_a))
    finally:
        second.stop()
        pair.stop()
