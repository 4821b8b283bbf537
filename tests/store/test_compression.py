"""PostgreSQL stores the large columns with LZ4 (migration store_0002): a message's bytes read back as stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from support.postgres import database
from support.store import Store

from gateway.store.mailstore import StoredMessage, store_message
from gateway.store.migrations.versions.store_0002_lz4_compression import COLUMNS, METHODS


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from database()


def test_the_large_columns_use_lz4_and_a_message_reads_back_unchanged(postgres_url: str) -> None:
    store = Store(postgres_url)
    sender = store.add_mailbox("dr.lz4@pro.gateway.test")
    body = b"Compte rendu de consultation, texte courant qui se comprime bien.\r\n" * 4000  # ~270 KB
    raw = b"From: dr.lz4@pro.gateway.test\r\nSubject: lz4\r\n\r\n" + body

    async def work(session: Any) -> tuple[bool, dict[tuple[str, str], str], bytes, str | None, int]:
        available = "lz4" in ((await session.execute(text(METHODS))).scalar() or [])
        methods = {(r.table, r.column): r.method for r in (await session.execute(text(
            "SELECT c.relname AS table, a.attname AS column, a.attcompression::text AS method FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relkind = 'r' AND a.attnum > 0"))).all()}
        message_id = await store_message(session, StoredMessage(
            raw=raw, mail_from="dr.lz4@pro.gateway.test", rcpt_to=["x@pro.gateway.test"], sender_mailbox_id=sender,
            message_id_header=None, subject="lz4", header_from="dr.lz4@pro.gateway.test"))
        row = (await session.execute(text(
            "SELECT raw, pg_column_compression(raw) AS method, pg_column_size(raw) AS size FROM messages "
            "WHERE id = :id"), {"id": message_id})).one()
        return available, methods, bytes(row.raw), row.method, int(row.size)

    available, methods, stored, method, size = store.run(work)
    assert stored == raw
    if not available:  # a server built without LZ4 keeps its default: nothing to assert beyond the bytes
        pytest.skip("this PostgreSQL server has no LZ4")
    assert {methods[c] for c in COLUMNS} == {"l"}
    assert method == "lz4" and size < len(raw) // 10
