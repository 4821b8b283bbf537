"""SIGTERM and SIGHUP to a daemon with two workers, as Postfix and Dovecot answer them.

SIGTERM: a transaction in DATA finishes within ``stop_grace`` (250 and stored) or is cut (no reply, nothing
stored); idle SMTP sessions get ``421 4.3.2``, IMAP sessions ``* BYE``; exit 0, JSON log lines only.
SIGHUP: a new certificate for new connections while an IDLE session stays; a broken file refused by key name.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import aioimaplib
import pytest
from support.mail import PRO, PRO2, message
from support.pki import HOSTNAME, PKIFiles
from support.process import GatewayProcess
from support.store import Store
from support.workers import PASSWORD, events, start, wait_until

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

BODY = message(PRO, PRO2, "Compte rendu", "Ligne de texte.\r\n" * 200)


def _in_data(daemon: GatewayProcess) -> object:
    """A logged-in client that sent DATA and half of the message."""
    client = daemon.smtp(PRO, PASSWORD)
    client.mail(PRO)
    client.rcpt(PRO2)
    client.putcmd("data")
    assert client.getreply()[0] == 354
    client.send(BODY[: len(BODY) // 2])
    return client


def _all_json(daemon: GatewayProcess) -> None:
    for line in daemon.log_lines:
        json.loads(line)  # raises on anything that is not one JSON object per line


def _terminate(daemon: GatewayProcess) -> None:
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    wait_until(lambda: len(events(daemon, "worker_stopping")) == 2, 10, "both workers to begin stopping")


def test_sigterm_lets_a_transaction_in_data_finish_with_250_and_it_is_stored(
        make_daemon: Callable[..., GatewayProcess], store: Store):
    daemon = start(make_daemon())
    client = _in_data(daemon)
    _terminate(daemon)
    client.send(BODY[len(BODY) // 2:] + b".\r\n")  # type: ignore[attr-defined]
    code, _ = client.getreply()  # type: ignore[attr-defined]
    assert code == 250
    code, text = client.getreply()  # type: ignore[attr-defined]
    assert (code, text[:5]) == (421, b"4.3.2")
    assert daemon.process is not None and daemon.process.wait(30) == 0
    assert [raw for raw in store.messages_in(PRO2) if b"Compte rendu" in raw]
    _all_json(daemon)


def test_sigterm_cuts_a_transaction_still_in_data_after_stop_grace_and_nothing_is_stored(
        make_daemon: Callable[..., GatewayProcess], store: Store):
    daemon = start(make_daemon(stop_grace=1))
    client = _in_data(daemon)
    _terminate(daemon)
    assert daemon.process is not None and daemon.process.wait(30) == 0
    try:
        code, _ = client.getreply()  # type: ignore[attr-defined]
    except OSError:
        code = -1
    assert code == -1 or 400 <= code < 500  # never a 250 for it
    assert not store.messages_in(PRO2)
    _all_json(daemon)


def test_sigterm_answers_421_to_an_idle_smtp_session_and_bye_to_imap(
        make_daemon: Callable[..., GatewayProcess], store: Store):
    daemon = start(make_daemon())
    smtp = daemon.smtp(PRO, PASSWORD)
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.imaps_port, ssl_context=daemon.client_tls())
    assert imap.login(PRO2, PASSWORD)[0] == "OK"
    imap.select("INBOX")
    _terminate(daemon)
    code, text = smtp.getreply()
    assert (code, text[:5]) == (421, b"4.3.2")
    assert imap.readline().startswith(b"* BYE")
    assert daemon.process is not None and daemon.process.wait(30) == 0
    _all_json(daemon)


def _peer_certificate(port: int, ca: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text(encoding="ascii").split("-----END CERTIFICATE-----")[0]
                                    + "-----END CERTIFICATE-----\n")


async def test_sighup_gives_new_connections_the_new_certificate_and_an_idle_session_survives(
        make_daemon: Callable[..., GatewayProcess], store: Store, pki: PKIFiles, tmp_path: Path):
    daemon = start(make_daemon())
    assert _peer_certificate(daemon.imaps_port, pki.ca_bundle) == _der(pki.server_cert)
    client = aioimaplib.IMAP4_SSL("127.0.0.1", daemon.imaps_port, ssl_context=daemon.client_tls(), timeout=30)
    await client.wait_hello_from_server()
    assert (await client.login(PRO2, PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    idle = await client.idle_start(timeout=60)

    new_cert, new_key = tmp_path / "renewed.crt", tmp_path / "renewed.key"
    pki.pki.server(HOSTNAME).write(new_cert, new_key)
    text = daemon.config_path.read_text(encoding="utf-8")
    daemon.config_path.write_text(text.replace(str(pki.server_cert), str(new_cert))
                                  .replace(str(pki.server_key), str(new_key)), encoding="utf-8")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    await asyncio.to_thread(wait_until, lambda: len(events(daemon, "reloaded")) == 2, 30, "both workers to reload")
    for port in (daemon.imaps_port, daemon.smtps_port):
        assert _peer_certificate(port, pki.ca_bundle) == _der(new_cert)

    def send() -> None:
        with daemon.smtp(PRO, PASSWORD) as smtp:
            smtp.sendmail(PRO, [PRO2], message(PRO, PRO2, "Apres rechargement"))

    await asyncio.to_thread(send)
    while True:  # the session opened before the reload is still there, and still woken
        push = await client.wait_server_push(timeout=10)
        if any(isinstance(line, bytes) and line.endswith(b"EXISTS") for line in push):
            break
    client.idle_done()
    assert (await asyncio.wait_for(idle, 5)).result == "OK"
    await client.logout()
    assert daemon.process.poll() is None


def test_sighup_with_a_broken_file_keeps_the_old_configuration_and_names_the_key(
        make_daemon: Callable[..., GatewayProcess], store: Store):
    daemon = start(make_daemon())
    text = daemon.config_path.read_text(encoding="utf-8")
    daemon.config_path.write_text(text.replace(f'hostname = "{HOSTNAME}"', "hostname = 3"), encoding="utf-8")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    refused = wait_until(lambda: events(daemon, "reload_refused"), 30, "the refusal")
    assert len(refused) == 1 and "'gateway.hostname'" in refused[0]["reason"]
    assert daemon.process.poll() is None
    with daemon.smtp(PRO, PASSWORD) as smtp:  # still serving, with the old host name
        assert HOSTNAME.encode() in smtp.ehlo()[1]
        smtp.sendmail(PRO, [PRO2], message(PRO, PRO2, "Toujours la"))
    assert not events(daemon, "reloaded")
    assert len(events(daemon, "reload_refused")) == 1



def _send_id(daemon: GatewayProcess) -> None:
    """An IMAP ``ID`` on a new connection: the server logs it at debug level only."""
    imap = imaplib.IMAP4_SSL("127.0.0.1", daemon.imaps_port, ssl_context=daemon.client_tls())
    try:
        imap.xatom("ID", '("name" "probe")')
    finally:
        imap.logout()


def test_sighup_with_a_new_log_level_is_applied_by_the_workers(make_daemon: Callable[..., GatewayProcess],
                                                               store: Store):
    daemon = start(make_daemon())
    _send_id(daemon)
    assert not events(daemon, "imap_client_id")  # info: no debug lines
    text = daemon.config_path.read_text(encoding="utf-8")
    daemon.config_path.write_text(text.replace('log_level = "info"', 'log_level = "debug"'), encoding="utf-8")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    wait_until(lambda: len(events(daemon, "reloaded")) == 2, 30, "both workers to reload")
    for _ in range(4):  # new connections, spread over both workers by SO_REUSEPORT
        _send_id(daemon)
    wait_until(lambda: events(daemon, "imap_client_id"), 30, "a debug line after the reload")
    _all_json(daemon)
