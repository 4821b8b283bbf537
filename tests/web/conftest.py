"""Fixtures of the console tests: a console in the test's event loop on each of the suite's stores (SQLite and
PostgreSQL), see tests/support/console.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.console import ConsoleServer, start_console, stop_console, write_config
from support.pki import PKIFiles


@pytest.fixture
async def console(tmp_path: Path, pki: PKIFiles, store_url: str) -> AsyncIterator[ConsoleServer]:
    server = await start_console(write_config(tmp_path / "gw", pki, store_url), pki)
    yield server
    await stop_console(server)

