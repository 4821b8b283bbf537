"""Fixtures of the engine tests: gateway.imap.engine on real sockets with real TLS, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imap.engine.engine_support import EngineHarness, make_engine
from support.pki import PKIFiles


@pytest.fixture
def engine(store_url: str, pki: PKIFiles) -> Iterator[EngineHarness]:
    harness = make_engine(store_url, pki)
    yield harness
    harness.stop()


@pytest.fixture
def engine_sqlite(tmp_path: Path, pki: PKIFiles) -> Iterator[EngineHarness]:
    harness = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'imap.sqlite3'}", pki)
    yield harness
    harness.stop()
