"""The Annuaire Santé simulator as a separate process for the directory tests, and its test data."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from support.pki import PKIFiles

from gateway.directory.client import API_KEY_HEADER, DirectoryClient, Limits

API_KEY = "test-esante-api-key-0123456789"

#: A biologist (SM03) at the lab, two general practitioners named MARTIN in Lyon and Paris, a nurse whose
#: mailbox is red-listed, an organisation mailbox, and a remote operator's published professional.
DATA = """
[[organisation]]
id = "lab-charmes"
identifier = "1120459876"
name = "Laboratoire des charmes"
city = "Paris"
postal_code = "75011"
mailboxes = [{ address = "accueil@labo-charmes.mssante.test", type = "ORG" }]

[[organisation]]
id = "cabinet-lyon"
identifier = "1690000001"
name = "Cabinet de la Croix-Rousse"
city = "Lyon"

[[professional]]
national_id = "801234534765"
family = "CAMPARINI"
given = "Marcel"
profession = "21"
specialty = "SM03"
mailboxes = ["marcel.camparini@labo-charmes.mssante.test"]
organisations = ["lab-charmes"]

[[professional]]
national_id = "810000000101"
family = "MARTIN"
given = "Sophie"
profession = "10"
specialty = "SM54"
mailboxes = ["sophie.martin@pro.b.test"]
organisations = ["cabinet-lyon"]

[[professional]]
national_id = "810000000202"
family = "MARTIN"
given = "Paul"
profession = "10"
specialty = "SM26"
mailboxes = ["paul.martin@labo-charmes.mssante.test"]
organisations = ["lab-charmes"]

[[professional]]
national_id = "810000000303"
family = "SOIGNANT"
given = "Claire"
profession = "60"
mailboxes = [{ address = "claire.soignant@pro.b.test", type = "PER", red_list = true }]
organisations = ["cabinet-lyon"]
"""


class SimulatorProcess:
    """``gateway directory-simulator`` in its own process, on a free port, over HTTPS with the test PKI."""

    def __init__(self, folder: Path, pki: PKIFiles, data: str = DATA, page_size: int = 50) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.data_path = folder / "annuaire.toml"
        self.data_path.write_text(data, encoding="utf-8")
        self.key_path = folder / "esante-api-key"
        self.key_path.write_text(API_KEY + "\n", encoding="utf-8")
        self.page_size = page_size
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self, listen: str = "127.0.0.1:0") -> SimulatorProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "directory-simulator", "--listen", listen,
             "--certificate", str(self.pki.server_cert), "--key", str(self.pki.server_key), "--api-key", API_KEY,
             "--data", str(self.data_path), "--page-size", str(self.page_size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        found = threading.Event()

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                if "listening on" in line:
                    self.base_url = line.rsplit(" ", 1)[1].strip()
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(30):
            self.stop()
            raise RuntimeError("the directory simulator did not start")
        return self

    @property
    def port(self) -> int:
        return int(self.base_url.split(":")[2].split("/")[0])

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_bundle))

    def client(self, **options: object) -> DirectoryClient:
        limits = options.pop("limits", None)
        return DirectoryClient(self.base_url, API_KEY, ssl_context=self.context(),
                               limits=limits if isinstance(limits, Limits) else None, **options)  # type: ignore[arg-type]

    def fault(self, mode: str, count: int = 1) -> None:
        """Queue ``count`` faults (0: clear the queue) through the simulator's admin endpoint."""
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context(), timeout=10)
        try:
            connection.request("POST", "/_admin/fault", json.dumps({"mode": mode, "count": count}),
                               {API_KEY_HEADER: API_KEY, "Content-Type": "application/json"})
            assert connection.getresponse().status == 200
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
