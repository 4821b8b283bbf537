"""Implicit TLS (port 465 style, RFC 8314 3.3): a failed handshake is one JSON event; a good one serves SMTP.

A real gateway process, real TLS with the test PKI, raw sockets and smtplib.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

import pytest
from support.mail import PRO
from support.process import GatewayProcess
from support.store import Store


def _tls_events(gateway: GatewayProcess, start: int) -> list[dict[str, Any]]:
    """TLS events logged since ``start``; every line must be JSON (json.loads raises otherwise)."""
    events = [json.loads(line) for line in list(gateway.log_lines)[start:]]
    return [e for e in events if e.get("event") == "smtp.tls" or "ssl" in json.dumps(e).lower()]


def _settle(gateway: GatewayProcess) -> None:
    """A full later session proves that what the failed one caused has been logged."""
    with gateway.smtp(implicit=True) as client:
        client.noop()


def test_a_failed_implicit_tls_handshake_leaves_exactly_one_json_line(gateway: GatewayProcess) -> None:
    start = len(gateway.log_lines)
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts no CA: the client aborts the handshake
    with socket.create_connection(("127.0.0.1", gateway.smtps_port), timeout=60) as raw:
        with pytest.raises(ssl.SSLError):
            untrusting.wrap_socket(raw, server_hostname="mail.gateway.test")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _tls_events(gateway, start):
        time.sleep(0.05)
    _settle(gateway)
    events = _tls_events(gateway, start)
    assert len(events) == 1, events
    assert events[0]["event"] == "smtp.tls" and events[0]["outcome"] == "failed"
    assert events[0]["client"] == "127.0.0.1" and events[0]["listener"] == "submissions"


def test_plain_text_on_the_implicit_tls_port_is_one_json_line_and_a_close(gateway: GatewayProcess) -> None:
    start = len(gateway.log_lines)
    with socket.create_connection(("127.0.0.1", gateway.smtps_port), timeout=60) as raw:
        raw.sendall(b"EHLO client.test\r\n")
        raw.settimeout(60)
        try:
            rest = raw.recv(4096)
        except ConnectionResetError:
            rest = b""
        assert not rest.startswith(b"220")  # no SMTP over a connection that never became TLS
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _tls_events(gateway, start):
        time.sleep(0.05)
    _settle(gateway)
    assert len(_tls_events(gateway, start)) == 1


def test_implicit_tls_session_submits_after_our_handshake(gateway: GatewayProcess, accounts: Store) -> None:
    with gateway.smtp(PRO, implicit=True) as client:
        assert client.has_extn("auth") and not client.has_extn("starttls")
        refused = client.sendmail(PRO, [PRO], f"From: {PRO}\r\nTo: {PRO}\r\nSubject: tls\r\n\r\nbody\r\n")
        assert refused == {}
    assert any(b"Subject: tls" in m for m in accounts.messages_in(PRO))


def test_an_implicit_tls_client_that_hangs_up_mid_handshake_is_one_line(gateway: GatewayProcess) -> None:
    start = len(gateway.log_lines)
    with socket.create_connection(("127.0.0.1", gateway.smtps_port), timeout=60) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05\x01\x00")  # the start of a ClientHello, then nothing
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _tls_events(gateway, start):
        time.sleep(0.05)
    _settle(gateway)
    assert len(_tls_events(gateway, start)) == 1
