"""Fixtures of the IMAP tests: an in-process IMAP service on real sockets with real TLS (see imap_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imap.imap_support import ALICE, BOB, ImapHarness, make_harness
from support.pki import PKIFiles


@pytest.fixture
def imap(store_url: str, pki: PKIFiles) -> Iterator[ImapHarness]:
    """An IMAP service with two accounts (alice, bob) on SQLite and on PostgreSQL."""
    harness = make_harness(store_url, pki)
    harness.add_account(ALICE)
    harness.add_account(BOB)
    yield harness
    harness.stop()


@pytest.fixture
def imap_sqlite(tmp_path: Path, pki: PKIFiles) -> Iterator[ImapHarness]:
    harness = make_harness(f"sqlite+aiosqlite:///{tmp_path / 'imap.sqlite3'}", pki)
    harness.add_account(ALICE)
    harness.add_account(BOB)
    yield harness
    harness.stop()
