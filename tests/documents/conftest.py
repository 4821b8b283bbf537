"""Fixtures of the documents tests (helpers live in documents/helpers.py, importable as documents.helpers)."""

from __future__ import annotations

import pytest
from documents.helpers import BIO


@pytest.fixture
def bio() -> bytes:
    """The CR-BIO lab report sample (11502-2) for the ANS test patient."""
    return BIO.read_bytes()
