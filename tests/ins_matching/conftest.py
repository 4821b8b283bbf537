"""Fixtures of the matching and record tests (the document helpers live in documents/helpers.py)."""

from __future__ import annotations

import pytest
from documents.helpers import BIO


@pytest.fixture
def bio() -> bytes:
    """The CR-BIO lab report sample (11502-2) for the ANS test patient."""
    return BIO.read_bytes()
