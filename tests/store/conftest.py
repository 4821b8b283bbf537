"""Fixtures of the store's tests: a bare SQLite file in WAL mode, for the one-hop reader and writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest


@pytest.fixture
def wal_database(tmp_path: Path) -> str:
    """A SQLite file in WAL mode with one empty table ``t (v INTEGER)``, every connection to it closed."""
    path = str(tmp_path / "store.sqlite3")
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (v INTEGER)")
    connection.commit()
    connection.close()
    return path
