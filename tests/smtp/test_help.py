"""HELP (RFC 5321 4.1.1.8) through a real session: the commands the server knows and each one's syntax."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.mail import PRO
from support.process import GatewayProcess
from support.smtp_session import RawSession
from support.store import Store

pytestmark = pytest.mark.slow


def test_help_lists_the_commands_and_gives_one_syntax(gateway: GatewayProcess, accounts: Store,
                                                      raw_session: Callable[[], RawSession]):
    session = raw_session()
    session.login(PRO)
    listed = session.command("HELP")
    assert listed[0].startswith(b"250 ")
    commands = set(listed[0].split(b": ", 1)[1].split())
    assert {b"EHLO", b"MAIL", b"RCPT", b"DATA", b"BDAT", b"QUIT", b"AUTH"} <= commands
    assert session.command("HELP MAIL")[0].startswith(b"250 2.0.0 Syntax: MAIL FROM: <address> [SP <mail-parameters>]")
    assert session.command("HELP NOSUCH")[0].startswith(b"501 ")
    assert session.command("NOOP")[0].startswith(b"250 ")  # the session goes on
