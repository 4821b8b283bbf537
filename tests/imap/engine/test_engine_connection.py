"""The engine's connection layer over real sockets and TLS: greeting, STARTTLS, login, literals, COMPRESS."""

from __future__ import annotations

import imaplib
import socket
import ssl
import time
import zlib

import pytest
from imap.engine.engine_support import ALICE, PASSWORD, EngineHarness, message


def read_until(sock: socket.socket | ssl.SSLSocket, needle: bytes, timeout: float = 10.0) -> bytes:
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


def tls_socket(harness: EngineHarness) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", harness.imaps_port), timeout=10)
    sock = harness.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
    assert read_until(sock, b"\r\n").startswith(b"* OK [CAPABILITY ")
    return sock


def test_plaintext_port_offers_starttls_only_and_login_works_after_it(engine_sqlite: EngineHarness):
    client = imaplib.IMAP4("127.0.0.1", engine_sqlite.imap_port, timeout=30)
    try:
        assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
        assert not any(c.startswith("AUTH=") for c in client.capabilities)
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            client.login(ALICE, PASSWORD)
        client.starttls(ssl_context=engine_sqlite.client_context())
        _typ, data = client.capability()
        assert b"AUTH=PLAIN" in data[0] and b"LOGINDISABLED" not in data[0]
        assert b"AUTH=EXTERNAL" not in data[0]  # no client certificate was presented
        typ, data = client.login(ALICE, PASSWORD)
        assert typ == "OK"
    finally:
        client.shutdown()


def test_authenticate_plain_with_initial_response_and_after_a_continuation(engine_sqlite: EngineHarness):
    import base64

    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode())
    sock = tls_socket(engine_sqlite)
    sock.sendall(b"a AUTHENTICATE PLAIN " + token + b"\r\n")
    assert b"a OK [CAPABILITY " in read_until(sock, b"a OK")
    sock.close()
    sock = tls_socket(engine_sqlite)
    sock.sendall(b"b AUTHENTICATE PLAIN\r\n")
    assert read_until(sock, b"\r\n").startswith(b"+ ")
    sock.sendall(token + b"\r\n")
    assert b"b OK" in read_until(sock, b"b OK")
    sock.sendall(b"c NOOP\r\n")
    assert b"c OK" in read_until(sock, b"c OK")
    sock.close()


def test_authenticate_cancelled_and_wrong_password_codes(engine_sqlite: EngineHarness):
    sock = tls_socket(engine_sqlite)
    sock.sendall(b"a AUTHENTICATE PLAIN\r\n")
    read_until(sock, b"\r\n")
    sock.sendall(b"*\r\n")
    assert b"a BAD" in read_until(sock, b"a BAD")
    sock.sendall(b"b LOGIN alice@pro.gateway.test wrong\r\n")
    assert b"b NO [AUTHENTICATIONFAILED]" in read_until(sock, b"b NO")
    sock.sendall(b"c SELECT INBOX\r\n")
    assert b"c BAD [CLIENTBUG]" in read_until(sock, b"c BAD")  # not allowed before login
    sock.close()


def test_malformed_commands_get_tagged_bad_and_the_connection_goes_on(engine_sqlite: EngineHarness):
    sock = tls_socket(engine_sqlite)
    sock.sendall(b"a FROB\r\nb LOGIN\r\nc NOOP\r\n")
    reply = read_until(sock, b"c OK")
    assert b"a BAD" in reply and b"b BAD" in reply and b"c OK" in reply
    sock.close()


def test_literal_continuation_and_literal_plus_on_login(engine_sqlite: EngineHarness):
    sock = tls_socket(engine_sqlite)
    sock.sendall(b"a LOGIN {%d}\r\n" % len(ALICE))
    assert read_until(sock, b"\r\n").startswith(b"+ Ready")
    sock.sendall(ALICE.encode() + b" {%d+}\r\n" % len(PASSWORD) + PASSWORD.encode() + b"\r\n")
    assert b"a OK" in read_until(sock, b"a OK")
    sock.close()


def test_huge_nonsync_literal_before_login_gets_bye_toobig(engine_sqlite: EngineHarness):
    sock = tls_socket(engine_sqlite)
    sock.sendall(b"a LOGIN {268435456+}\r\n")
    assert b"* BYE [TOOBIG]" in read_until(sock, b"TOOBIG")
    sock.close()


def test_id_enable_namespace(engine_sqlite: EngineHarness):
    with engine_sqlite.imaps() as client:
        typ, data = client.xatom("ID", '("name" "test")')
        assert typ == "OK"
        assert client.untagged_responses.get("ID") == [b'("name" "gateway")']
        typ, data = client.xatom("ENABLE", "CONDSTORE NOTHING")
        assert typ == "OK" and client.untagged_responses.get("ENABLED") == [b"CONDSTORE"]
        typ, data = client.namespace()
        assert typ == "OK" and data == [b'(("" "/")) NIL NIL']


def test_compress_deflate_both_ways(engine_sqlite: EngineHarness):
    engine_sqlite.deliver(ALICE, message("Compresse"))
    sock = tls_socket(engine_sqlite)
    sock.sendall(f'a LOGIN {ALICE} "{PASSWORD}"\r\n'.encode())
    assert b"COMPRESS=DEFLATE" in read_until(sock, b"a OK")
    sock.sendall(b"b COMPRESS DEFLATE\r\n")
    assert b"b OK" in read_until(sock, b"b OK")
    out = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    sock.sendall(out.compress(b"c SELECT INBOX\r\nd FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
                 + out.flush(zlib.Z_SYNC_FLUSH))
    data = b""
    deadline = time.monotonic() + 10
    while b"d OK" not in data and time.monotonic() < deadline:
        data += inflate.decompress(sock.recv(65536))
    assert b"c OK [READ-WRITE]" in data and b"Subject: Compresse" in data and b"d OK" in data
    sock.close()


def test_a_disabled_mailbox_gets_bye_at_its_next_command(engine_sqlite: EngineHarness):
    from sqlalchemy import update

    from gateway.store.models import Mailbox

    with engine_sqlite.imaps() as client:
        assert client.noop()[0] == "OK"

        async def disable(session):
            await session.execute(update(Mailbox).where(Mailbox.address == ALICE).values(active=False))

        engine_sqlite.run(disable)
        with pytest.raises(imaplib.IMAP4.abort):
            client.noop()
