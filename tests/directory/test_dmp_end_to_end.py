"""The whole path with the directory configured: a running gateway whose ``[[dmp.professional]]`` names no role
nor specialty deposits the biologist's lab report with the profession, specialty and structure the Annuaire
Santé publishes (R15), found again by ITI-18; the DMP simulator and the directory simulator are processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from directory.directory_support import SimulatorProcess
from dmp_bridge.dmp_support import BIOLOGIST, MATRICULE, TEST_OID, policy
from dmp_bridge.test_end_to_end import BIO, PATIENT, SENDER, deposits, dmp, dmp_config, submission
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.outbox import ACCEPTED
from gateway.dmp_bridge.soap import DmpClient, Endpoint, client_ssl_context

__all__ = ["dmp"]  # the DMP simulator process fixture, shared with the DMP bridge's end-to-end tests
#: Every test here starts gateway processes and simulators: not in make test-fast.
pytestmark = pytest.mark.slow


def test_r15_a_deposit_by_the_running_gateway_carries_the_directorys_specialty(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any], annuaire: SimulatorProcess) -> None:
    store = Store(store_url)
    store.add_mailbox(SENDER, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()
    config = dmp_config(dmp, pki.ca_bundle).replace('role = "10"\n', "").replace('specialty = "SM26"\n', "")
    assert "role =" not in config and "specialty =" not in config  # the directory is the only source
    config += (f'\n[directory]\nbase_url = "{annuaire.base_url}"\napi_key_file = "{annuaire.key_path}"\n'
               f'ca_file = "{pki.ca_bundle}"\n')
    gateway = GatewayProcess(tmp_path / "gw", pki, store_url, message_size=5_000_000, extra_config=config)
    gateway.start()
    try:
        with gateway.smtp(SENDER) as client:
            client.sendmail(SENDER, [PATIENT], submission(BIO.read_bytes()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(d.state == ACCEPTED for d in deposits(store)):
            time.sleep(0.2)
        jobs = deposits(store)
        assert [d.state for d in jobs] == [ACCEPTED], ([(d.state, d.last_error) for d in jobs],
                                                       "\n".join(gateway.log_lines[-20:]))
    finally:
        gateway.stop()

    async def query() -> list[dict[str, Any]]:
        endpoint = Endpoint(f"{dmp['url']}/repository", f"{dmp['url']}/registry",
                            client_ssl_context(dmp["client"], pki.ca_bundle.read_bytes()))
        async with DmpClient(endpoint, dmp["client"]) as client:
            return await Depositor(client, dmp["signer"], policy()).find(BIOLOGIST, MATRICULE, TEST_OID)

    [entry] = asyncio.run(query())
    assert entry["authorSpecialty"] == [f"SM03^Biologie médicale^{c.OID_SPECIALTY}"]
    assert entry["authorRole"] == [f"21^Pharmacien^{c.OID_PROFESSION}"]
    assert entry["authorInstitution"][0].startswith("Laboratoire des charmes^")
