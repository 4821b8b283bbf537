"""The console's *À classer* page lists a document the DPI refused, with the DPI's error (R10), through HTTPS with
a real client, as staff see it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.console import ConsoleServer, get, login, start_console, stop_console, write_config
from support.hl7_peer import BIO
from support.pki import PKIFiles

from gateway.documents.cda import read_header
from gateway.hl7.relay import DPI_REFUSED, _review_refusal
from gateway.ins_matching import identities
from gateway.ins_matching.insi import TEST_PATIENT
from gateway.ins_matching.record import file_document


@pytest.fixture
async def console(tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> AsyncIterator[ConsoleServer]:
    server = await start_console(write_config(tmp_path / "gw", pki, sqlite_url), pki)
    yield server
    await stop_console(server)


async def test_r10_the_review_page_lists_the_dpi_refusal_with_its_error(console: ConsoleServer) -> None:
    content = BIO.read_bytes()
    async with console.sessions() as session, session.begin():
        identity_id = await identities.add_identity(session, TEST_PATIENT.matricule, TEST_PATIENT.oid,
                                                    TEST_PATIENT.traits, "test", allow_test=True)
        document_id = await file_document(session, identity_id, content, read_header(content, validate=False))
        review_id = await _review_refusal(session, 1, document_id, "dpi", "AR", "902 Identifiant patient inconnu")
    assert review_id is not None
    user = await console.add_user("secretariat")
    async with console.client() as client:
        await login(client, user)
        _, page, _ = await get(client, "/a-classer")
    table = page[page.index('id="file"'):]
    assert "Refusé par le DPI « dpi » (AR) : 902 Identifiant patient inconnu" in table
    assert f'code-{DPI_REFUSED}' in table
