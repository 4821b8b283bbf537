"""Fixtures of the DMP bridge tests: a PKI with the simulator's server certificate, the structure's TLS client and
VIHF signing certificates, a running simulator over real HTTPS, and a depositor talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dmp_bridge.dmp_support import SCHEMA_DIR, DmpPKI, endpoint, make_dmp_pki, policy

from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.simulator import Simulator, serve
from gateway.dmp_bridge.soap import DmpClient


@pytest.fixture(scope="session")
def dmp_pki(tmp_path_factory: pytest.TempPathFactory) -> DmpPKI:
    return make_dmp_pki(tmp_path_factory.mktemp("dmp-pki"))


@pytest.fixture
async def simulator(dmp_pki: DmpPKI, tmp_path: Path) -> AsyncIterator[Simulator]:
    sim = await serve("127.0.0.1", 0, certificate=dmp_pki.server_cert, key=dmp_pki.server_key,
                      ca_bundle=dmp_pki.ca_bundle, schema_dir=SCHEMA_DIR, state_file=tmp_path / "dmp-state.json")
    yield sim
    await sim.stop()


@pytest.fixture
async def depositor(dmp_pki: DmpPKI, simulator: Simulator) -> AsyncIterator[Depositor]:
    client = DmpClient(endpoint(dmp_pki, simulator.url), dmp_pki.signer)
    yield Depositor(client, dmp_pki.signer, policy())
    await client.close()
