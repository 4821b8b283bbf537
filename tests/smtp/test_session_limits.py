"""Limits inside one SMTP session (RFC 5321 4.5.3.2 and what abusive clients need): idle and data-rate timeouts
answered 421 4.4.2, 421 4.7.0 after too many errors or refused commands before STARTTLS, refusal rows bounded,
SASL EXTERNAL offered only with a client certificate, and the anvil's connection and message limits."""

from __future__ import annotations

import select
import smtplib
import socket
import time
from collections.abc import Callable

import pytest
from support.mail import PRO, PRO2, message
from support.process import GatewayProcess
from support.smtp_session import RawSession, well_formed
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def test_idle_session_gets_421_4_4_2_before_close(limited_gateway: Callable[..., GatewayProcess]):
    gateway = limited_gateway(smtp_idle_timeout=1)
    session = RawSession(gateway)
    assert session.greeting[0].startswith(b"220 ")
    assert session.reply()[0].startswith(b"421 4.4.2")  # nothing sent: the idle timer speaks, then closes
    assert session.closed()


def test_idle_inside_data_gets_421_4_4_2(limited_gateway: Callable[..., GatewayProcess]):
    gateway = limited_gateway(smtp_idle_timeout=1)
    session = RawSession(gateway)
    session.login(PRO)
    session.command(f"MAIL FROM:<{PRO}>")
    session.command(f"RCPT TO:<{PRO2}>")
    assert session.command("DATA")[0].startswith(b"354 ")
    session.send(b"From: " + PRO.encode() + b"\r\n")
    assert session.reply()[0].startswith(b"421 4.4.2")
    assert session.closed()


def test_data_slower_than_the_minimum_rate_gets_421_4_4_2(limited_gateway: Callable[..., GatewayProcess]):
    """Each byte arrives well within the idle time, but the whole message may take only size/rate + idle."""
    gateway = limited_gateway(message_size=2000, smtp_min_data_rate=1000, smtp_idle_timeout=2)
    session = RawSession(gateway)
    session.login(PRO)
    session.command(f"MAIL FROM:<{PRO}>")
    session.command(f"RCPT TO:<{PRO2}>")
    assert session.command("DATA")[0].startswith(b"354 ")
    started = time.monotonic()
    while time.monotonic() - started < 30:
        session.send(b"x")
        readable, _, _ = select.select([session.sock], [], [], 0.3)  # a slow client: one byte per 0.3 s
        if readable:
            break
    reply = session.reply()
    assert reply[0].startswith(b"421 4.4.2") and b"slowly" in reply[0]
    assert 3.5 <= time.monotonic() - started < 15  # 2000/1000 + 2 seconds allowed, not the idle time alone
    assert session.closed()
    assert Store(gateway.store_url).count_messages() == 0


def test_too_many_errors_in_one_session_421_4_7_0(limited_gateway: Callable[..., GatewayProcess]):
    gateway = limited_gateway(smtp_max_errors=5)
    session = RawSession(gateway)
    session.login(PRO)
    for _ in range(4):
        assert session.command("RCPT TO:<x@pro.gateway.test>")[0].startswith(b"503 ")
    lines = session.command("RCPT TO:<x@pro.gateway.test>")
    assert lines[0].startswith(b"503 ")
    assert session.reply()[0].startswith(b"421 4.7.0")
    assert session.closed()


def test_default_error_limit_is_20(gateway: GatewayProcess, accounts: Store,
                                   raw_session: Callable[[], RawSession]):
    session = raw_session()
    session.login(PRO)
    for _ in range(19):
        assert session.command("DATA")[0].startswith(b"503 ")
    assert session.command("DATA")[0].startswith(b"503 ")
    assert session.reply()[0].startswith(b"421 4.7.0")


def test_refused_commands_before_starttls_are_bounded(gateway: GatewayProcess, accounts: Store):
    with socket.create_connection(("127.0.0.1", gateway.smtp_port), timeout=10) as plain:
        stream = plain.makefile("rwb")
        assert stream.readline().startswith(b"220 ")
        replies = []
        for _ in range(12):
            stream.write(f"MAIL FROM:<{PRO}>\r\n".encode())
            stream.flush()
            line = stream.readline()
            if not line:
                break
            assert well_formed(line)
            replies.append(line)
            if line.startswith(b"421 "):
                try:
                    assert stream.readline() == b""  # and closed
                except ConnectionResetError:
                    pass
                break
        assert [r[:3] for r in replies[:9]] == [b"530"] * 9
        assert replies[9].startswith(b"530 ") and replies[10].startswith(b"421 4.7.0")
        assert len(replies) == 11


def test_refusal_rows_are_bounded_per_session_and_reason(gateway: GatewayProcess, accounts: Store):
    with gateway.smtp(PRO) as client:
        client.mail(PRO)
        for i in range(12):
            assert client.rcpt(f"nobody{i}@pro.gateway.test")[0] == 550
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = accounts.events("rcpt.refused.unknown")
        if len(rows) == 4:
            break
    assert len(rows) == 4  # three one by one, then one that stands for the rest
    assert [r.detail.get("count") for r in rows] == [None, None, None, 9]


def test_external_is_offered_only_with_a_client_certificate(gateway: GatewayProcess, accounts: Store):
    with gateway.smtp() as client:
        assert "EXTERNAL" not in client.esmtp_features["auth"].split()
        assert "PLAIN" in client.esmtp_features["auth"].split()


def test_anvil_refuses_the_51st_connection_from_one_address(limited_gateway: Callable[..., GatewayProcess]):
    gateway = limited_gateway()
    opened = []
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", gateway.smtp_port), timeout=10)
            opened.append(sock)
            assert sock.makefile("rb").readline().startswith(b"220 ")
        with socket.create_connection(("127.0.0.1", gateway.smtp_port), timeout=10) as extra:
            stream = extra.makefile("rb")
            line = stream.readline()
            assert line.startswith(b"421 4.7.0") and well_formed(line)
            assert stream.readline() == b""
    finally:
        for sock in opened:
            sock.close()


def test_anvil_message_rate_451_4_7_1(limited_gateway: Callable[..., GatewayProcess]):
    gateway = limited_gateway(messages_per_minute=2)
    with gateway.smtp(PRO) as client:
        client.sendmail(PRO, [PRO2], message(PRO, PRO2))
        client.sendmail(PRO, [PRO2], message(PRO, PRO2))
        try:
            client.sendmail(PRO, [PRO2], message(PRO, PRO2))
            raise AssertionError("the third message in a minute was accepted")
        except smtplib.SMTPDataError as error:
            assert error.smtp_code == 451 and error.smtp_error.startswith(b"4.7.1")
    assert len(Store(gateway.store_url).messages_in(PRO2)) == 2


def test_command_line_limits_are_each_sessions_own(gateway: GatewayProcess, accounts: Store,
                                                   raw_session: Callable[[], RawSession]):
    """MAIL may use the room EHLO gave its SIZE and SMTPUTF8 parameters whatever other clients do, and a session
    repeating EHLO does not widen it further."""
    first = raw_session()
    first.login(PRO)
    for _ in range(3):  # three more EHLOs: the room is given once, not three times
        assert first.command("EHLO client.test")[-1].startswith(b"250 ")
    raw_session().command("EHLO other.test")  # a new connection meanwhile, which used to clear every table
    padding = " ENVID=" + "x" * 20
    near = f"MAIL FROM:<{PRO}> SIZE=100 BODY=8BITMIME{padding}"
    near += " " * (540 - len(near) - 2)  # 540 octets with CRLF: over 512, within MAIL's 548
    assert first.command(near)[0].startswith(b"250 ")
    assert first.command("RSET")[0].startswith(b"250 ")
    over = near + " " * (560 - len(near) - 2)  # 560: beyond what one EHLO's room allows
    assert first.command(over)[0].startswith(b"500 ")
