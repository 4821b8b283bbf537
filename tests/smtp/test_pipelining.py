"""PIPELINING (RFC 2920) on a raw implicit-TLS socket: commands sent in one write get their replies in order,
a message's end may share a write with the next transaction, and a reply batch leaves in one TLS record."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from support.mail import PATIENT, PRO, PRO2, as_written, message
from support.process import GatewayProcess
from support.smtp_session import RawSession, well_formed
from support.store import Store

pytestmark = pytest.mark.slow


def replies(session: RawSession, count: int) -> list[bytes]:
    """The first line of each of the next ``count`` replies."""
    return [session.reply()[0] for _ in range(count)]


def test_ehlo_is_offered_pipelining_and_answered_in_one_record(gateway: GatewayProcess, accounts: Store,
                                                               raw_session: Callable[[], RawSession]):
    session = raw_session()
    session.send(b"EHLO client.test\r\n")
    record = session.sock.recv(65536)  # one TLS record: every line of the reply was written at once
    lines = record.splitlines(keepends=True)
    assert lines[-1].startswith(b"250 ") and b"250-PIPELINING\r\n" in lines
    assert all(well_formed(line) for line in lines)


def test_login_and_transactions_pipelined_are_answered_in_order(gateway: GatewayProcess, accounts: Store,
                                                                raw_session: Callable[[], RawSession]):
    first, second = message(PRO, PRO2, "un"), message(PRO, PRO2, "deux")
    token = base64.b64encode(f"\0{PRO}\0secret-password".encode())
    session = raw_session()
    session.send(b"EHLO client.test\r\nAUTH PLAIN " + token + b"\r\n"
                 + f"MAIL FROM:<{PRO}>\r\nRCPT TO:<{PRO2}>\r\nDATA\r\n".encode())
    assert session.reply()[-1].startswith(b"250 ")
    assert [line[:3] for line in replies(session, 4)] == [b"235", b"250", b"250", b"354"]
    session.send(first + b".\r\n" + f"MAIL FROM:<{PRO}>\r\nRCPT TO:<{PRO2}>\r\nDATA\r\n".encode())
    assert session.reply()[0].startswith(b"250 2.0.0 Message accepted")
    assert [line[:3] for line in replies(session, 3)] == [b"250", b"250", b"354"]
    session.send(second + b".\r\nNOOP\r\nQUIT\r\n")
    assert session.reply()[0].startswith(b"250 2.0.0 Message accepted")
    assert [line[:3] for line in replies(session, 2)] == [b"250", b"221"]
    assert session.closed()
    assert sorted(as_written(m) for m in accounts.messages_in(PRO2)) == sorted([first, second])


def test_a_refused_recipient_in_a_pipelined_group_leaves_data_refused(gateway: GatewayProcess, accounts: Store,
                                                                     raw_session: Callable[[], RawSession]):
    session = raw_session()
    session.login(PRO)
    session.send(f"MAIL FROM:<{PRO}>\r\nRCPT TO:<nobody@pro.gateway.test>\r\nDATA\r\nRSET\r\n".encode())
    mail, rcpt, data, rset = replies(session, 4)
    assert mail.startswith(b"250 ") and rcpt[:1] == b"5" and data.startswith(b"503 5.5.1") and rset[:3] == b"250"
    session.send(f"MAIL FROM:<{PRO}>\r\nRCPT TO:<{PATIENT}>\r\nRCPT TO:<{PRO2}>\r\nDATA\r\n".encode())
    assert [line[:1] for line in replies(session, 4)][::3] == [b"2", b"3"]
    session.send(message(PRO, PRO2) + b".\r\n")
    assert session.reply()[0].startswith(b"250 2.0.0 Message accepted")
    assert accounts.count_messages() == 1
