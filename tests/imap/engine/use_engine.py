"""Pytest plugin: run the IMAP integration tests of tests/imap against gateway.imap.engine.

``pytest -p imap.engine.use_engine tests/imap/test_imap_mail.py``: the in-process harness starts the new
engine's ``start_imap``, and gateway processes started by the tests load it through ``site/sitecustomize.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import imap.imap_support as support

    from gateway.imap.engine import server

    support.start_imap = server.start_imap  # type: ignore[assignment]
    support.ImapService = server.ImapService  # type: ignore[misc,assignment]
    site = Path(__file__).parent / "site"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
