"""Fixtures of the relay tests: two operators A and B, each a real gateway with its own store and certificate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pki import PKIFiles
from support.postgres import databases
from support.relay import Pair, make_pair


@pytest.fixture(params=["sqlite", "postgres"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Two stores of the same kind, one per operator."""
    if request.param == "sqlite":
        yield [f"sqlite+aiosqlite:///{tmp_path / f'{n}.sqlite3'}" for n in ("a", "b")]
        return
    yield from databases(2, "gw_relay")


@pytest.fixture
def pair(tmp_path: Path, pki: PKIFiles, two_stores: list[str]) -> Iterator[Pair]:
    p = make_pair(tmp_path, pki, two_stores)
    yield p
    p.stop()
