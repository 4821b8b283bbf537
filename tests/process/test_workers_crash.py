"""kill -9 of one worker while clients submit: nothing acknowledged is lost, the other serves, a new one starts."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import threading
from collections.abc import Callable

import pytest
from support.mail import PRO2, message
from support.process import GatewayProcess
from support.store import Store
from support.workers import PASSWORD, start, wait_until, worker_pids

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

TOKEN = re.compile(rb"Subject: kill9 (\S+)\r\n")
SENDERS = [f"lgc{i}@pro.gateway.test" for i in range(6)]


def test_sigkill_of_one_worker_loses_no_acknowledged_message_and_the_worker_is_replaced(
        make_daemon: Callable[..., GatewayProcess], store: Store):
    for sender in SENDERS:
        store.add_mailbox(sender, "APP", PASSWORD)
    daemon = start(make_daemon())
    pids = worker_pids(daemon)
    acknowledged: list[bytes] = []
    lock = threading.Lock()
    done = threading.Event()

    def submit(sender: str) -> None:
        i = 0
        while not done.is_set():  # a connection cut by the kill is opened again (on the surviving worker)
            try:
                with daemon.smtp(sender, PASSWORD, timeout=10) as client:
                    while not done.is_set():
                        token = f"{sender}-{i}"
                        i += 1
                        client.sendmail(sender, [PRO2], message(sender, PRO2, f"kill9 {token}"))
                        with lock:
                            acknowledged.append(token.encode())
            except (smtplib.SMTPException, OSError):
                continue

    threads = [threading.Thread(target=submit, args=(s,)) for s in SENDERS]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 200, 60, "the burst to get going")
        os.kill(pids[1], signal.SIGKILL)
        killed_at = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= killed_at + 100, 60, "the other worker to keep serving")
        new_pid = wait_until(lambda: worker_pids(daemon)[1] != pids[1] and worker_pids(daemon)[1], 30,
                             "a new worker 1")
        wait_until(lambda: [e for e in daemon.log_lines if '"worker_ready"' in e and str(new_pid) in e], 30,
                   "the new worker to listen")
        assert worker_pids(daemon)[0] == pids[0], "the surviving worker was restarted too"
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    stored = [m.group(1) for raw in store.messages_in(PRO2) if (m := TOKEN.search(raw))]
    assert len(stored) == len(set(stored)), "a message is stored twice"
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged messages were lost"
    assert daemon.process is not None and daemon.process.poll() is None
    daemon.stop()
    assert daemon.process.returncode == 0
