"""Fixtures for tests of the daemon's worker processes (gateway/process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.mail import PRO, PRO2
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.store import Store
from support.workers import PASSWORD, configure


@pytest.fixture
def store(store_url: str) -> Store:
    store = Store(store_url)
    store.add_mailbox(PRO, "PER", PASSWORD)
    store.add_mailbox(PRO2, "PER", PASSWORD)
    return store


@pytest.fixture
def make_daemon(tmp_path: Path, pki: PKIFiles, store_url: str, store: Store) -> Iterator[Callable[..., GatewayProcess]]:
    """Build (not start) daemons with ``[gateway]`` keys; each is stopped at the end of the test."""
    made: list[GatewayProcess] = []

    def make(name: str = "gw", **keys: Any) -> GatewayProcess:
        process = GatewayProcess(tmp_path / name, pki, store_url)
        configure(process, **{"workers": 2, **keys})
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()
        print("\n".join(process.log_lines[-40:]))  # shown by pytest only when the test failed
