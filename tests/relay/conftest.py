"""Fixtures of the relay tests: two operators A and B, each a real gateway with its own store and certificate."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pki import PKIFiles
from support.relay import Pair, make_pair, postgres_databases

POSTGRES_URL = os.environ.get("GATEWAY_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgres"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Two stores of the same kind, one per operator."""
    if request.param == "sqlite":
        yield [f"sqlite+aiosqlite:///{tmp_path / f'{n}.sqlite3'}" for n in ("a", "b")]
        return
    if not POSTGRES_URL:
        pytest.skip("GATEWAY_TEST_POSTGRES_URL is not set (.ci/setup.d/10-postgres.sh sets it in CI)")
    yield from postgres_databases(POSTGRES_URL, 2)


@pytest.fixture
def pair(tmp_path: Path, pki: PKIFiles, two_stores: list[str]) -> Iterator[Pair]:
    p = make_pair(tmp_path, pki, two_stores)
    yield p
    p.stop()
