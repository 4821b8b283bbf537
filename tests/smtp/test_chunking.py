"""CHUNKING/BDAT (RFC 3030) on a raw implicit-TLS socket (aiosmtplib and smtplib cannot send BDAT), and DATA's
block reader: same smuggling refusal and size limit as DATA, framing kept after every refusal."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.mail import PRO, PRO2, as_written, message
from support.process import GatewayProcess
from support.smtp_session import RawSession
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def bdat(session: RawSession, chunk: bytes, last: bool = False, size: int | None = None) -> list[bytes]:
    """One BDAT command and its chunk, exactly (no CRLF after the chunk), and its reply."""
    session.send(b"BDAT %d%s\r\n" % (len(chunk) if size is None else size, b" LAST" if last else b"") + chunk)
    return session.reply()


def ready(session: RawSession) -> None:
    session.login(PRO)
    assert session.command(f"MAIL FROM:<{PRO}>")[0].startswith(b"250 ")
    assert session.command(f"RCPT TO:<{PRO2}>")[0].startswith(b"250 ")


def test_ehlo_offers_chunking_and_smtputf8_not_binarymime(gateway: GatewayProcess, accounts: Store,
                                                          raw_session: Callable[[], RawSession]):
    lines = raw_session().command("EHLO client.test")
    assert b"250-CHUNKING\r\n" in lines and b"250-SMTPUTF8\r\n" in lines
    assert not any(b"BINARYMIME" in line for line in lines)


def test_bdat_chunks_deliver_the_message_byte_for_byte(gateway: GatewayProcess, accounts: Store,
                                                       raw_session: Callable[[], RawSession]):
    raw = message(PRO, PRO2, "En morceaux", body="Ligne 1\r\n.point\r\nfin")
    session = raw_session()
    ready(session)
    first, second = raw[:37], raw[37:]
    assert bdat(session, first)[0].startswith(b"250 ")
    reply = bdat(session, second, last=True)
    assert reply[0].startswith(b"250 2.0.0 Message accepted")
    assert [as_written(m) for m in accounts.messages_in(PRO2)] == [raw]  # no dot-unstuffing in BDAT


def test_bdat_with_a_bare_lf_is_refused_and_the_session_stays_in_step(
        gateway: GatewayProcess, accounts: Store, raw_session: Callable[[], RawSession]):
    smuggled = (f"From: {PRO}\r\nSubject: x\r\n\r\nbody\n.\nMAIL FROM:<{PRO}>\r\n").encode()
    session = raw_session()
    ready(session)
    reply = bdat(session, smuggled, last=True)
    assert reply[0].startswith(b"550 5.5.2")
    assert session.command("NOOP")[0].startswith(b"250 ")  # nothing of the chunk was read as a command
    assert accounts.count_messages() == 0


def test_bdat_over_the_size_limit_is_refused_after_reading_the_chunk(
        gateway: GatewayProcess, accounts: Store, raw_session: Callable[[], RawSession]):
    session = raw_session()
    ready(session)
    big = b"x" * 998 + b"\r\n"
    chunk = big * 1100  # over the 1 MiB limit of the test gateway
    assert bdat(session, chunk)[0].startswith(b"552 5.3.4")
    assert bdat(session, b"abc\r\n", last=True)[0].startswith(b"552 5.3.4")
    assert session.command("NOOP")[0].startswith(b"250 ")
    assert session.command(f"MAIL FROM:<{PRO}>")[0].startswith(b"250 ")  # the transaction was reset
    assert accounts.count_messages() == 0


def test_bdat_without_recipients_is_refused_after_reading_the_chunk(
        gateway: GatewayProcess, accounts: Store, raw_session: Callable[[], RawSession]):
    session = raw_session()
    session.login(PRO)
    assert bdat(session, b"NOOP\r\nNOOP\r\n", last=True)[0].startswith(b"503 ")
    assert session.command("NOOP")[0].startswith(b"250 ")
    assert len(session.command("NOOP")) == 1


def test_bdat_with_a_bad_size_closes_the_session(gateway: GatewayProcess, accounts: Store,
                                                  raw_session: Callable[[], RawSession]):
    session = raw_session()
    ready(session)
    assert session.command("BDAT lots LAST")[0].startswith(b"501 5.5.4")
    assert session.closed()


def test_data_then_pipelined_command_in_one_write(gateway: GatewayProcess, accounts: Store,
                                                  raw_session: Callable[[], RawSession]):
    raw = message(PRO, PRO2, body="..stuffed\r\nfin")
    session = raw_session()
    ready(session)
    assert session.command("DATA")[0].startswith(b"354 ")
    session.send(raw + b".\r\nNOOP\r\n")
    assert session.reply()[0].startswith(b"250 2.0.0 Message accepted")
    assert session.reply()[0].startswith(b"250 ")  # the NOOP after the end of data was kept
    (stored,) = accounts.messages_in(PRO2)
    assert as_written(stored) == raw.replace(b"..stuffed", b".stuffed")


def test_empty_data_is_read_to_its_end(gateway: GatewayProcess, accounts: Store,
                                       raw_session: Callable[[], RawSession]):
    session = raw_session()
    ready(session)
    assert session.command("DATA")[0].startswith(b"354 ")
    assert session.command(".")[0][:1] in (b"5",)  # no From header: refused, but in step
    assert session.command("NOOP")[0].startswith(b"250 ")


def test_data_line_over_1000_octets_is_refused(gateway: GatewayProcess, accounts: Store,
                                               raw_session: Callable[[], RawSession]):
    session = raw_session()
    ready(session)
    assert session.command("DATA")[0].startswith(b"354 ")
    session.send(message(PRO, PRO2, body="y" * 1200) + b".\r\n")
    assert session.reply()[0].startswith(b"500 5.5.6")
    assert session.command("NOOP")[0].startswith(b"250 ")
    assert accounts.count_messages() == 0
