"""A failing store leaves nothing half-written and says UNAVAILABLE; FETCH of a large folder is one quick query;
THREAD builds and renders long chains without recursion."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select

from gateway.imap.proto.sequence import SequenceSet
from gateway.imap.view import mutate
from gateway.imap.view.errors import StoreUnavailable
from gateway.imap.view.folders import Folders
from gateway.imap.view.mutate import AppendItem
from gateway.imap.view.selected import SelectedView
from gateway.imap.view.store import ViewStore
from gateway.imap.view.thread import Node, ThreadMessage, ordered_subject, references, render
from gateway.store import db, mailstore
from gateway.store.models import Delivery, Message


async def _account(url: str) -> tuple[ViewStore, int, object]:
    await db.migrate(url)
    engine = db.create_engine(url)
    store = ViewStore(db.sessionmaker(engine), db.read_sessionmaker(engine))

    async def work(session: object) -> int:
        return await mailstore.create_mailbox(session, "alice@pro.gateway.test", "PER")  # type: ignore[arg-type]

    return store, await store.write(work), engine


async def test_disk_full_during_append_is_unavailable_and_nothing_is_kept(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'full.sqlite3'}"
    store, account_id, engine = await _account(url)
    await mutate.append(store, account_id, "INBOX", [AppendItem(b"Subject: a\r\n\r\nsmall\r\n")])

    def cap(dbapi_connection: object, _record: object) -> None:  # a real SQLITE_FULL: the file may not grow
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages + 2}")
        cursor.close()

    await engine.dispose()  # type: ignore[attr-defined]
    full = db.create_engine(url)
    event.listen(full.sync_engine, "connect", cap)
    store = ViewStore(db.sessionmaker(full), db.read_sessionmaker(full))
    with pytest.raises(StoreUnavailable) as failed:
        await mutate.append(store, account_id, "INBOX", [AppendItem(b"Subject: b\r\n\r\n" + b"x" * 2_000_000)])
    assert failed.value.code == "UNAVAILABLE"
    status = await Folders(store, account_id).status("INBOX", ["MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"])
    assert status["MESSAGES"] == 1 and status["UIDNEXT"] == 2

    async def count(session: object) -> int:
        return (await session.execute(select(func.count()).select_from(Message))).scalar_one()  # type: ignore

    assert await store.read(count) == 1
    await full.dispose()


async def test_unreachable_database_is_unavailable() -> None:
    engine = db.create_engine("postgresql+asyncpg://gateway@127.0.0.1:9/none")
    store = ViewStore(db.sessionmaker(engine), db.read_sessionmaker(engine))
    with pytest.raises(StoreUnavailable):
        await Folders(store, 1).list()
    with pytest.raises(StoreUnavailable):
        await mutate.append(store, 1, "INBOX", [AppendItem(b"x")])
    await engine.dispose()


@pytest.mark.slow
async def test_fetch_flags_of_50000_messages_numbers_every_message(store_url: str) -> None:
    store, account_id, engine = await _account(store_url)
    count = 50_000

    async def work(session: object) -> None:
        folder = await mailstore.folder_id(session, account_id, "INBOX")  # type: ignore[arg-type]
        message = await mailstore.store_message(session, mailstore.StoredMessage(  # type: ignore[arg-type]
            b"Subject: x\r\n\r\nhi\r\n", "", [], None, None, None, None))
        now = datetime.now(UTC)
        rows = [dict(folder_id=folder, message_id=message, uid=uid, flags="\\Seen" if uid % 3 else "",
                     seen=bool(uid % 3), modseq=uid, internal_date=now) for uid in range(1, count + 1)]
        for start in range(0, count, 5000):
            await session.execute(insert(Delivery), rows[start:start + 5000])  # type: ignore[attr-defined]

    await store.write(work)
    view = await SelectedView.open(store, account_id, "INBOX", readonly=True)
    rows = await view.fetch(SequenceSet(((1, None),)), uid=False)  # its speed: bench/imap.py
    assert len(rows) == count and rows[-1][0] == count and rows[0][1].flags == ("\\Seen",)
    assert [seq for seq, _ in rows[:3]] == [1, 2, 3] and rows[2][1].flags == ()
    await engine.dispose()  # type: ignore[attr-defined]


def message(uid: int, message_id: str, refs: str = "", subject: str = "s", day: int = 1) -> ThreadMessage:
    return ThreadMessage(uid, message_id, tuple(refs.split()), subject, datetime(2026, 1, day, tzinfo=UTC))


def test_references_threads_replies_under_their_parents_and_gathers_subjects() -> None:
    threads = references([
        message(1, "<a>", "", "alpha", 1),
        message(2, "<b>", "<a>", "alpha", 2),
        message(3, "<c>", "<a> <b>", "alpha", 3),
        message(4, "<d>", "<a>", "alpha", 4),
        message(5, "<e>", "<x>", "beta", 5),  # parent unknown: the dummy is pruned
        message(6, "<f>", "", "gamma", 6),
    ])
    assert render(threads) == "(1 (2 3)(4))(5)(6)"


def test_ordered_subject_groups_by_base_subject_in_date_order() -> None:
    threads = ordered_subject([message(1, "<a>", subject="b", day=3), message(2, "<b>", subject="a", day=1),
                               message(3, "<c>", subject="a", day=2), message(4, "<d>", subject="a", day=4)])
    assert render(threads) == "(2 (3)(4))(1)"
    assert render(threads, {1: 10, 2: 20, 3: 30, 4: 40}.__getitem__) == "(20 (30)(40))(10)"


def test_threading_a_chain_of_ten_thousand_replies_needs_no_recursion() -> None:
    chain = [message(1, "<m1>")] + [message(n, f"<m{n}>", f"<m{n - 1}>") for n in range(2, 10_001)]
    threads = references(chain)
    assert len(threads) == 1 and render(threads).count(" ") == 9_999
    looped = references([message(1, "<a>", "<b>"), message(2, "<b>", "<a>")])  # a loop is never made
    assert sorted(node.uid for node in _walk(looped) if node.uid) == [1, 2]


def _walk(roots: list[Node]) -> list[Node]:
    out, stack = [], list(roots)
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    return out
