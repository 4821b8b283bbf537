"""``gateway serve`` refuses a configuration it cannot serve with one sentence naming the key, never a traceback.

A mistyped ``database.url`` must not create an empty store that serves no account; a PostgreSQL server that is
down, a key that is not the certificate's, an expired certificate or a port in use each get one line on
stderr naming the key (and the address, never the database password) and exit status 2.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import postgres
from support.pki import PKIFiles
from support.postgres import url_of
from support.process import GatewayProcess, free_port
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

HINT = "create it with 'gateway init' or 'gateway migrate --create'"


def gateway(config: Path, *args: str, command: str = "serve", timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", command, "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout)


def configured(folder: Path, pki: PKIFiles, url: str, *, extra: str = "", workers: int = 1) -> GatewayProcess:
    """A gateway's configuration file (quiet log level: stderr holds only what a refusal says)."""
    process = GatewayProcess(folder, pki, url, log_level="warning", extra_config=extra)
    if workers != 1:
        text = process.config_path.read_text(encoding="utf-8")
        process.config_path.write_text(text.replace("[gateway]\n", f"[gateway]\nworkers = {workers}\n", 1),
                                       encoding="utf-8")
    return process


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refusal prints (asserting exit status 2 and nothing else on stderr)."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("gateway: ")
    return lines[0].removeprefix("gateway: ")


async def _noop(_session: object) -> None:
    return None


# --- database.url ---------------------------------------------------------------------------------------------
def test_a_sqlite_file_that_does_not_exist_is_refused_and_not_created(tmp_path: Path, pki: PKIFiles) -> None:
    missing = tmp_path / "typo" / "gatewy.sqlite3"
    process = configured(tmp_path / "gw", pki, f"sqlite+aiosqlite:///{missing}")
    assert refused(gateway(process.config_path)) == (
        f"Configuration key 'database.url' names a SQLite file that does not exist ({missing}): {HINT}.")
    assert not missing.exists() and not missing.parent.exists()


def test_migrate_without_create_refuses_the_missing_file_and_with_create_makes_it(tmp_path: Path,
                                                                                  pki: PKIFiles) -> None:
    path = tmp_path / "store" / "gateway.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    process = configured(tmp_path / "gw", pki, url)
    assert refused(gateway(process.config_path, command="migrate")) == (
        f"Configuration key 'database.url' names a SQLite file that does not exist ({path}): {HINT}.")
    assert not path.exists()
    created = gateway(process.config_path, "--create", command="migrate")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"Store {url} created and migrated to the newest schema."
    again = gateway(process.config_path, command="migrate")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"Store {url} migrated to the newest schema."
    assert Store(url).count_messages() == 0  # a store with the schema


def test_a_store_made_by_migrate_is_served(tmp_path: Path, pki: PKIFiles) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
    Store(url).run(_noop)  # gateway.store.db.migrate, as tests and 'gateway migrate --create' do
    process = GatewayProcess(tmp_path / "gw", pki, url).start()
    try:
        assert process.process is not None and process.process.poll() is None
    finally:
        process.stop()


def test_a_postgresql_server_that_is_down_is_named_without_the_password(tmp_path: Path, pki: PKIFiles) -> None:
    port = free_port()  # nothing listens there
    process = configured(tmp_path / "gw", pki, f"postgresql+asyncpg://gateway:s3cret-pw@127.0.0.1:{port}/mail")
    line = refused(gateway(process.config_path))
    assert line.startswith("Configuration key 'database.url' names a PostgreSQL server that cannot be reached "
                           f"(postgresql+asyncpg://gateway@127.0.0.1:{port}/mail: ")
    assert line.endswith(").") and "s3cret-pw" not in line


def test_a_postgresql_host_that_does_not_resolve_is_named(tmp_path: Path, pki: PKIFiles) -> None:
    url = "postgresql+asyncpg://gateway:s3cret-pw@db.no-such-host.invalid:5432/mail"
    process = configured(tmp_path / "gw", pki, url)
    line = refused(gateway(process.config_path))
    assert line.startswith("Configuration key 'database.url' names a PostgreSQL server that cannot be reached "
                           "(postgresql+asyncpg://gateway@db.no-such-host.invalid:5432/mail: ")
    assert "s3cret-pw" not in line


def test_a_postgresql_server_that_is_down_is_named_by_every_command(tmp_path: Path, pki: PKIFiles) -> None:
    port = free_port()
    process = configured(tmp_path / "gw", pki, f"postgresql+asyncpg://gateway:s3cret-pw@127.0.0.1:{port}/mail")
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "mailbox", "list", "--config",
                           str(process.config_path)], capture_output=True, text=True, timeout=60)
    line = refused(done)
    assert line.startswith("Configuration key 'database.url' names a PostgreSQL server that cannot be reached")
    assert "s3cret-pw" not in line


@pytest.fixture
def missing_database() -> Iterator[str]:
    """The URL of a PostgreSQL database nobody created (dropped afterwards if a test created it)."""
    name = f"gw_missing_{uuid.uuid4().hex[:10]}"
    yield url_of(name)
    postgres.drop(name)


def test_a_postgresql_database_that_does_not_exist_is_refused_until_migrate_creates_it(
        tmp_path: Path, pki: PKIFiles, missing_database: str) -> None:
    process = configured(tmp_path / "gw", pki, missing_database)
    assert refused(gateway(process.config_path)) == (
        f"Configuration key 'database.url' names a PostgreSQL database that does not exist "
        f"({missing_database}): {HINT}.")
    created = gateway(process.config_path, "--create", command="migrate")
    assert created.returncode == 0, created.stderr
    assert "created and migrated" in created.stdout
    assert Store(missing_database).count_messages() == 0


# --- tls ------------------------------------------------------------------------------------------------------
def _self_signed(folder: Path, *, days: tuple[int, int]) -> tuple[Path, Path]:
    """A certificate and its key valid from ``days[0]`` to ``days[1]`` days from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.gateway.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days[0])).not_valid_after(now + dt.timedelta(days=days[1]))
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "other.crt", folder / "other.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
    Store(url).run(_noop)
    return url


def _with_tls(process: GatewayProcess, cert: Path, key: Path) -> Path:
    text = process.config_path.read_text(encoding="utf-8")
    text = text.replace(f'certificate = "{process.pki.server_cert}"', f'certificate = "{cert}"')
    text = text.replace(f'private_key = "{process.pki.server_key}"', f'private_key = "{key}"')
    process.config_path.write_text(text, encoding="utf-8")
    return process.config_path


def test_a_key_that_is_not_the_certificates_names_tls_private_key(tmp_path: Path, pki: PKIFiles,
                                                                 store: str) -> None:
    _, other_key = _self_signed(tmp_path / "other", days=(-1, 30))
    process = configured(tmp_path / "gw", pki, store)
    config = _with_tls(process, pki.server_cert, other_key)
    assert refused(gateway(config)) == (
        f"Configuration key 'tls.private_key' names a key ({other_key}) that does not match the certificate "
        f"of 'tls.certificate' ({pki.server_cert}).")


def test_an_expired_certificate_names_tls_certificate(tmp_path: Path, pki: PKIFiles, store: str) -> None:
    cert, key = _self_signed(tmp_path / "other", days=(-30, -2))
    expiry = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    config = _with_tls(configured(tmp_path / "gw", pki, store), cert, key)
    assert refused(gateway(config)) == (
        f"Configuration key 'tls.certificate' names a certificate that expired on {expiry:%Y-%m-%d %H:%M} UTC "
        f"({cert}).")


def test_a_certificate_file_without_a_certificate_names_tls_certificate(tmp_path: Path, pki: PKIFiles,
                                                                       store: str) -> None:
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    config = _with_tls(configured(tmp_path / "gw", pki, store), garbage, pki.server_key)
    assert refused(gateway(config)) == (
        f"Configuration key 'tls.certificate' names {str(garbage)!r}, which holds no PEM certificate.")


def test_a_key_file_without_a_key_names_tls_private_key(tmp_path: Path, pki: PKIFiles, store: str) -> None:
    config = _with_tls(configured(tmp_path / "gw", pki, store), pki.server_cert, pki.server_cert)
    assert refused(gateway(config)) == (
        f"Configuration key 'tls.private_key' names {str(pki.server_cert)!r}, which holds no PEM private key.")


# --- listeners ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_names_the_listener_key_and_address(tmp_path: Path, pki: PKIFiles, store: str,
                                                          workers: int) -> None:
    process = configured(tmp_path / "gw", pki, store, workers=workers)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", process.imap_port))
        taken.listen()
        line = refused(gateway(process.config_path))
    assert line == (f"Configuration key 'imap.listen' names an address the gateway cannot listen on "
                    f"(127.0.0.1:{process.imap_port}: address already in use).")


def test_an_address_of_no_local_interface_names_the_listener_key(tmp_path: Path, pki: PKIFiles,
                                                                  store: str) -> None:
    process = configured(tmp_path / "gw", pki, store)
    text = process.config_path.read_text(encoding="utf-8")
    port = process.smtp_port
    process.config_path.write_text(text.replace(f'submission = "127.0.0.1:{port}"',
                                                f'submission = "192.0.2.1:{port}"'), encoding="utf-8")
    assert refused(gateway(process.config_path)) == (
        f"Configuration key 'smtp.submission' names an address the gateway cannot listen on "
        f"(192.0.2.1:{port}: cannot assign requested address).")


def test_a_certificate_not_yet_valid_names_tls_certificate(tmp_path: Path, pki: PKIFiles, store: str) -> None:
    cert, key = _self_signed(tmp_path / "other", days=(2, 30))
    start = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_before_utc
    config = _with_tls(configured(tmp_path / "gw", pki, store), cert, key)
    assert refused(gateway(config)) == (
        f"Configuration key 'tls.certificate' names a certificate that is not valid before "
        f"{start:%Y-%m-%d %H:%M} UTC ({cert}).")


# --- database.url's form, checked when the file is read ---------------------------------------------------
@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite+aiosqlite://", "must name a SQLite file"),
    ("sqlite+aiosqlite:///:memory:", "must name a SQLite file"),
    ("postgresql+asyncpg://gateway@db.example:5432", "must name a server and a database"),
    ("postgresql+asyncpg:///gateway", "must name a server and a database"),
])
def test_a_database_url_that_names_no_store_is_refused_when_read(tmp_path: Path, pki: PKIFiles, url: str,
                                                                  expected: str) -> None:
    process = configured(tmp_path / "gw", pki, url)
    line = refused(gateway(process.config_path, command="migrate"))
    assert line.startswith(f"Configuration key 'database.url' {expected}, as ")


def test_a_postgresql_url_through_a_socket_folder_is_accepted(tmp_path: Path, pki: PKIFiles) -> None:
    from gateway.config import load

    url = "postgresql+asyncpg://gateway@/gateway?host=/run/postgresql"
    assert load(configured(tmp_path / "gw", pki, url).config_path).database_url == url


# --- gateway init -------------------------------------------------------------------------------------------
def test_init_creates_the_store_its_kept_configuration_names(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = subprocess.run([sys.executable, "-m", "gateway.cli", "init", "--data", str(data)],
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    store = data / "gateway.sqlite3"
    assert store.is_file()
    store.unlink()
    again = subprocess.run([sys.executable, "-m", "gateway.cli", "init", "--data", str(data)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert store.is_file()
    migrated = gateway(data / "gateway.toml", command="migrate")
    assert migrated.returncode == 0, migrated.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_card_endpoint_port_in_use_names_card_listen(tmp_path: Path, pki: PKIFiles, store: str,
                                                       workers: int) -> None:
    """The card endpoint binds in worker 0 (not in the supervisor): its refusal names the key too."""
    port = free_port()
    process = configured(tmp_path / "gw", pki, store, workers=workers,
                         extra=f'[card]\nlisten = "127.0.0.1:{port}"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = gateway(process.config_path)
    sentence = (f"gateway: Configuration key 'card.listen' names an address the gateway cannot listen on "
                f"(127.0.0.1:{port}: address already in use).")
    assert done.returncode == 2 and sentence in done.stderr.splitlines(), done.stderr
    assert "Traceback" not in done.stderr
