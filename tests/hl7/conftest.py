"""Fixtures of the HL7 tests: a `gateway dmp-simulator` process with certificates of the test PKI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dmp_bridge.test_end_to_end import SimulatorProcess
from support.pki import PKIFiles


@pytest.fixture
def dmp(tmp_path: Path, pki: PKIFiles) -> Iterator[dict[str, Any]]:
    folder = tmp_path / "dmp"
    folder.mkdir()
    pki.pki.server("localhost").write(folder / "dmp.crt", folder / "dmp.key")
    client, signer = pki.pki.software("structure-tls"), pki.pki.signing("structure-signing")
    client.write(folder / "client.crt", folder / "client.key")
    signer.write(folder / "signing.crt", folder / "signing.key")
    simulator = SimulatorProcess(folder, pki.ca_bundle)
    simulator.start()
    yield {"url": f"https://localhost:{simulator.port}", "folder": folder, "client": client, "signer": signer,
           "simulator": simulator}
    simulator.stop()
