"""Memory: nothing is kept per SMTP session. Rounds of sessions, some abandoned in the middle of DATA, must
leave the serving process's RSS flat once the first two rounds have warmed it up (pooled connections and their
caches, modules and timers first used a few seconds after the start: up to 12 MB here, once)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil
import pytest
from support.mail import PRO, PRO2, message
from support.process import GatewayProcess
from support.smtp_session import RawSession

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

ROUNDS, SESSIONS, ABANDON_EVERY, CONCURRENCY = 6, 100, 7, 6
#: Messages of 200 kB: a copy kept per session would add about 20 MB per round (80 MB over the four measured).
BODY_LINES = 2600
#: Growth allowed between the end of the second round and the end of the last (allocator noise, caches).
GROWTH_BOUND_MB = 15.0


def one_session(gateway: GatewayProcess, raw: bytes, abandon: bool) -> None:
    session = RawSession(gateway)
    try:
        session.login(PRO)
        session.command(f"MAIL FROM:<{PRO}>")
        session.command(f"RCPT TO:<{PRO2}>")
        session.command("DATA")
        if abandon:
            session.send(raw[: len(raw) // 3])  # and go away in the middle of the message
            return
        session.send(raw + b".\r\n")
        session.reply()
        session.command("QUIT")
    except (AssertionError, ConnectionError, OSError):
        return  # a refused login under load is not what this test measures
    finally:
        session.close()


def test_rss_stays_flat_over_rounds_of_sessions_abandoned_in_data(limited_gateway: Callable[..., GatewayProcess]):
    gateway = limited_gateway(message_size=4_000_000, messages_per_minute=100_000,
                              connection_rate_per_address=100_000)
    assert gateway.process is not None
    process = psutil.Process(gateway.process.pid)
    raw = message(PRO, PRO2, body=("x" * 76 + "\r\n") * BODY_LINES)
    one_session(gateway, raw, False)  # the first login fills the credential cache
    sizes = []
    for _ in range(ROUNDS):
        for start in range(0, SESSIONS, CONCURRENCY):
            threads = [threading.Thread(target=one_session, args=(gateway, raw, i % ABANDON_EVERY == 0))
                       for i in range(start, min(start + CONCURRENCY, SESSIONS))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        sizes.append(process.memory_info().rss / 1e6)
    print("RSS per round (MB):", [round(s, 1) for s in sizes])
    assert sizes[-1] - sizes[1] < GROWTH_BOUND_MB, sizes
