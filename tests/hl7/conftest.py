"""Fixtures of the HL7 tests: a `gateway dmp-simulator` process with certificates of the test PKI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.dmp_simulator import SimulatorProcess
from support.pki import PKIFiles


@pytest.fixture
def dmp(tmp_path: Path, pki: PKIFiles) -> Iterator[dict[str, Any]]:
    yield from SimulatorProcess.fixture(tmp_path / "dmp", pki)
