"""Fixtures of the card tests: the PC/SC stack (see cardkit) and the gateway's card endpoint."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from card.cardkit import _SOCKET_DIR, CardGateway, PcscStack, make_card_gateway, missing_pieces
from support.pki import PKIFiles


@pytest.fixture
def pcsc(tmp_path: Path) -> Iterator[PcscStack]:
    missing = missing_pieces()
    if missing:
        pytest.skip("The PC/SC test stack is not installed here (missing: " + ", ".join(missing)
                    + "); .ci/setup.d/40-pcsc.sh installs it.")
    os.environ["PCSCLITE_CSOCK_NAME"] = str(_SOCKET_DIR / "pcscd.comm")
    stack = PcscStack(tmp_path / "pcsc")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def card_gateway(sqlite_url: str, pki: PKIFiles, tmp_path: Path) -> AsyncIterator[CardGateway]:
    """A listening card endpoint on a fresh SQLite store."""
    gw = await make_card_gateway(sqlite_url, pki, tmp_path / "gw")
    await gw.listen()
    yield gw
    await gw.close()
