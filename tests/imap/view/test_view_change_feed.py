"""The change feed the views of one process share (IDLE fan-out, RFC 9051 7.5): sessions woken by the same change
share one read of it, yet a session always sees its own writes at its next refresh."""

from __future__ import annotations

import asyncio

from imap.view.conftest import Account

from gateway.imap.proto.sequence import SequenceSet
from gateway.imap.view import mutate
from gateway.imap.view.mutate import AppendItem
from gateway.imap.view.selected import SelectedView

VIEWS = 50


def mail(n: int) -> bytes:
    return f"From: bob@pro.gateway.test\r\nSubject: note {n}\r\nMessage-ID: <feed{n}@t>\r\n\r\nhello\r\n".encode()


async def append(account: Account, n: int) -> int:
    return (await mutate.append(account.store, account.account_id, "INBOX", [AppendItem(mail(n))])).uids[0]


async def test_views_woken_by_one_delivery_share_one_change_read(account: Account) -> None:
    views = [await SelectedView.open(account.store, account.account_id, "INBOX") for _ in range(VIEWS)]
    uid = await append(account, 1)
    reads = account.store.feed.reads
    changes = await asyncio.gather(*(view.refresh() for view in views))
    assert account.store.feed.reads - reads == 1
    assert all(change.new == [uid] and change.exists == 1 for change in changes)
    # \Recent goes to one session only (RFC 3501 2.3.2), though they all asked at once.
    assert sum(change.recent_changed for change in changes) == 1


async def test_a_session_sees_its_own_expunge_right_after_a_shared_read(account: Account) -> None:
    uid = await append(account, 1)
    mine = await SelectedView.open(account.store, account.account_id, "INBOX")
    other = await SelectedView.open(account.store, account.account_id, "INBOX")
    await mine.store_flags(SequenceSet(((1, 1),)), uid=False, mode="add", flags=["\\Deleted"])
    await mine.refresh()
    assert (await other.refresh()).flags[0].uid == uid
    assert (await other.refresh()).empty  # an answer now kept for the next question at this MODSEQ
    assert await mine.expunge() == [uid]
    changes = await mine.refresh()  # the same MODSEQ asked again: the expunge published meanwhile is read
    assert changes.expunged == [uid] and changes.exists == 0
    assert (await other.refresh()).expunged == [uid]
