"""Fixtures of the directory tests: the Annuaire Santé simulator in its own process over real HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from directory.directory_support import SimulatorProcess
from support.pki import PKIFiles


@pytest.fixture(scope="module")
def annuaire(tmp_path_factory: pytest.TempPathFactory, pki: PKIFiles) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(tmp_path_factory.mktemp("annuaire"), pki).start()
    yield sim
    sim.stop()


@pytest.fixture
def paged_annuaire(tmp_path: Path, pki: PKIFiles) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(tmp_path / "paged", pki, page_size=1).start()
    yield sim
    sim.stop()
