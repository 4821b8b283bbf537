"""A real gateway process (``gateway serve``) on loopback ports, with its configuration written for the test."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from support.pki import HOSTNAME, PKIFiles
from support.ports import free_port

READY_TIMEOUT = 60.0


def accepts(port: int) -> bool:
    """Whether something listens on ``port`` of the loopback address."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def create_store(url: str) -> None:
    """Create and migrate a SQLite store not made yet, as an operator does with ``gateway migrate --create``
    (the daemon refuses a store that does not exist); a PostgreSQL test database is made by its fixture."""
    from gateway.store import db

    path = db.sqlite_path(url) if db.is_sqlite(url) else None
    if path is not None and not path.exists():
        db.migrate_sync(url)


CONFIG = """\
[gateway]
hostname = "{hostname}"
domains = ["pro.gateway.test"]
patient_domain = "patient.gateway.test"
log_level = "{log_level}"

[database]
url = "{url}"

[tls]
certificate = "{cert}"
private_key = "{key}"
client_ca = "{ca}"

[smtp]
submission = "127.0.0.1:{smtp}"
submissions = "127.0.0.1:{smtps}"

[imap]
listen = "127.0.0.1:{imap}"
listen_tls = "127.0.0.1:{imaps}"

[limits]
message_size = {message_size}
failed_logins = 3
failed_login_window = 600

[rules]
allow_test_identities = true
patients_may_write_first = ["pharmacie@pro.gateway.test"]
{extra}
"""


class GatewayProcess:
    """Starts, stops and kills one gateway process; exposes its ports and TLS clients for tests."""

    def __init__(self, folder: Path, pki: PKIFiles, store_url: str, *, message_size: int = 1_048_576,
                 extra_config: str = "", log_level: str = "info") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.pki = pki
        self.store_url = store_url
        self.smtp_port, self.smtps_port = free_port(), free_port()
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.config_path = folder / "gateway.toml"
        self.config_path.write_text(CONFIG.format(
            hostname=HOSTNAME, url=store_url, cert=pki.server_cert, key=pki.server_key, ca=pki.ca_bundle,
            smtp=self.smtp_port, smtps=self.smtps_port, imap=self.imap_port, imaps=self.imaps_port,
            message_size=message_size, extra=extra_config, log_level=log_level), encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self.log_lines: list[str] = []
        self._ready = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> GatewayProcess:
        self._ready.clear()
        create_store(self.store_url)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        threading.Thread(target=self._read_log, args=(self.process,), daemon=True).start()
        if not self._wait_ready():
            self.kill()
            raise RuntimeError("gateway did not become ready:\n" + "\n".join(self.log_lines[-30:]))
        return self

    def _listening_ports(self) -> list[int]:
        """The ports the written configuration asks the gateway to listen on (subclasses may omit IMAP)."""
        text = self.config_path.read_text(encoding="utf-8")
        ports = (self.smtp_port, self.smtps_port, self.imap_port, self.imaps_port)
        return [port for port in ports if f":{port}\"" in text]

    def _wait_ready(self) -> bool:
        """Ready = the "ready" log line, or (quieter log levels) every SMTP port accepting connections."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._ready.wait(0.05):
                return self.process is not None and self.process.poll() is None
            if self.process is not None and self.process.poll() is not None:
                return False
            if all(accepts(port) for port in self._listening_ports()):
                return True
        return False

    def _read_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log_lines.append(line)
            if '"event": "ready"' in line and process is self.process:
                self._ready.set()
        # Process ended: wake start() so it reports the failure. Not for a previous process of this object,
        # whose stderr ends only when its last worker process is gone, maybe after a restart began.
        if process is self.process:
            self._ready.set()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the gateway; its worker processes notice and end by themselves: wait for them too, so a
        start() that follows never shares its listening ports (SO_REUSEPORT) with a worker about to exit."""
        if self.process and self.process.poll() is None:
            try:
                workers = psutil.Process(self.process.pid).children(recursive=True)
            except psutil.Error:
                workers = []
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(20)
            psutil.wait_procs(workers, timeout=20)

    def restart(self) -> GatewayProcess:
        self.stop()
        return self.start()

    # --- clients --------------------------------------------------------------------------------------------
    def client_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_bundle))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def smtp(self, user: str | None = None, password: str = "secret-password", implicit: bool = False,
             timeout: float = 30) -> smtplib.SMTP:
        """An SMTP client over TLS (STARTTLS, or implicit TLS), logged in as ``user`` when given."""
        client: smtplib.SMTP
        if implicit:
            client = smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, context=self.client_tls(), timeout=timeout)
        else:
            client = smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=timeout)
            client.starttls(context=self.client_tls())
        client.ehlo("client.test")
        if user is not None:
            client.login(user, password)
        return client

    def wait_log(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines:
                if needle in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"no log line with {needle!r}")
