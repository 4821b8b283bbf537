"""The DMP simulator as a process (``gateway dmp-simulator``), for the tests that run the gateway as one too.

:class:`SimulatorProcess` can be stopped and started again on the same port and state file (a DMP that goes
down and comes back); :meth:`SimulatorProcess.with_certificates` writes its server certificate and the
structure's TLS and signing certificates from the test PKI, and :meth:`SimulatorProcess.fixture` is what the
``dmp`` fixtures of tests/dmp_bridge and tests/hl7 yield.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gateway.pki import Issued
from support.pki import PKIFiles
from support.process import accepts, free_port


class SimulatorProcess:
    """A `gateway dmp-simulator` process that can be stopped and started again on the same port and state."""

    def __init__(self, folder: Path, ca: Path, *, port: int | None = None, closed: Sequence[str] = (),
                 state_file: bool = True) -> None:
        self.folder, self.ca, self.port = folder, ca, port if port is not None else free_port()
        self.closed = tuple(closed)
        self.state_file = state_file
        self.process: subprocess.Popen[bytes] | None = None
        self.client: Issued | None = None
        self.signer: Issued | None = None

    @classmethod
    def with_certificates(cls, folder: Path, pki: PKIFiles, **options: Any) -> SimulatorProcess:
        """One in ``folder`` with ``dmp.crt`` (localhost), ``client.crt`` and ``signing.crt`` of the test PKI."""
        folder.mkdir(parents=True, exist_ok=True)
        pki.pki.server("localhost").write(folder / "dmp.crt", folder / "dmp.key")
        simulator = cls(folder, pki.ca_bundle, **options)
        simulator.client, simulator.signer = pki.pki.software("structure-tls"), pki.pki.signing("structure-signing")
        simulator.client.write(folder / "client.crt", folder / "client.key")
        simulator.signer.write(folder / "signing.crt", folder / "signing.key")
        return simulator

    @classmethod
    def fixture(cls, folder: Path, pki: PKIFiles) -> Iterator[dict[str, Any]]:
        """Started with certificates; yields url, folder, client, signer and the simulator; stopped after."""
        simulator = cls.with_certificates(folder, pki)
        simulator.start()
        try:
            yield {"url": simulator.url, "folder": folder, "client": simulator.client, "signer": simulator.signer,
                   "simulator": simulator}
        finally:
            simulator.stop()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def start(self, *faults: str) -> SimulatorProcess:
        command = [sys.executable, "-m", "gateway.cli", "dmp-simulator", "--listen", f"127.0.0.1:{self.port}",
                   "--certificate", str(self.folder / "dmp.crt"), "--key", str(self.folder / "dmp.key"),
                   "--ca", str(self.ca), *(f"--fault={fault}" for fault in faults)]
        if self.state_file:
            command += ["--state-file", str(self.folder / "state.json")]
        for matricule in self.closed:
            command += ["--closed", matricule]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not accepts(self.port) and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.05)
        assert accepts(self.port), "the DMP simulator did not start"
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
