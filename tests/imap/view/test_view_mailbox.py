"""The mailbox view over a real store (SQLite and PostgreSQL): folders, SELECT state, FETCH rows, STORE with
CONDSTORE, EXPUNGE with QRESYNC records, APPEND/COPY/MOVE with UIDPLUS data, quota, \\Recent and SEARCH."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from imap.view.conftest import Account
from sqlalchemy import func, select

from gateway.imap.housekeeping import prune_expunged
from gateway.imap.proto.search import And, Key, Not, Or
from gateway.imap.proto.sequence import SequenceSet
from gateway.imap.view import mutate
from gateway.imap.view.errors import AlreadyExists, MailboxNotFound, NotAllowed, OverQuota
from gateway.imap.view.mutate import AppendItem
from gateway.imap.view.rows import FLAGS, INTERNALDATE, MODSEQ, SIZE
from gateway.imap.view.search import search
from gateway.imap.view.selected import SelectedView
from gateway.imap.view.sort import sort
from gateway.store.models import Event, Message

ALL = SequenceSet(((1, None),))


def mail(n: int, body: str = "hello") -> bytes:
    return f"From: bob@pro.gateway.test\r\nSubject: note {n}\r\nMessage-ID: <m{n}@t>\r\n\r\n{body}\r\n".encode()


async def fill(account: Account, count: int, folder: str = "INBOX", **kwargs: object) -> list[int]:
    items = [AppendItem(mail(n), **kwargs) for n in range(count)]  # type: ignore[arg-type]
    return (await mutate.append(account.store, account.account_id, folder, items)).uids


async def test_create_makes_superiors_and_list_shows_children(account: Account) -> None:
    info = await account.folders.create("Projects/2026/Q1/")  # trailing delimiter = the name (RFC 9051 6.3.4)
    assert info.name == "Projects/2026/Q1" and info.mailbox_id == f"F{info.folder_id}"
    listed = {entry.name: entry for entry in await account.folders.list()}
    assert listed["Projects"].children and listed["Projects/2026"].children and not listed["Projects/2026/Q1"].children
    assert next(iter(listed)) == "INBOX"
    with pytest.raises(AlreadyExists):
        await account.folders.create("Projects/2026")
    with pytest.raises(NotAllowed):
        await account.folders.create("bad/../name")
    with pytest.raises(NotAllowed) as refused:
        await account.folders.create("Spam", special_use=["\\All"])
    assert refused.value.code == "USEATTR"
    assert (await account.folders.create("Spam", special_use=["\\Junk"])).special_use == "\\Junk"


async def test_delete_keeps_children_and_lists_the_superior_as_nonexistent(account: Account) -> None:
    await account.folders.create("a/b")
    await account.folders.delete("a")
    listed = {entry.name: entry for entry in await account.folders.list()}
    assert not listed["a"].exists and listed["a"].children and listed["a/b"].exists
    with pytest.raises(NotAllowed):
        await account.folders.delete("INBOX")
    with pytest.raises(MailboxNotFound):
        await account.folders.delete("nowhere")


async def test_rename_moves_children_and_keeps_uidvalidity(account: Account) -> None:
    before = await account.folders.create("old/child")
    await fill(account, 2, "old/child")
    await account.folders.rename("old", "new/place")
    after = await account.folders.get("new/place/child")
    assert after.uidvalidity == before.uidvalidity and after.folder_id == before.folder_id
    assert (await account.folders.status("new/place/child", ["MESSAGES"]))["MESSAGES"] == 2
    with pytest.raises(MailboxNotFound):
        await account.folders.get("old")
    with pytest.raises(NotAllowed):
        await account.folders.rename("Sent", "Elsewhere")


async def test_rename_inbox_moves_its_messages_and_inbox_sessions_see_them_vanish(account: Account) -> None:
    await fill(account, 3)
    inbox = await SelectedView.open(account.store, account.account_id, "INBOX")
    await account.folders.rename("inbox", "Old mail")  # RFC 9051 6.3.6
    changes = await inbox.refresh()
    assert changes.expunged == [1, 2, 3] and changes.expunged_seqs == [3, 2, 1] and inbox.exists == 0
    moved = await SelectedView.open(account.store, account.account_id, "Old mail")
    assert list(moved.uids) == [1, 2, 3]
    assert (await account.folders.status("INBOX", ["MESSAGES", "UIDNEXT"])) == {"MESSAGES": 0, "UIDNEXT": 4}


async def test_status_items_each_counted(account: Account) -> None:
    await fill(account, 3)
    await mutate.append(account.store, account.account_id, "INBOX",
                        [AppendItem(mail(9), frozenset({"\\Seen", "\\Deleted"}))])
    status = await account.folders.status("INBOX", ["MESSAGES", "UNSEEN", "DELETED", "SIZE", "UIDNEXT",
                                                    "HIGHESTMODSEQ", "RECENT", "MAILBOXID", "UIDVALIDITY"])
    assert status["MESSAGES"] == 4 and status["UNSEEN"] == 3 and status["DELETED"] == 1
    assert status["SIZE"] == sum(len(mail(n)) for n in (0, 1, 2, 9)) and status["UIDNEXT"] == 5
    assert status["RECENT"] == 4 and str(status["MAILBOXID"]).startswith("F")


async def test_append_gives_appenduid_and_a_missing_folder_says_trycreate(account: Account) -> None:
    result = await mutate.append(account.store, account.account_id, "INBOX",
                                 [AppendItem(mail(1)), AppendItem(mail(2), frozenset({"$Label1", "\\Recent"}))])
    assert result.uids == [1, 2]
    assert result.uidvalidity == (await account.folders.get("INBOX")).uidvalidity
    view = await SelectedView.open(account.store, account.account_id, "INBOX", readonly=True)
    rows = await view.fetch(ALL, uid=False, columns=(FLAGS, SIZE))
    assert [(seq, row.uid, row.flags, row.size) for seq, row in rows] == [
        (1, 1, (), len(mail(1))), (2, 2, ("$Label1",), len(mail(2)))]  # \Recent is never stored
    assert "$Label1" in view.flags
    with pytest.raises(MailboxNotFound) as missing:
        await mutate.append(account.store, account.account_id, "Nowhere", [AppendItem(mail(1))])
    assert missing.value.code == "TRYCREATE"


async def test_quota_refuses_the_whole_multiappend_that_would_exceed_it(account: Account) -> None:
    limit = 3 * len(mail(1))
    await mutate.append(account.store, account.account_id, "INBOX", [AppendItem(mail(1))], quota=limit)
    with pytest.raises(OverQuota):
        await mutate.append(account.store, account.account_id, "INBOX",
                            [AppendItem(mail(2)), AppendItem(mail(3)), AppendItem(mail(4))], quota=limit)
    assert (await account.folders.status("INBOX", ["MESSAGES", "UIDNEXT"])) == {"MESSAGES": 1, "UIDNEXT": 2}
    view = await SelectedView.open(account.store, account.account_id, "INBOX")
    await view.copy(ALL, "Archive", uid=True, quota=limit)  # 2 of 3 used
    with pytest.raises(OverQuota):
        await view.copy(ALL, "Archive", uid=True, quota=limit + 1 - len(mail(1)))


async def test_fetch_numbers_rows_and_skips_messages_expunged_elsewhere(account: Account) -> None:
    await fill(account, 5)
    mine = await SelectedView.open(account.store, account.account_id, "INBOX")
    other = await SelectedView.open(account.store, account.account_id, "INBOX")
    await other.store_flags(SequenceSet(((2, 3),)), uid=True, mode="add", flags=["\\Deleted"])
    assert await other.expunge() == [2, 3]
    rows = await mine.fetch(ALL, uid=False, columns=(FLAGS, MODSEQ, INTERNALDATE))
    assert [(seq, row.uid) for seq, row in rows] == [(1, 1), (4, 4), (5, 5)]
    assert all(row.internal_date is not None and row.internal_date.tzinfo is not None for _, row in rows)
    held = await mine.refresh(expunges=False)  # during FETCH/STORE/SEARCH by number (RFC 9051 7.5.1)
    assert held.expunged == [] and mine.exists == 5
    changes = await mine.refresh()
    assert changes.expunged == [2, 3] and changes.expunged_seqs == [3, 2] and mine.exists == 3
    assert [uid for _, uid in mine.numbers_of([1, 4, 5])] == [1, 4, 5]


async def test_store_unchangedsince_reports_modified_and_others_learn_the_flags(account: Account) -> None:
    await fill(account, 3)
    mine = await SelectedView.open(account.store, account.account_id, "INBOX")
    other = await SelectedView.open(account.store, account.account_id, "INBOX")
    first = await mine.fetch(ALL, uid=True, columns=(FLAGS, MODSEQ))
    modseq_of = {row.uid: row.modseq for _, row in first}
    rows, modified = await other.store_flags(SequenceSet(((2, 2),)), uid=True, mode="add", flags=["$Work"])
    assert modified == [] and rows[0][1].flags == ("$Work",) and rows[0][1].modseq > modseq_of[2]
    # RFC 7162 3.1.3: message 2 changed after the client's MODSEQ, so it is left alone and reported.
    rows, modified = await mine.store_flags(ALL, uid=False, mode="add", flags=["\\Flagged"],
                                            unchangedsince=max(modseq_of.values()))
    assert modified == [(2, 2)] and [row.uid for _, row in rows] == [1, 3]
    changes = await mine.refresh()
    assert [(row.uid, row.flags) for row in changes.flags] == [(2, ("$Work",))]  # own STORE not repeated
    assert changes.new_keywords == ["$Work"]
    changed = await other.refresh()
    assert sorted((row.uid, row.flags) for row in changed.flags) == [(1, ("\\Flagged",)), (3, ("\\Flagged",))]
    since = await mine.fetch(ALL, uid=True, columns=(FLAGS, MODSEQ), changedsince=rows[0][1].modseq - 1)
    assert [row.uid for _, row in since] == [1, 3]
    _, none = await mine.store_flags(ALL, uid=False, mode="set", flags=["\\Seen"], unchangedsince=0)
    assert [uid for _, uid in none] == [1, 2, 3]


async def test_store_remove_and_set_are_case_insensitive(account: Account) -> None:
    await fill(account, 1, flags=frozenset({"$Label1", "\\Seen"}))
    view = await SelectedView.open(account.store, account.account_id, "INBOX")
    rows, _ = await view.store_flags(ALL, uid=False, mode="remove", flags=["$LABEL1"])
    assert rows[0][1].flags == ("\\Seen",)
    rows, _ = await view.store_flags(ALL, uid=False, mode="set", flags=["\\Answered"])
    assert rows[0][1].flags == ("\\Answered",)
    assert (await account.folders.status("INBOX", ["UNSEEN"]))["UNSEEN"] == 1  # seen column kept in sync
    readonly = await SelectedView.open(account.store, account.account_id, "INBOX", readonly=True)
    with pytest.raises(NotAllowed):
        await readonly.store_flags(ALL, uid=False, mode="add", flags=["\\Seen"])


async def test_qresync_vanished_from_records_and_after_pruning_from_known_uids(account: Account) -> None:
    await fill(account, 6)
    view = await SelectedView.open(account.store, account.account_id, "INBOX")
    client_modseq = view.highestmodseq
    await view.store_flags(SequenceSet(((2, 2), (4, 5))), uid=True, mode="add", flags=["\\Deleted"])
    await view.expunge(SequenceSet(((4, 5),)))  # UID EXPUNGE (RFC 4315 2.1)
    await view.store_flags(SequenceSet(((6, 6),)), uid=True, mode="add", flags=["\\Seen"])
    again = await SelectedView.open(account.store, account.account_id, "INBOX")
    resync = await again.resync(client_modseq)
    assert resync.vanished == [(4, 5)]
    assert sorted(row.uid for _, row in resync.changed) == [2, 6]

    async def prune(session: object) -> int:
        return await prune_expunged(session, datetime.now(UTC) + timedelta(days=1))  # type: ignore[arg-type]

    await account.store.write(prune)
    resync = await again.resync(client_modseq, SequenceSet(((1, 5),)))
    assert resync.vanished == [(4, 5)]  # compared with the known UIDs: records are gone
    assert await again.vanished_since(client_modseq) == [(4, 5)]  # every UID below UIDNEXT not there


async def test_copy_and_move_give_copyuid_and_move_expunges_the_sources(account: Account) -> None:
    await fill(account, 4)
    view = await SelectedView.open(account.store, account.account_id, "INBOX")
    copied = await view.copy(SequenceSet(((1, 2),)), "Archive", uid=False)
    assert copied.source_uids == [1, 2] and copied.dest_uids == [1, 2]
    moved = await view.copy(SequenceSet(((3, 4),)), "Archive", uid=True, move=True)
    assert moved.source_uids == [3, 4] and moved.dest_uids == [3, 4]
    changes = await view.refresh()
    assert changes.expunged == [3, 4] and view.exists == 2
    archive = await SelectedView.open(account.store, account.account_id, "Archive")
    assert list(archive.uids) == [1, 2, 3, 4]

    async def events(session: object) -> list[str]:
        return list((await session.execute(select(Event.kind))).scalars())  # type: ignore[attr-defined]

    assert "imap.moved" in await account.store.read(events)


async def test_recent_belongs_to_the_first_session_that_selects(account: Account) -> None:
    await fill(account, 2)
    assert (await account.folders.status("INBOX", ["RECENT"]))["RECENT"] == 2
    peek = await SelectedView.open(account.store, account.account_id, "INBOX", readonly=True)
    assert peek.recent == 0  # EXAMINE claims nothing (RFC 9051 6.3.3)
    first = await SelectedView.open(account.store, account.account_id, "INBOX")
    second = await SelectedView.open(account.store, account.account_id, "INBOX")
    assert first.recent == 2 and second.recent == 0
    assert (await account.folders.status("INBOX", ["RECENT"]))["RECENT"] == 0
    await fill(account, 1)
    changes = await second.refresh()
    assert changes.new == [3] and changes.recent == 1 and changes.recent_changed
    assert (await first.refresh()).recent == 2
    assert (await search(second, Key("RECENT"))).uids == [3]
    assert (await search(first, Key("NEW"))).uids == [1, 2]
    assert (await search(first, Key("OLD"))).uids == [3]
    assert second.with_recent((await second.fetch(ALL, uid=False))[-1][1])[-1] == "\\Recent"


async def test_search_compiles_flags_sizes_sets_dates_and_boolean_keys(account: Account) -> None:
    await mutate.append(account.store, account.account_id, "INBOX", [
        AppendItem(mail(1), frozenset({"\\Seen"}), datetime(2026, 1, 10, 23, 30, tzinfo=UTC)),
        AppendItem(mail(2, "x" * 500), frozenset({"\\Flagged", "$Work"}), datetime(2026, 1, 11, tzinfo=UTC)),
        AppendItem(mail(3), frozenset(), datetime(2026, 1, 12, tzinfo=UTC)),
    ])
    view = await SelectedView.open(account.store, account.account_id, "INBOX")

    async def uids(key: object, saved: list[int] | None = None) -> list[int]:
        return (await search(view, key, saved)).uids  # type: ignore[arg-type]

    assert await uids(Key("UNSEEN")) == [2, 3]
    assert await uids(Key("KEYWORD", "$work")) == [2] and await uids(Key("UNKEYWORD", "$Work")) == [1, 3]
    assert await uids(Key("LARGER", 200)) == [2]
    assert await uids(Key("ON", date(2026, 1, 10))) == [1] and await uids(Key("SINCE", date(2026, 1, 11))) == [2, 3]
    assert await uids(Or(Key("SEEN"), Key("FLAGGED"))) == [1, 2]
    assert await uids(And((Not(Key("SEEN")), Key("SEQ", SequenceSet(((2, None),)))))) == [2, 3]
    assert await uids(Key("UID", SequenceSet(((3, 3),)))) == [3]
    assert await uids(Key("SEQ", SequenceSet((), saved=True)), saved=[1, 3]) == [1, 3]  # $ (RFC 5182)
    assert await uids(Key("EMAILID", "M0")) == []
    nested: object = Key("ALL")
    for _ in range(32):
        nested = Not(Not(nested))  # type: ignore[arg-type]
    assert await uids(nested) == [1, 2, 3]
    result = await search(view, Key("MODSEQ", 1))
    assert result.uids == [1, 2, 3] and result.highest_modseq == view.highestmodseq


async def test_sort_by_size_and_arrival_with_reverse(account: Account) -> None:
    await mutate.append(account.store, account.account_id, "INBOX", [
        AppendItem(mail(1, "a" * 50), date=datetime(2026, 1, 3, tzinfo=UTC)),
        AppendItem(mail(2, "a" * 10), date=datetime(2026, 1, 1, tzinfo=UTC)),
        AppendItem(mail(3, "a" * 10), date=datetime(2026, 1, 2, tzinfo=UTC)),
    ])
    view = await SelectedView.open(account.store, account.account_id, "INBOX")
    assert await sort(view, [("ARRIVAL", False)], Key("ALL")) == [2, 3, 1]
    assert await sort(view, [("SIZE", True), ("ARRIVAL", False)], Key("ALL")) == [1, 2, 3]
    assert await sort(view, [("SIZE", False)], Key("ALL")) == [2, 3, 1]  # ties in sequence order (RFC 5256 3)


async def test_deleted_folder_is_reported_to_the_selected_view(account: Account) -> None:
    await account.folders.create("Gone")
    view = await SelectedView.open(account.store, account.account_id, "Gone")
    await account.folders.delete("Gone")
    with pytest.raises(MailboxNotFound):
        await view.refresh()


async def test_message_bytes_stay_after_expunge_for_the_trail(account: Account) -> None:
    await fill(account, 1, flags=frozenset({"\\Deleted"}))
    view = await SelectedView.open(account.store, account.account_id, "INBOX")
    assert await view.expunge() == [1]

    async def count(session: object) -> int:
        return (await session.execute(select(func.count()).select_from(Message))).scalar_one()  # type: ignore

    assert await account.store.read(count) == 1
