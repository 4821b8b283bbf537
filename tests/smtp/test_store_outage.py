"""The store goes away mid-session: every SMTP phase answers a temporary 4xx with a fixed text, each reply line
well formed, no SQL or exception text to the client, and the exception logged as one JSON event.

The gateway runs on a throwaway PostgreSQL cluster of its own (another port, stopped with pg_ctl), so the
suite's shared server is never touched."""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mail import PRO, PRO2, message
from support.pki import PKIFiles
from support.process import GatewayProcess, free_port
from support.smtp_session import PRO3, RawSession, add_people, with_settings
from support.store import Store

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

PG_USER = "gateway-pg"


class Cluster:
    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not binaries or os.geteuid() != 0 or shutil.which("su") is None:
            pytest.skip("needs root and PostgreSQL's pg_ctl (.ci/setup.d/10-postgres.sh installs it)")
        if subprocess.run(["id", PG_USER], capture_output=True).returncode != 0:
            pytest.skip(f"needs the {PG_USER} system user (.ci/setup.d/10-postgres.sh creates it)")
        self.bin = Path(binaries[-1]).parent
        self.folder = Path(tempfile.mkdtemp(prefix="gateway-outage-pg-"))
        shutil.chown(self.folder, PG_USER)
        self.port = free_port()
        self.url = f"postgresql+asyncpg://gateway@127.0.0.1:{self.port}/postgres"
        self._as_pg(f"{self.bin}/initdb -D {self.folder}/data -U gateway --auth=trust -E UTF8")

    def _as_pg(self, command: str) -> None:
        subprocess.run(["su", PG_USER, "-s", "/bin/sh", "-c", command], check=True, capture_output=True,
                       timeout=120)

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder}"
        self._as_pg(f"{self.bin}/pg_ctl -D {self.folder}/data -l {self.folder}/log -w -o '{options}' start")

    def stop(self) -> None:
        self._as_pg(f"{self.bin}/pg_ctl -D {self.folder}/data -m fast -w stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    cluster.start()
    yield cluster
    cluster.remove()


def temporary(lines: list[bytes], first_digit: bytes = b"4") -> bool:
    text = b"".join(lines).lower()
    return (all(line[:1] == first_digit for line in lines)
            and not any(word in text for word in (b"sql", b"asyncpg", b"exception", b"traceback", b"connection")))


def test_store_down_in_rcpt_auth_mail_and_data_answers_only_temporary_replies(
        tmp_path: Path, pki: PKIFiles, cluster: Cluster):
    store = add_people(Store(cluster.url))
    gateway = with_settings(GatewayProcess(tmp_path / "gw", pki, cluster.url), "gateway", workers=1).start()
    try:
        in_rcpt, in_data, in_mail = RawSession(gateway), RawSession(gateway), RawSession(gateway)
        for session in (in_rcpt, in_data, in_mail):
            session.login(PRO)
        in_auth = RawSession(gateway)
        assert in_auth.command("EHLO client.test")[-1].startswith(b"250 ")
        in_rcpt.command(f"MAIL FROM:<{PRO}>")
        in_data.command(f"MAIL FROM:<{PRO}>")
        assert in_data.command(f"RCPT TO:<{PRO2}>")[0].startswith(b"250 ")

        cluster.stop()

        reply = in_rcpt.command(f"RCPT TO:<{PRO3}>")
        assert reply[0].startswith(b"451 4.3.0") and temporary(reply)
        token = base64.b64encode(f"\0{PRO2}\0secret-password".encode()).decode()  # never logged in: not cached
        reply = in_auth.command(f"AUTH PLAIN {token}")
        assert reply[0].startswith(b"454 4.7.0") and temporary(reply)
        reply = in_mail.command(f"MAIL FROM:<{PRO}>")  # needs no store: accepted, or a temporary refusal
        assert reply[0][:1] in (b"2", b"4")
        reply = in_mail.command(f"RCPT TO:<{PRO2}>")
        assert reply[0].startswith(b"451 4.3.0") and temporary(reply)
        assert in_data.command("DATA")[0].startswith(b"354 ")
        in_data.send(message(PRO, PRO2) + b".\r\n")
        reply = in_data.reply()
        assert reply[0].startswith(b"451 4.3.0") and temporary(reply)
        for session in (in_rcpt, in_auth, in_mail, in_data):  # still in step after the failure
            assert session.command("NOOP")[0].startswith(b"250 ")
            assert session.command("QUIT")[0].startswith(b"221 ")

        events = [json.loads(line) for line in gateway.log_lines if line.startswith("{")]
        failures = [e for e in events if e.get("event") == "smtp.unexpected_error"]
        assert {e["command"] for e in failures} >= {"RCPT", "AUTH"}
        assert all("exception" in e and e["client"] == "127.0.0.1" for e in failures)

        cluster.start()  # the store is back: mail flows again without restarting the gateway
        with gateway.smtp(PRO) as client:
            client.sendmail(PRO, [PRO2], message(PRO, PRO2))
        assert len(store.messages_in(PRO2)) == 1
    finally:
        gateway.stop()
