"""Durable acceptance: SIGKILL during a burst of concurrent submissions loses nothing that got a 250."""

from __future__ import annotations

import re
import smtplib
import threading
import time
from pathlib import Path

import pytest
from support.mail import message
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

SENDERS = [f"lgc{i}@pro.gateway.test" for i in range(10)]
RECIPIENT = "secretariat@pro.gateway.test"
TOKEN = re.compile(rb"Subject: crash (\S+)\r\n")


def tokens(raws: list[bytes]) -> list[bytes]:
    found = [TOKEN.search(raw) for raw in raws]
    assert all(found), "a stored message is not one this test sent"
    return [m.group(1) for m in found if m]


def test_sigkill_during_concurrent_submissions_keeps_every_acknowledged_message_once(
        tmp_path: Path, pki: PKIFiles, store_url: str):
    store = Store(store_url)
    for address in [*SENDERS, RECIPIENT]:
        store.add_mailbox(address)
    gateway = GatewayProcess(tmp_path / "gw", pki, store_url, log_level="warning").start()
    acknowledged: list[bytes] = []
    lock = threading.Lock()

    def submit(sender: str) -> None:
        try:
            with gateway.smtp(sender) as client:
                for i in range(100_000):
                    token = f"{sender}-{i}"
                    client.sendmail(sender, [RECIPIENT], message(sender, RECIPIENT, f"crash {token}"))
                    with lock:  # only after the 250: the gateway said the message is safe
                        acknowledged.append(token.encode())
        except (smtplib.SMTPException, OSError):
            return  # the gateway died under us: whatever was not acknowledged may or may not be stored

    threads = [threading.Thread(target=submit, args=(s,)) for s in SENDERS]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    gateway.kill()
    for thread in threads:
        thread.join(30)
    assert len(acknowledged) >= 300, "the burst did not get going"

    gateway.start()
    inbox = tokens(store.messages_in(RECIPIENT))
    assert len(inbox) == len(set(inbox)), "a message is stored twice"
    missing = set(acknowledged) - set(inbox)
    assert not missing, f"{len(missing)} acknowledged messages were lost"
    # Nothing half-stored: each stored message has both its INBOX and its Sent copy, and no other row exists.
    sent = [t for sender in SENDERS for t in tokens(store.messages_in(sender, "Sent"))]
    assert sorted(sent) == sorted(inbox)
    assert store.count_messages() == len(inbox)
    # And the gateway takes mail again on the same store.
    with gateway.smtp(SENDERS[0]) as client:
        client.sendmail(SENDERS[0], [RECIPIENT], message(SENDERS[0], RECIPIENT, "crash after-restart"))
    assert b"after-restart" in tokens(store.messages_in(RECIPIENT))
    gateway.stop()
