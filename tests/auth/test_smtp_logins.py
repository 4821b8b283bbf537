"""Logins over the real SMTP submission listener: throttled before hashing, logged with address and mailbox id.

A real gateway process, real TLS, smtplib clients.
"""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from support.mail import PRO
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

PARALLEL = 100
#: The support configuration's [limits] failed_logins.
FAILED_LOGINS = 3


def _memory(pid: int) -> int:
    """Proportional set size of the gateway and its hashing workers (shared pages counted once)."""
    process = psutil.Process(pid)
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except psutil.NoSuchProcess:
            pass
    return total


@pytest.fixture
def gateway(tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> Iterator[GatewayProcess]:
    """A gateway whose per-address connection limits let 100 clients of one address in at once."""
    process = GatewayProcess(tmp_path / "gw", pki, sqlite_url)
    text = process.config_path.read_text(encoding="utf-8")
    process.config_path.write_text(text.replace(
        "[limits]\n", "[limits]\nconnections_per_address = 500\nconnection_rate_per_address = 1000\n", 1),
        encoding="utf-8")
    store = Store(sqlite_url)
    store.add_mailbox(PRO, "PER")
    process.start()
    yield process
    process.stop()
    print("\n".join(process.log_lines[-40:]))


def _auth_plain(client: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {blob}")


def test_100_parallel_wrong_passwords_get_at_most_the_ceiling_of_535(gateway: GatewayProcess) -> None:
    assert gateway.process is not None
    with gateway.smtp() as warm:  # one login so the baseline includes a hash's working memory
        assert _auth_plain(warm, "nobody@pro.gateway.test", "x")[0] == 535
    with gateway.smtp() as clear:
        assert _auth_plain(clear, PRO, "secret-password")[0] == 235
    before = _memory(gateway.process.pid)
    barrier = threading.Barrier(PARALLEL, timeout=120)

    def guess(i: int) -> int:
        with gateway.smtp(timeout=120) as client:
            barrier.wait()
            return _auth_plain(client, PRO, f"guess {i}")[0]

    with ThreadPoolExecutor(PARALLEL) as pool:
        codes = list(pool.map(guess, range(PARALLEL)))
    after = _memory(gateway.process.pid)
    # Exactly the ceiling, however many gateway processes share the guesses (the warm-up's wrong name counts
    # for the address alone, far under its own ceiling).
    assert codes.count(535) == FAILED_LOGINS
    assert codes.count(454) == PARALLEL - codes.count(535)
    assert after - before < 100 * 1024 * 1024
    with gateway.smtp() as client:  # still throttled for the right password
        code, text = _auth_plain(client, PRO, "secret-password")
        assert code == 454 and text.startswith(b"4.7.0")


def test_login_lines_carry_client_and_mailbox_id_never_the_name(gateway: GatewayProcess) -> None:
    with gateway.smtp() as client:
        assert _auth_plain(client, PRO, "wrong")[0] == 535
    with gateway.smtp() as client:
        assert _auth_plain(client, PRO, "secret-password")[0] == 235
    gateway.wait_log('"outcome": "ok"')
    logins = [json.loads(line) for line in gateway.log_lines if '"event": "login"' in line]
    assert [e["outcome"] for e in logins] == ["invalid", "ok"]
    assert all(e["client"] == "127.0.0.1" and isinstance(e["mailbox_id"], int) for e in logins)
    assert not any(PRO in line for line in gateway.log_lines)
    assert _json_lines(gateway.log_lines) and not any("login_data" in line for line in gateway.log_lines)


def _json_lines(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines]


def _handshake_lines(gateway: GatewayProcess, start: int) -> list[dict[str, object]]:
    """The log lines since ``start`` about TLS, once a later connection proves earlier lines were written."""
    with gateway.smtp() as client:
        client.noop()
    events = _json_lines(gateway.log_lines[start:])  # raises if any line is not JSON
    return [e for e in events if "tls" in json.dumps(e).lower() or "ssl" in json.dumps(e).lower()]


def test_a_failed_starttls_handshake_leaves_exactly_one_json_line(gateway: GatewayProcess) -> None:
    start = len(gateway.log_lines)
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts no CA: the client aborts the handshake
    client = smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=10)
    client.ehlo("client.test")
    with pytest.raises(ssl.SSLError):
        client.starttls(context=untrusting)
    client.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _handshake_lines(gateway, start):
        time.sleep(0.05)
    assert len(_handshake_lines(gateway, start)) == 1


def test_a_failed_implicit_tls_handshake_leaves_at_most_one_json_line(gateway: GatewayProcess) -> None:
    start = len(gateway.log_lines)
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with socket.create_connection(("127.0.0.1", gateway.smtps_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            untrusting.wrap_socket(raw, server_hostname="mail.gateway.test")
    assert len(_handshake_lines(gateway, start)) <= 1
    assert _json_lines(gateway.log_lines)
