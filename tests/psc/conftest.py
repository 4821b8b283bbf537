"""A PSC simulator over HTTPS (in a thread of the test process) and a real gateway process trusting it."""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Iterator

import pytest
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.psc import Provider, psc_config, start_gateway

from gateway.psc.simulator import DEFAULT_DATA, Simulator, load_data, server_context

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def provider(pki: PKIFiles) -> Iterator[Provider]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sim = Simulator(*load_data(DEFAULT_DATA))
    asyncio.run_coroutine_threadsafe(
        sim.start("127.0.0.1", 0, server_context(pki.server_cert, pki.server_key)), loop).result(30)
    context = ssl.create_default_context(cafile=str(pki.ca_bundle))
    try:
        yield Provider(sim, context, loop)
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url_module(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('psc') / 'gateway.sqlite3'}"
        return
    if not POSTGRES_URL:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set (.ci/setup.d/10-postgres.sh sets it in CI)")
    from support.relay import postgres_databases

    yield from (urls[0] for urls in postgres_databases(POSTGRES_URL, 1))


@pytest.fixture(scope="module")
def gateway(provider: Provider, pki: PKIFiles, store_url_module: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One gateway per store for the module: PRO granted to marcel, PRO2 to jean."""
    process = start_gateway(tmp_path_factory.mktemp("gw"), pki, store_url_module, psc_config(provider, pki))
    yield process
    process.stop()
    print("\n".join(process.log_lines[-40:]))
