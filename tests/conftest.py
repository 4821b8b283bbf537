"""Fixtures shared by the whole suite: a PKI, a store (SQLite and PostgreSQL), and running gateways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pki import PKIFiles, make_pki
from support.postgres import database
from support.process import GatewayProcess
from support.store import Store

from gateway.samples import samples_dir

SAMPLES = samples_dir()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKIFiles:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The suite's two stores: embedded SQLite and a real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
    else:
        yield from database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"


@pytest.fixture
def store(store_url: str) -> Store:
    return Store(store_url)


@pytest.fixture
def gateway(tmp_path: Path, pki: PKIFiles, store_url: str) -> Iterator[GatewayProcess]:
    """A running gateway process on the parametrised store."""
    process = GatewayProcess(tmp_path / "gw", pki, store_url)
    Store(store_url).run(_noop)  # migrate before the daemon starts, as an operator would
    process.start()
    yield process
    process.stop()
    print("\n".join(process.log_lines[-40:]))  # shown by pytest only when the test failed


async def _noop(_session: object) -> None:
    return None
