"""Long bodies enter the full-text index after their commit; SEARCH is exact before and after (SQLite and
PostgreSQL): the body is read from the message until the indexer has written it, and always for a body longer
than the index takes."""

from __future__ import annotations

from imap.view.conftest import Account
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.anatomy.indexer import TextIndexer
from gateway.imap.anatomy.store import search_text
from gateway.imap.proto.search import And, Key, Not, Or
from gateway.imap.view import mutate
from gateway.imap.view.mutate import AppendItem
from gateway.imap.view.search import search
from gateway.imap.view.selected import SelectedView
from gateway.store.anatomy import INDEXED_BODY_MAX, INLINE_BODY, MessageTextPending
from gateway.store.changes import ChangeHub
from gateway.store.models import Message


def mail(n: int, body: str) -> bytes:
    return (f"From: bob@pro.gateway.test\r\nSubject: note {n}\r\nMessage-ID: <m{n}@t>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def long_body(last_word: str, size: int = INLINE_BODY) -> str:
    """More text than ``size`` (by default, than is indexed in the delivering transaction), with ``last_word``
    at its very end."""
    line = "compte rendu de biologie, valeurs dans les normes\r\n"
    return line * (size // len(line) + 10) + last_word


async def pending(account: Account) -> list[int]:
    async def work(session: AsyncSession) -> list[int]:
        return list((await session.execute(select(MessageTextPending.message_id))).scalars())
    return await account.store.read(work, "test")


async def oversize(account: Account) -> dict[int, bool]:
    async def work(session: AsyncSession) -> dict[int, bool]:
        return dict((await session.execute(select(MessageTextPending.message_id, MessageTextPending.oversize)))
                    .all())
    return await account.store.read(work, "test")


async def indexed_bodies(account: Account) -> int:
    async def work(session: AsyncSession) -> int:
        return int((await session.execute(text("SELECT count(*) FROM message_anatomy_text WHERE body != ''")))
                   .scalar_one())
    return await account.store.read(work, "test")


async def test_a_long_body_is_searchable_before_and_after_the_indexer_writes_it(account: Account) -> None:
    await mutate.append(account.store, account.account_id, "INBOX", [
        AppendItem(mail(1, "court: hémoglobine normale")),
        AppendItem(mail(2, long_body("Hyperkaliémie"))),
        AppendItem(mail(3, long_body("rien de notable"))),
    ])
    assert len(await pending(account)) == 2 and await indexed_bodies(account) == 1  # the short one only
    view = await SelectedView.open(account.store, account.account_id, "INBOX")

    async def uids(key: object) -> list[int]:
        return (await search(view, key)).uids  # type: ignore[arg-type]

    for _ in ("before", "after"):
        assert await uids(Key("BODY", "hyperkaliémie")) == [2]
        assert await uids(Key("TEXT", "HYPERKALIÉMIE")) == [2]
        assert await uids(Key("BODY", "normale")) == [1]
        assert await uids(Key("BODY", "valeurs dans les normes")) == [2, 3]
        assert await uids(Or(Key("BODY", "notable"), Key("BODY", "hémoglobine"))) == [1, 3]
        assert await uids(And((Key("TEXT", "note 3"), Not(Key("BODY", "hyperkali"))))) == [3]
        assert await uids(Key("TEXT", "note 2")) == [2]  # the header of a pending message is indexed at once
        indexer = TextIndexer(account.store.writes, ChangeHub())
        while await indexer.run_once():
            pass
        assert await pending(account) == [] and await indexed_bodies(account) == 3


async def test_the_store_search_reads_pending_bodies_too(account: Account) -> None:
    await mutate.append(account.store, account.account_id, "INBOX", [AppendItem(mail(1, long_body("Troponine")))])
    view = await SelectedView.open(account.store, account.account_id, "INBOX")

    async def work(session: AsyncSession) -> tuple[set[int], set[int]]:
        return (await search_text(session, view.folder_id, "troponine", "BODY"),
                await search_text(session, view.folder_id, "absent", "TEXT"))
    found, absent = await account.store.read(work, "test")
    assert len(found) == 1 and absent == set()


async def test_a_pending_row_goes_with_its_message_and_the_indexer_skips_it(account: Account) -> None:
    await mutate.append(account.store, account.account_id, "INBOX", [AppendItem(mail(1, long_body("fin")))])
    [message_id] = await pending(account)

    async def remove(session: AsyncSession) -> int:
        await session.execute(text("DELETE FROM deliveries"))
        await session.execute(delete(Message).where(Message.id == message_id))
        return int((await session.execute(select(func.count()).select_from(MessageTextPending))).scalar_one())
    assert await account.store.write(remove) == 0
    assert await TextIndexer(account.store.writes, ChangeHub()).run_once() == 0


async def test_a_body_longer_than_the_index_takes_is_never_indexed_and_always_searched(account: Account) -> None:
    await mutate.append(account.store, account.account_id, "INBOX", [
        AppendItem(mail(1, long_body("Troponine", INDEXED_BODY_MAX))),
        AppendItem(mail(2, long_body("Kaliémie"))),
    ])
    [too_long, long] = await pending(account)
    assert await oversize(account) == {too_long: True, long: False}
    indexer = TextIndexer(account.store.writes, ChangeHub())
    assert await indexer.run_once() == 1 and await indexer.run_once() == 0  # the indexer leaves the long one
    assert await oversize(account) == {too_long: True} and await indexed_bodies(account) == 1
    view = await SelectedView.open(account.store, account.account_id, "INBOX")
    assert (await search(view, Key("BODY", "troponine"))).uids == [1]
    assert (await search(view, Key("BODY", "kaliémie"))).uids == [2]
    assert (await search(view, Key("BODY", "valeurs dans les normes"))).uids == [1, 2]


async def test_the_indexer_marks_a_body_too_long_stored_before_the_bound_instead_of_indexing_it(account: Account
                                                                                                ) -> None:
    await mutate.append(account.store, account.account_id, "INBOX",
                        [AppendItem(mail(1, long_body("Troponine", INDEXED_BODY_MAX)))])

    async def unmark(session: AsyncSession) -> None:  # as a row written before imap_0006 reads
        await session.execute(text("UPDATE message_text_pending SET oversize = false"))
    await account.store.write(unmark)
    [message_id] = await pending(account)
    indexer = TextIndexer(account.store.writes, ChangeHub())
    assert await indexer.run_once() == 1 and await indexer.run_once() == 0
    assert await oversize(account) == {message_id: True} and await indexed_bodies(account) == 0
    view = await SelectedView.open(account.store, account.account_id, "INBOX")
    assert (await search(view, Key("BODY", "troponine"))).uids == [1]
