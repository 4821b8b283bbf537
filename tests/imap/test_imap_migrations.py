"""The IMAP migrations: they match the models, and ``seen`` is filled from the flags of existing deliveries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text
from support.migrations import migration_differences, upgrade_to

from gateway.store import db

ROWS = [("", False), ("\\Seen", True), ("\\Answered \\Seen", True), ("\\Seen $Label1", True), ("$Seen", False),
        ("\\Flagged", False)]


async def _upgrade_with_old_rows(url: str) -> list[tuple[str, bool]]:
    await upgrade_to(url, "imap_0001")
    engine = db.create_engine(url)
    try:
        async with engine.begin() as connection:
            now = {"now": datetime(2026, 11, 22, 10, tzinfo=UTC)}
            await connection.execute(text(
                "INSERT INTO mailboxes (id, address, kind, display_name, active, created_at) "
                "VALUES (1, 'a@pro.gateway.test', 'PER', '', true, :now)"), now)
            await connection.execute(text(
                "INSERT INTO folders (id, mailbox_id, name, uidvalidity, uidnext, highestmodseq, subscribed) "
                "VALUES (1, 1, 'INBOX', 1, 7, 7, true)"))
            await connection.execute(text(
                "INSERT INTO messages (id, received_at, mail_from, rcpt_to, size, raw) "
                "VALUES (1, :now, '', '[]', 1, :raw)"), {**now, "raw": b"x"})
            for uid, (flags, _) in enumerate(ROWS, 1):
                await connection.execute(text(
                    "INSERT INTO deliveries (folder_id, message_id, uid, flags, modseq, internal_date) "
                    "VALUES (1, 1, :uid, :flags, :uid, :now)"), {"uid": uid, "flags": flags, **now})
        await db.migrate(url)
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT flags, seen FROM deliveries ORDER BY uid"))
            return [(row.flags, bool(row.seen)) for row in rows]
    finally:
        await engine.dispose()


def test_imap_0002_fills_seen_from_the_flags_of_existing_deliveries(store_url: str) -> None:
    assert asyncio.run(_upgrade_with_old_rows(store_url)) == ROWS


def test_imap_migrations_match_the_models(store_url: str) -> None:
    import gateway.imap.models  # noqa: F401  (registers imap_expunged and message_text_pending)

    assert migration_differences(store_url, ["deliveries", "folders", "imap_expunged", "message_text_pending"]) == []
