"""The anatomy in the store (SQLite and PostgreSQL): written with the message, read by range, searched by index."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from support.migrations import migration_differences

from gateway.anatomy import codec
from gateway.anatomy.analyse import analyse
from gateway.imap.anatomy import render
from gateway.imap.anatomy.store import load_anatomies, read_range, search_text
from gateway.imap.proto.fetch import Section
from gateway.store import bulk, db, mailstore
from gateway.store.anatomy import MessageAnatomy
from gateway.store.models import Event

from .messages import MIXED, SIMPLE, nested

T = TypeVar("T")


def _run(url: str, work: Callable[[AsyncSession], Awaitable[T]], *, migrate: bool = True) -> T:
    async def main() -> T:
        if migrate:
            await db.migrate(url)
        engine = db.create_engine(url)
        try:
            async with db.sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()
    return asyncio.run(main())


def _message(raw: bytes) -> mailstore.StoredMessage:
    return mailstore.StoredMessage(raw=raw, mail_from="a@pro.gateway.test", rcpt_to=["b@pro.gateway.test"],
                                   sender_mailbox_id=None, message_id_header=None, subject=None, header_from=None)


async def _fill(session: AsyncSession) -> dict[str, Any]:
    mailbox = await mailstore.create_mailbox(session, "b@pro.gateway.test", "PER")
    inbox = await mailstore.folder_id(session, mailbox, "INBOX")
    sent = await mailstore.folder_id(session, mailbox, "Sent")
    ids = {}
    for name, raw in (("simple", SIMPLE), ("mixed", MIXED), ("deep", nested(100))):
        ids[name] = await mailstore.store_message(session, _message(raw))
        await mailstore.deliver(session, ids[name], inbox)
    (ids["bulk"],) = await bulk.apply(session, [bulk.Plan(
        _message(b"Subject: from the committer\r\nX-Tracking: Lot 42-B\r\n\r\nfiled by the group commit\r\n"),
        [bulk.Placement(mailbox, "Sent")], [])])
    return {"inbox": inbox, "sent": sent, **ids}


def test_every_stored_message_has_its_anatomy_written_in_the_same_transaction(store_url: str) -> None:
    async def work(session: AsyncSession) -> None:
        ids = await _fill(session)
        stored = await load_anatomies(session, [ids["simple"], ids["mixed"], ids["deep"], ids["bulk"]])
        assert stored[ids["mixed"]] == analyse(MIXED)
        assert stored[ids["deep"]].refused is not None and len(stored[ids["deep"]].parts) == 1
        count = (await session.execute(select(func.count()).select_from(MessageAnatomy))).scalar_one()
        assert count == 4
        flat = (await session.execute(select(Event).where(Event.kind == "imap.anatomy.flat"))).scalars().all()
        assert [e.message_id for e in flat] == [ids["deep"]]
    _run(store_url, work)


def test_sections_are_read_by_byte_range_from_the_database(store_url: str) -> None:
    async def work(session: AsyncSession) -> None:
        ids = await _fill(session)
        message_id = ids["mixed"]
        (anatomy,) = (await load_anatomies(session, [message_id])).values()

        async def read(start: int, end: int) -> bytes:
            return await read_range(session, message_id, start, end)

        for path, part in render.part_paths(anatomy):
            assert await render.section_bytes(anatomy, Section(path), read) == MIXED[part.body_start:part.body_end]
        assert await render.binary_bytes(anatomy, (3, 2), read) == b"\x00\x01\x02\xff\r\nraw"
        assert await read_range(session, message_id, 0, len(MIXED) + 100) == MIXED
        assert await read_range(session, message_id, 5, 5) == b""
        extract = render.section_extract(anatomy, Section((2,)))
        assert extract is not None
        start, end = extract.window(4, 8)
        assert await read_range(session, message_id, start, end) == MIXED[extract.start + 4:extract.start + 12]
    _run(store_url, work)


def test_search_fields_through_the_index(store_url: str) -> None:
    async def work(session: AsyncSession) -> None:
        ids = await _fill(session)
        inbox = ids["inbox"]

        async def find(needle: str, field: str, name: str | None = None, folder: int = inbox) -> set[int]:
            return await search_text(session, folder, needle, field, name)

        assert await find("RÉSULTAT", "BODY") == {ids["mixed"]}  # decoded quoted-printable, case-folded
        assert await find("compte rendu", "TEXT") == {ids["mixed"]}
        assert await find("B27397", "TEXT") == {ids["simple"]}  # a header field
        assert await find("B27397", "BODY") == set()
        assert await find("line of the minutes", "BODY") == {ids["simple"]}
        assert await find("50%_", "TEXT") == set()  # LIKE wildcards are literal
        assert await find('ab"cd', "TEXT") == set() and await find('"outer"', "TEXT") == {ids["mixed"]}
        assert await find("2:", "TEXT") == {ids["simple"]} and await find("qz", "TEXT") == set()  # < a trigram
        assert await find("", "BODY") == {ids["simple"], ids["mixed"], ids["deep"]}
        assert await find("résultats", "SUBJECT") == {ids["mixed"]}
        assert await find("klensin", "CC") == {ids["simple"]}
        assert await find("dr.demo@", "FROM") == {ids["mixed"]}
        assert await find("patient@", "TO") == {ids["mixed"]}
        assert await find("x", "BCC") == set()
        assert await find("lot 42", "HEADER", "X-Tracking", ids["sent"]) == {ids["bulk"]}
        assert await find("", "HEADER", "x-tracking", ids["sent"]) == {ids["bulk"]}
        assert await find("committer", "HEADER", "X-Tracking", ids["sent"]) == set()
        assert await find("filed by the group", "BODY", folder=ids["sent"]) == {ids["bulk"]}
        with pytest.raises(ValueError):
            await find("x", "NOPE")
    _run(store_url, work)


def test_a_message_stored_without_anatomy_is_analysed_when_read(store_url: str) -> None:
    async def work(session: AsyncSession) -> None:
        ids = await _fill(session)
        await session.execute(text("DELETE FROM message_anatomy WHERE message_id = :id"), {"id": ids["simple"]})
        await session.execute(text("UPDATE message_anatomy SET anatomy = :junk WHERE message_id = :id"),
                              {"junk": b"garbage", "id": ids["mixed"]})
        stored = await load_anatomies(session, [ids["simple"], ids["mixed"], 999_999])
        assert stored == {ids["simple"]: analyse(SIMPLE), ids["mixed"]: analyse(MIXED)}
    _run(store_url, work)


_FILL_SCRIPT = """
import asyncio, sys
from datetime import UTC, datetime
from sqlalchemy import text
from gateway.store import db
from alembic import command

url, count = sys.argv[1], int(sys.argv[2])
command.upgrade(db._alembic_config(url), "imap_0003")
async def main():
    engine = db.create_engine(url)
    async with engine.begin() as connection:
        when = datetime(2026, 11, 22, tzinfo=UTC)
        rows = [{"id": i, "now": when, "raw": b"Subject: old %d\\r\\n\\r\\nstored before" % i}
                for i in range(1, count + 1)]
        await connection.execute(text("INSERT INTO messages (id, received_at, mail_from, rcpt_to, size, raw) "
                                      "VALUES (:id, :now, '', '[]', 1, :raw)"), rows)
    await engine.dispose()
asyncio.run(main())
db.migrate_sync(url)
"""


@pytest.mark.slow  # starts a process
def test_imap_0004_fills_the_anatomy_of_messages_already_stored(store_url: str) -> None:
    done = subprocess.run([sys.executable, "-c", _FILL_SCRIPT, store_url, "1201"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "imap_0004: analysed 500/1201 messages" in done.stderr
    assert "imap_0004: analysed 1201/1201 messages (0 stored flat)" in done.stderr

    async def work(session: AsyncSession) -> None:
        count = (await session.execute(select(func.count()).select_from(MessageAnatomy))).scalar_one()
        assert count == 1201
        data = (await session.execute(
            select(MessageAnatomy.anatomy).where(MessageAnatomy.message_id == 1200))).scalar_one()
        assert codec.decode(data).root.envelope.subject == "old 1200"  # type: ignore[union-attr]
        mailbox = await mailstore.create_mailbox(session, "c@pro.gateway.test", "PER")
        inbox = await mailstore.folder_id(session, mailbox, "INBOX")
        await mailstore.deliver(session, 777, inbox, internal_date=datetime(2026, 11, 22, tzinfo=UTC))
        assert await search_text(session, inbox, "stored before", "BODY") == {777}
    _run(store_url, work, migrate=False)


def test_imap_0004_matches_the_model(store_url: str) -> None:
    assert migration_differences(store_url, ["message_anatomy"]) == []


def test_a_body_longer_than_the_index_takes_is_pending_for_good_by_every_insert_path(store_url: str) -> None:
    from gateway.store.anatomy import INDEXED_BODY_MAX, INLINE_BODY, MessageTextPending

    line = b"numeration formule sanguine sans anomalie\r\n"

    def mail(subject: str, size: int) -> bytes:
        return f"Subject: {subject}\r\n\r\n".encode() + line * (size // len(line) + 10) + b"Ferritine basse\r\n"

    async def work(session: AsyncSession) -> None:
        mailbox = await mailstore.create_mailbox(session, "b@pro.gateway.test", "PER")
        inbox = await mailstore.folder_id(session, mailbox, "INBOX")
        stored = {}
        for name, size in (("stored oversize", INDEXED_BODY_MAX), ("stored long", INLINE_BODY)):
            stored[name] = await mailstore.store_message(session, _message(mail(name, size)))
            await mailstore.deliver(session, stored[name], inbox)
        committed = await bulk.apply(session, [bulk.Plan(_message(mail(name, size)), [bulk.Placement(mailbox, "INBOX")],
                                                         []) for name, size in (("bulk oversize", INDEXED_BODY_MAX),
                                                                                ("bulk long", INLINE_BODY))])
        stored.update(zip(("bulk oversize", "bulk long"), committed, strict=True))
        rows = dict((await session.execute(select(MessageTextPending.message_id, MessageTextPending.oversize)))
                    .all())
        assert rows == {stored["stored oversize"]: True, stored["stored long"]: False,
                        stored["bulk oversize"]: True, stored["bulk long"]: False}
        assert await search_text(session, inbox, "ferritine basse", "BODY") == set(stored.values())
    _run(store_url, work)


def test_imap_0006_matches_the_model(store_url: str) -> None:
    assert migration_differences(store_url, ["message_text_pending"]) == []
