"""Who may send HL7: a peer allowed by its certificate (mutual TLS, ``certificate_sha256``) and a plain-TCP peer
allowed by its address, through real sockets; anyone else is closed before a byte is read, and the listener
goes on serving the allowed peer."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.hl7_peer import DOCTOR, LAB, Hl7Gateway, Mllp, code_of, oru
from support.pki import PKIFiles
from support.store import Store

from gateway.hl7.mllp import frame
from gateway.pki import DevelopmentPKI


def store_for(url: str) -> Store:
    store = Store(url)
    store.add_mailbox(LAB, "APP")
    store.add_mailbox(DOCTOR, "PER")
    store.add_identity()
    return store


def context(pki: PKIFiles, certificate: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    made = ssl.create_default_context(cafile=str(pki.ca_bundle))
    if certificate is not None:
        made.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return made


@pytest.fixture(scope="module")
def mutual(tmp_path_factory: pytest.TempPathFactory, pki: PKIFiles
           ) -> Iterator[tuple[Hl7Gateway, dict[str, tuple[Path, Path]]]]:
    folder = tmp_path_factory.mktemp("hl7-mtls")
    certificates = {}
    for name, issued in (("allowed", pki.pki.software("dpi-mtls")), ("other", pki.pki.software("autre-dpi")),
                         ("foreign", DevelopmentPKI.create("Autre AC").software("dpi-mtls"))):
        issued.write(folder / f"{name}.crt", folder / f"{name}.key")
        certificates[name] = (folder / f"{name}.crt", folder / f"{name}.key")
    url = f"sqlite+aiosqlite:///{folder / 'gateway.sqlite3'}"
    store_for(url)
    daemon = Hl7Gateway(folder / "gw", pki, url, hl7_extra="tls = true")
    fingerprint = _fingerprint(certificates["allowed"][0])
    text = daemon.config_path.read_text(encoding="utf-8")
    daemon.config_path.write_text(text.replace('addresses = ["127.0.0.1"]', f'certificate_sha256 = "{fingerprint}"'),
                                  encoding="utf-8")
    daemon.start()
    yield daemon, certificates
    daemon.stop()


def _fingerprint(path: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256()).hex()


def allowed_gets_aa(gateway: Hl7Gateway, pki: PKIFiles, certificate: tuple[Path, Path], control_id: str) -> None:
    client = Mllp(gateway.hl7_port, context=context(pki, certificate))
    try:
        answer = client.exchange(oru(control_id, destinations=("DESTMSSANTEPS",)))
        assert code_of(answer) == ("AA", None), answer
    finally:
        client.close()


def refused(gateway: Hl7Gateway, pki: PKIFiles, certificate: tuple[Path, Path] | None) -> bool:
    """Whether the listener closes a TLS client with ``certificate`` without answering its message."""
    try:
        client = Mllp(gateway.hl7_port, timeout=10, context=context(pki, certificate))
    except (ssl.SSLError, ConnectionError):
        return True  # refused during the handshake
    try:
        client.send_raw(frame(oru("INTRUS-1", destinations=("DESTMSSANTEPS",))))
        return client.closed_by_peer(10) and not client.buffer
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        client.close()


def test_a_peer_allowed_by_certificate_gets_aa_over_mutual_tls(
        mutual: tuple[Hl7Gateway, dict[str, tuple[Path, Path]]], pki: PKIFiles):
    gateway, certificates = mutual
    allowed_gets_aa(gateway, pki, certificates["allowed"], "MTLS-1")


def test_without_a_client_certificate_the_connection_is_closed_and_the_listener_keeps_serving(
        mutual: tuple[Hl7Gateway, dict[str, tuple[Path, Path]]], pki: PKIFiles):
    gateway, certificates = mutual
    assert refused(gateway, pki, None)
    assert gateway.wait_log('"reason": "unknown_peer"')
    allowed_gets_aa(gateway, pki, certificates["allowed"], "MTLS-2")


def test_another_certificate_of_the_same_authority_is_closed(
        mutual: tuple[Hl7Gateway, dict[str, tuple[Path, Path]]], pki: PKIFiles):
    gateway, certificates = mutual
    assert refused(gateway, pki, certificates["other"])
    allowed_gets_aa(gateway, pki, certificates["allowed"], "MTLS-3")


def test_a_certificate_of_an_unknown_authority_is_refused_at_the_handshake(
        mutual: tuple[Hl7Gateway, dict[str, tuple[Path, Path]]], pki: PKIFiles):
    gateway, certificates = mutual
    assert refused(gateway, pki, certificates["foreign"])
    allowed_gets_aa(gateway, pki, certificates["allowed"], "MTLS-4")


def test_a_plain_tcp_peer_allowed_by_address_gets_aa_and_tls_is_not_spoken_there(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str):
    store_for(sqlite_url)
    gateway = Hl7Gateway(tmp_path / "gw", pki, sqlite_url).start()  # addresses = ["127.0.0.1"], no tls
    try:
        client = Mllp(gateway.hl7_port)
        answer = client.exchange(oru("TCP-1", destinations=("DESTMSSANTEPS",)))
        client.close()
        assert code_of(answer) == ("AA", None), answer
        with pytest.raises((ssl.SSLError, ConnectionError, TimeoutError)):
            Mllp(gateway.hl7_port, timeout=5, context=context(pki))  # a TLS hello gets no TLS answer
    finally:
        gateway.stop()
