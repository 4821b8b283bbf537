"""SMTP fixtures: accounts on the running gateway, a gateway with its own [limits], and raw TLS sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.smtp_session import RawSession, add_people, with_limits, with_settings
from support.store import Store


@pytest.fixture
def accounts(gateway: GatewayProcess) -> Store:
    return add_people(Store(gateway.store_url))


@pytest.fixture
def limited_gateway(tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> Iterator[Callable[..., GatewayProcess]]:
    """A factory: a gateway on SQLite with the given [limits] keys, its accounts created, stopped afterwards."""
    started: list[GatewayProcess] = []

    def make(message_size: int = 1_048_576, **limits: object) -> GatewayProcess:
        store = Store(sqlite_url)
        add_people(store)
        process = GatewayProcess(tmp_path / f"gw{len(started)}", pki, sqlite_url, message_size=message_size)
        with_settings(with_limits(process, **limits), "gateway", workers=1)  # one process: one anvil
        started.append(process.start())
        return process

    yield make
    for process in started:
        process.stop()
        print("\n".join(process.log_lines[-30:]))


@pytest.fixture
def raw_session(gateway: GatewayProcess) -> Iterator[Callable[[], RawSession]]:
    opened: list[RawSession] = []

    def make() -> RawSession:
        session = RawSession(gateway)
        opened.append(session)
        return session

    yield make
    for session in opened:
        session.close()
