"""IMAP hostile-input and access tests: TLS before login, STARTTLS injection, literal caps, login throttling."""

from __future__ import annotations

import gc
import imaplib
import socket
import ssl
import time

import psutil
import pytest
from imap.imap_support import ALICE, PASSWORD, ImapHarness, message


def read_until(sock: socket.socket, needle: bytes, timeout: float = 10.0) -> bytes:
    """Read from ``sock`` until ``needle`` appears or the peer closes; returns what was read."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def is_closed(sock: socket.socket, timeout: float = 10.0) -> bool:
    """True when the peer closes the connection (EOF or reset) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def test_login_is_disabled_before_starttls_and_allowed_after(imap_sqlite: ImapHarness):
    client = imaplib.IMAP4("127.0.0.1", imap_sqlite.imap_port, timeout=30)
    try:
        capabilities = client.capabilities
        assert "LOGINDISABLED" in capabilities and "STARTTLS" in capabilities
        assert not any(c.startswith("AUTH=") for c in capabilities)
        with pytest.raises(imaplib.IMAP4.error):
            client.login(ALICE, PASSWORD)
        client.starttls(ssl_context=imap_sqlite.client_context())
        _typ, data = client.capability()
        assert b"LOGINDISABLED" not in data[0] and b"AUTH=PLAIN" in data[0]  # type: ignore[operator]
        assert client.login(ALICE, PASSWORD)[0] == "OK"
        assert client.select("INBOX")[0] == "OK"
    finally:
        client.shutdown()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_implicit_tls_port_refuses_tls_below_1_2(imap_sqlite: ImapHarness):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", imap_sqlite.imaps_port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            context.wrap_socket(raw).recv(100)


def test_commands_pipelined_after_starttls_never_run(imap_sqlite: ImapHarness):
    """A man in the middle appends a command to STARTTLS in one write: it must not run inside TLS."""
    imap_sqlite.deliver(ALICE, message("Secret"))
    with socket.create_connection(("127.0.0.1", imap_sqlite.imap_port), timeout=10) as sock:
        assert read_until(sock, b"\r\n").startswith(b"* OK")
        sock.sendall(b"a STARTTLS\r\nb LOGIN " + ALICE.encode() + b" \"" + PASSWORD.encode() + b"\"\r\n"
                     b"c SELECT INBOX\r\n")
        reply = read_until(sock, b"a OK")
        assert b"a OK" in reply
        assert b"b " not in reply and b"c " not in reply
        assert is_closed(sock)
    # A well-behaved client on the same port still works.
    with imap_sqlite.imap_starttls() as client:
        assert client.select("INBOX")[0] == "OK"


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def test_unauthenticated_huge_nonsync_literal_is_refused_before_reading(imap_sqlite: ImapHarness):
    """``a LOGIN {268435456+}`` then 256 MiB: BYE [TOOBIG] at once, and the server does not grow (RFC 7888 4)."""
    chunk = b"x" * (1024 * 1024)
    before = _rss()
    sent = 0
    with socket.create_connection(("127.0.0.1", imap_sqlite.imap_port), timeout=10) as sock:
        read_until(sock, b"\r\n")
        sock.sendall(b"a LOGIN {268435456+}\r\n")
        try:
            while sent < 256 * len(chunk):
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = read_until(sock, b"TOOBIG")
        assert b"* BYE [TOOBIG]" in reply
    grown = _rss() - before
    assert sent < 256 * len(chunk), "the server read the whole literal"
    assert grown < 32 * 1024 * 1024, f"server grew by {grown / 1e6:.0f} MB"


def test_unauthenticated_sync_literal_too_big_gets_no_toobig_and_no_continuation(imap_sqlite: ImapHarness):
    with socket.create_connection(("127.0.0.1", imap_sqlite.imap_port), timeout=10) as sock:
        read_until(sock, b"\r\n")
        sock.sendall(b"a LOGIN {100000}\r\n")
        reply = read_until(sock, b"a NO")
        assert b"a NO [TOOBIG]" in reply and b"+ " not in reply
        sock.sendall(b"b CAPABILITY\r\n")
        assert b"b OK" in read_until(sock, b"b OK")
        # A small literal is fine before login (here rejected only because LOGIN needs TLS).
        sock.sendall(b"c LOGIN {5}\r\n")
        assert b"+ " in read_until(sock, b"+ ")


def test_authenticated_literals_capped_append_up_to_message_size(imap_sqlite: ImapHarness):
    limits = imap_sqlite.limits
    context = imap_sqlite.client_context()
    with socket.create_connection(("127.0.0.1", imap_sqlite.imaps_port), timeout=10) as raw:
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        read_until(sock, b"\r\n")
        sock.sendall(f'a LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
        assert b"a OK" in read_until(sock, b"a OK")
        # A SEARCH literal bigger than the authenticated literal limit: refused without a continuation.
        sock.sendall(b"b SELECT INBOX\r\nc SEARCH SUBJECT {%d}\r\n" % (limits.imap_literal_authenticated + 1))
        assert b"c NO [TOOBIG]" in read_until(sock, b"c NO")
        # APPEND above the message size limit: refused; below it (and above the other limit): accepted.
        sock.sendall(b"d APPEND Drafts {%d}\r\n" % (limits.message_size + 1))
        assert b"d NO [TOOBIG]" in read_until(sock, b"d NO")
        body = message("Gros brouillon", "y" * (limits.imap_literal_authenticated * 2))
        sock.sendall(b"e APPEND Drafts {%d}\r\n" % len(body))
        assert b"+ " in read_until(sock, b"+ ")
        sock.sendall(body + b"\r\n")
        assert b"e OK [APPENDUID" in read_until(sock, b"e OK")
        sock.close()


def test_wrong_passwords_throttle_the_address_even_for_the_right_password(imap_sqlite: ImapHarness):
    for _ in range(imap_sqlite.limits.failed_logins):
        with imap_sqlite.imaps(None) as client:
            with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
                client.login(ALICE, "wrong password")
    with imap_sqlite.imaps(None) as client:
        with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
            client.login(ALICE, PASSWORD)
