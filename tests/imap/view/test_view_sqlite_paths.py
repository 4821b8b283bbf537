"""On SQLite the view's hot statements run in one call on a connection's thread (gateway/imap/view/fast.py); they
must answer exactly as the session path beside them (PostgreSQL's), group-commit without letting one failing
write sink the others, and wake the folder's waiters only after the commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.imap.proto.sequence import SequenceSet
from gateway.imap.view import fast, mutate
from gateway.imap.view.errors import MailboxNotFound
from gateway.imap.view.folder_changes import folder_delta
from gateway.imap.view.mutate import AppendItem
from gateway.imap.view.rows import ANATOMY, FLAGS, INTERNALDATE, MESSAGE_ID, MODSEQ, SIZE, fetch_rows
from gateway.imap.view.selected import SelectedView
from gateway.imap.view.store import ViewStore
from gateway.store import db, mailstore

ALL = (FLAGS, MODSEQ, INTERNALDATE, SIZE, MESSAGE_ID, ANATOMY)


async def _store(tmp_path: Path) -> tuple[ViewStore, int, object]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'paths.sqlite3'}"
    await db.migrate(url)
    engine = db.create_engine(url)
    store = ViewStore(db.sessionmaker(engine), db.read_sessionmaker(engine))

    async def work(session: object) -> int:
        return await mailstore.create_mailbox(session, "alice@pro.gateway.test", "PER")  # type: ignore[arg-type]

    return store, await store.write(work), engine


def _message(n: int) -> bytes:
    return (f"From: bob@pro.gateway.test\r\nTo: alice@pro.gateway.test\r\nSubject: Compte rendu {n}\r\n"
            f"Date: Sun, 22 Nov 2026 09:00:00 +0100\r\n\r\nTexte {n}.\r\n").encode()


async def test_sqlite_one_hop_reads_answer_as_the_session_path(tmp_path: Path) -> None:
    store, account_id, engine = await _store(tmp_path)
    assert store.sqlite is not None and store.sqlite_writer is not None
    items = [AppendItem(_message(n), frozenset({"\\Seen", "$Label1"} if n % 2 else set())) for n in range(12)]
    appended = await mutate.append(store, account_id, "INBOX", items)
    view = await SelectedView.open(store, account_id, "INBOX")
    await view.store_flags(SequenceSet(((3, 5),)), uid=False, mode="add", flags=("\\Flagged",))
    await view.store_flags(SequenceSet(((4, 4),)), uid=False, mode="add", flags=("\\Deleted",))
    assert await view.expunge() == [appended.uids[3]]
    folder_id = view.folder_id
    spans = [(1, 2), (5, 9), (11, 40)]

    async def session_rows(session: object) -> object:
        return await fetch_rows(session, folder_id, spans, ALL)  # type: ignore[arg-type]

    through_session = await store.read(session_rows)  # type: ignore[arg-type]
    one_hop = await store.sqlite.run(lambda c: fast.fetch_rows(c, folder_id, spans, ALL))
    assert one_hop == through_session and [row.uid for row in one_hop] == [1, 2, 5, 6, 7, 8, 9, 11, 12]
    assert one_hop[0].anatomy is not None and one_hop[0].internal_date is not None
    # MODSEQs: the 12 APPENDs 2..13, \\Flagged on 3:5 at 14 (CHANGEDSINCE 13: those of them in the spans).
    changed = await store.sqlite.run(lambda c: fast.fetch_rows(c, folder_id, spans, (FLAGS,), changedsince=13))
    assert [row.uid for row in changed] == [5]
    for since in (0, 12, view.highestmodseq):
        async def session_delta(session: object, since: int = since) -> object:
            return await folder_delta(session, folder_id, since)  # type: ignore[arg-type]

        assert await store.sqlite.run(lambda c, since=since: fast.folder_delta(c, folder_id, since)) \
            == await store.read(session_delta)  # type: ignore[arg-type]
    await engine.dispose()  # type: ignore[attr-defined]


async def test_sqlite_writer_failing_write_does_not_sink_the_others_of_its_batch(tmp_path: Path) -> None:
    store, account_id, engine = await _store(tmp_path)
    assert store.sqlite_writer is not None
    await mutate.append(store, account_id, "INBOX", [AppendItem(_message(1))])
    good = [mutate.append(store, account_id, "INBOX", [AppendItem(_message(n))]) for n in range(2, 6)]
    bad = mutate.append(store, account_id, "No such folder", [AppendItem(_message(9))])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert isinstance(results[-1], MailboxNotFound) and results[-1].code == "TRYCREATE"
    assert sorted(uid for result in results[:-1] for uid in result.uids) == [2, 3, 4, 5]  # type: ignore[union-attr]
    view = await SelectedView.open(store, account_id, "INBOX", readonly=True)
    assert list(view.uids) == [1, 2, 3, 4, 5]
    await engine.dispose()  # type: ignore[attr-defined]


async def test_sqlite_writer_wakes_the_folder_after_its_commit(tmp_path: Path) -> None:
    store, account_id, engine = await _store(tmp_path)
    await mutate.append(store, account_id, "INBOX", [AppendItem(_message(1))])
    watcher = await SelectedView.open(store, account_id, "INBOX")
    writer = await SelectedView.open(store, account_id, "INBOX")
    woken = store.hub.watch(watcher.folder_id)
    await writer.store_flags(SequenceSet(((1, 1),)), uid=False, mode="add", flags=("$Important",))
    await asyncio.wait_for(woken.wait(), 10)
    changes = await watcher.refresh()
    assert changes.new_keywords == ["$Important"]  # announced before any FETCH shows it (RFC 9051 7.3.5)
    assert [row.flags for row in changes.flags] == [("$Important",)]
    await engine.dispose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("readonly", [False, True])
async def test_sqlite_select_of_a_cached_large_folder_follows_expunges_and_appends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readonly: bool) -> None:
    monkeypatch.setattr("gateway.imap.view.store.CACHE_MIN_MESSAGES", 3)
    store, account_id, engine = await _store(tmp_path)
    await mutate.append(store, account_id, "INBOX", [AppendItem(_message(n)) for n in range(6)])
    first = await SelectedView.open(store, account_id, "INBOX")  # fills the UID cache
    await first.store_flags(SequenceSet(((2, 2),)), uid=False, mode="add", flags=("\\Deleted",))
    await first.expunge()
    await mutate.append(store, account_id, "INBOX", [AppendItem(_message(7))])
    again = await SelectedView.open(store, account_id, "INBOX", readonly=readonly)
    assert list(again.uids) == [1, 3, 4, 5, 6, 7]
    assert again.exists == 6
    await engine.dispose()  # type: ignore[attr-defined]
