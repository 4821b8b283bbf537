"""APPEND, COPY and MOVE: one transaction each, with UIDPLUS data (RFC 4315) and the quota checked first.

APPEND stores the bytes exactly as sent (MULTIAPPEND, RFC 3502: all messages or none) and files them with one
counter update for the folder; the anatomy package indexes them in the same transaction through ``index``.
COPY files the same stored messages again (no bytes copied); MOVE (RFC 6851) also removes the sources and
records their UIDs as expunged at one new MODSEQ.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.view import fast
from gateway.imap.view import flags as flagops
from gateway.imap.view import quota as quotas
from gateway.imap.view.errors import MailboxNotFound, OverQuota
from gateway.imap.view.rows import parse_flags, uid_condition, utc
from gateway.imap.view.store import ViewStore, chunks
from gateway.store.anatomy import INLINE_BODY, TEXT_TABLE, Indexed, index_messages, index_rows
from gateway.store.changes import TEXT_INDEX, mark_changed
from gateway.store.events import record
from gateway.store.models import Delivery, Folder, Message
from gateway.store.sqlite_writes import WriteTx, sql_time

log = structlog.get_logger("gateway.imap")

#: Indexes newly stored messages ``(message_id, raw)`` in the caller's transaction (the anatomy package).
IndexHook = Callable[[AsyncSession, list[tuple[int, bytes]]], Awaitable[Any]]
#: Header bytes read for the ``messages`` summary columns of an APPENDed message.
SUMMARY_HEAD = 65536




@dataclass(frozen=True)
class AppendItem:
    """One message to APPEND: its bytes, flags and internal date (None: now)."""

    data: bytes
    flags: frozenset[str] = frozenset()
    date: datetime | None = None


@dataclass(frozen=True)
class AppendResult:
    """APPENDUID data (RFC 4315 3): the folder's UIDVALIDITY and the UIDs given, in order."""

    folder_id: int
    uidvalidity: int
    uids: list[int]


def summary_headers(raw: bytes) -> dict[str, str | None]:
    """Message-ID, Subject and From of an APPENDed message for the ``messages`` columns (bounded read)."""
    head = raw[:SUMMARY_HEAD].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")

    def value(name: str, limit: int) -> str | None:
        text = parsed.get(name)
        return str(text)[:limit] if text is not None else None

    sender = value("From", 998)
    if sender:
        sender = email.utils.parseaddr(sender)[1] or sender
    return {"message_id_header": value("Message-ID", 998), "subject": value("Subject", 4000), "header_from": sender}


async def _folder(session: AsyncSession, account_id: int, name: str) -> tuple[int, int]:
    row = (await session.execute(select(Folder.id, Folder.uidvalidity).where(
        Folder.mailbox_id == account_id, Folder.name == name))).one_or_none()
    if row is None:
        raise MailboxNotFound(f"There is no mailbox named {name}.", code="TRYCREATE")
    return int(row.id), int(row.uidvalidity)


async def allocate(session: AsyncSession, folder_id: int, count: int) -> tuple[int, int]:
    """Take ``count`` UIDs and MODSEQs of a folder in one row update: the first UID and the first MODSEQ."""
    result = await session.execute(update(Folder).where(Folder.id == folder_id).values(
        uidnext=Folder.uidnext + count, highestmodseq=Folder.highestmodseq + count)
        .returning(Folder.uidnext, Folder.highestmodseq))
    row = result.one_or_none()
    if row is None:
        raise MailboxNotFound("The mailbox no longer exists.", code="TRYCREATE")
    mark_changed(session, folder_id)
    return int(row.uidnext) - count, int(row.highestmodseq) - count + 1


async def append(store: ViewStore, account_id: int, mailbox: str, messages: Sequence[AppendItem], *,
                 quota: int | None = None, index: IndexHook | None = None) -> AppendResult:
    """APPEND (RFC 9051 6.3.12) / MULTIAPPEND: every message or none; ``OverQuota`` past ``quota`` bytes.

    A missing folder is ``MailboxNotFound`` with ``TRYCREATE`` (RFC 9051 7.1). ``index`` defaults to the store's
    anatomy indexer (:func:`gateway.store.anatomy.index_messages`).
    """
    items = list(messages)
    hook = index if index is not None else index_messages
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        dict(received_at=now, sender_mailbox_id=None, mail_from="", rcpt_to=[], size=len(item.data), raw=item.data,
             **summary_headers(item.data)) for item in items]
    texts = [flagops.format_flags(flagops.apply((), "set", item.flags)) for item in items]

    # The anatomy is computed here, before the write transaction, so the writer lock is not held for it (SQLite).
    indexed = _index_ahead(items) if index is None and quota is None else None

    async def work(session: AsyncSession) -> AppendResult:
        if indexed is not None:
            done, fast_result = await fast.on_writer(session, lambda c: _append_sqlite(
                c, account_id, mailbox, rows, texts, items, indexed, now))
            if done and fast_result is not None:
                folder_id, uidvalidity, uids, pending = fast_result
                mark_changed(session, folder_id)
                if pending:
                    mark_changed(session, TEXT_INDEX)  # the indexer starts at the commit
                return AppendResult(folder_id, uidvalidity, uids)
        folder_id, uidvalidity = await _folder(session, account_id, mailbox)
        if not items:
            return AppendResult(folder_id, uidvalidity, [])
        await quotas.check(session, account_id, sum(len(item.data) for item in items), quota)
        result = await session.execute(insert(Message).returning(Message.id, sort_by_parameter_order=True), rows)
        message_ids = list(result.scalars().all())
        first_uid, first_modseq = await allocate(session, folder_id, len(items))
        uids = [first_uid + offset for offset in range(len(items))]
        await session.execute(insert(Delivery), [
            dict(folder_id=folder_id, message_id=message_id, uid=uid, flags=text, seen=flagops.is_seen(text.split()),
                 modseq=first_modseq + offset, internal_date=utc(item.date) if item.date else now)
            for offset, (message_id, uid, text, item) in enumerate(zip(message_ids, uids, texts, items, strict=True))])
        await hook(session, [(message_id, item.data) for message_id, item in zip(message_ids, items, strict=True)])
        return AppendResult(folder_id, uidvalidity, uids)

    try:
        def sync(tx: WriteTx) -> AppendResult:
            assert indexed is not None
            folder_id, uidvalidity, uids, pending = _append_sqlite(tx.connection, account_id, mailbox, rows, texts,
                                                                   items, indexed, now)
            tx.mark(folder_id)
            if pending:
                tx.mark(TEXT_INDEX)  # the indexer starts at the commit
            return AppendResult(folder_id, uidvalidity, uids)

        result = await (store.write_fast(sync, work, "appending a message") if indexed is not None
                        else store.write(work, "appending a message"))
    except OverQuota:
        # The refused transaction rolled back: the refusal is traced in its own (sizes only, never content).
        adding = sum(len(item.data) for item in items)

        async def trace(session: AsyncSession) -> None:
            await record(session, "imap.append.over_quota", "refused", mailbox_id=account_id, size=adding,
                         limit=quota)

        await store.write(trace, "recording a refusal")
        log.info("imap.append_over_quota", mailbox_id=account_id, size=adding, limit=quota)
        raise
    log.info("imap.appended", mailbox_id=account_id, folder_id=result.folder_id, count=len(result.uids))
    return result


def _index_ahead(items: Sequence[AppendItem]) -> Indexed | None:
    """The anatomy and text rows of APPENDed messages, numbered 0..n-1 until they have their ids; None when one
    is stored flat (its event is recorded by the session path)."""
    indexed = index_rows([(n, item.data) for n, item in enumerate(items)], defer_over=INLINE_BODY)
    return None if indexed.refused else indexed


def _sql_time(value: Any) -> Any:
    return sql_time(value) if isinstance(value, datetime) else value


def _insert(connection: Any, table: str, row: dict[str, Any]) -> Any:
    names = list(row)
    return connection.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                              + (" RETURNING id" if table == "messages" else ""),
                              [_sql_time(row[name]) for name in names])


def _append_sqlite(connection: Any, account_id: int, mailbox: str, rows: list[dict[str, Any]], texts: list[str],
                   items: Sequence[AppendItem], indexed: Indexed, now: datetime
                   ) -> tuple[int, int, list[int], bool]:
    """APPEND's statements on SQLite in one hop on the writer's connection: the folder, the messages, their UIDs
    and MODSEQs (one folder update), the deliveries, the anatomy and text rows computed before the transaction."""
    folder = connection.execute("SELECT id, uidvalidity FROM folders WHERE mailbox_id = ? AND name = ?",
                                (account_id, mailbox)).fetchone()
    if folder is None:
        raise MailboxNotFound(f"There is no mailbox named {mailbox}.", code="TRYCREATE")
    folder_id, uidvalidity = int(folder[0]), int(folder[1])
    if not items:
        return folder_id, uidvalidity, [], False
    message_ids = [int(_insert(connection, "messages", {**row, "rcpt_to": json.dumps(row["rcpt_to"])}).fetchone()[0])
                   for row in rows]
    count = len(items)
    top = connection.execute("UPDATE folders SET uidnext = uidnext + ?, highestmodseq = highestmodseq + ? "
                             "WHERE id = ? RETURNING uidnext, highestmodseq", (count, count, folder_id)).fetchone()
    first_uid, first_modseq = int(top[0]) - count, int(top[1]) - count + 1
    uids = [first_uid + offset for offset in range(count)]
    connection.executemany(
        "INSERT INTO deliveries (folder_id, message_id, uid, flags, seen, modseq, internal_date) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(folder_id, message_id, uid, text, 1 if flagops.is_seen(text.split()) else 0, first_modseq + offset,
          _sql_time(utc(item.date) if item.date else now))
         for offset, (message_id, uid, text, item) in enumerate(zip(message_ids, uids, texts, items, strict=True))])
    for anatomy_row in indexed.anatomy_rows:
        _insert(connection, "message_anatomy", {**anatomy_row, "message_id": message_ids[anatomy_row["message_id"]]})
    connection.executemany(f"INSERT INTO {TEXT_TABLE} (rowid, header, body) VALUES (?, ?, ?)",
                           [(message_ids[r["message_id"]], r["header"], r["body"]) for r in indexed.text_rows])
    if indexed.pending:
        connection.executemany("INSERT INTO message_text_pending (message_id, oversize) VALUES (?, ?)",
                               [(row["message_id"], int(row["oversize"])) for row in indexed.pending_rows(message_ids)])
    return folder_id, uidvalidity, uids, indexed.to_index


async def copy_messages(store: ViewStore, account_id: int, source_id: int, spans: Sequence[tuple[int, int]],
                        destination: str, *, move: bool, quota: int | None = None) -> Any:
    """COPY or MOVE the source folder's messages within the UID ``spans`` to ``destination`` (one transaction).

    COPY counts against the quota (the copy is a message the user sees); MOVE does not change the usage.
    """
    from gateway.imap.view.folder_changes import CopyResult, remove_deliveries

    async def work(session: AsyncSession) -> CopyResult:
        dest_id, uidvalidity = await _folder(session, account_id, destination)
        found: list[Any] = []
        for part in chunks(spans):
            found.extend(await session.execute(
                select(Delivery.id, Delivery.uid, Delivery.message_id, Delivery.flags, Delivery.internal_date,
                       Message.size).join(Message, Message.id == Delivery.message_id)
                .where(Delivery.folder_id == source_id, uid_condition(part)).order_by(Delivery.uid)))
        if not found:
            return CopyResult(uidvalidity, [], [])
        if not move:
            await quotas.check(session, account_id, sum(int(row.size) for row in found), quota)
        first_uid, first_modseq = await allocate(session, dest_id, len(found))
        await session.execute(insert(Delivery), [
            dict(folder_id=dest_id, message_id=row.message_id, uid=first_uid + offset, flags=row.flags,
                 seen=flagops.is_seen(parse_flags(row.flags)), modseq=first_modseq + offset,
                 internal_date=utc(row.internal_date)) for offset, row in enumerate(found)])
        if move:
            modseq = await flagops.bump_modseq(session, source_id)
            await remove_deliveries(session, source_id, [(row.id, row.uid) for row in found], modseq)
            # R18: removing mail from a folder is traced (how many, from where to where; never content).
            await record(session, "imap.moved", "ok", rule="R18", mailbox_id=account_id, folder_id=source_id,
                         to_folder_id=dest_id, count=len(found))
        return CopyResult(uidvalidity, [int(row.uid) for row in found],
                          [first_uid + offset for offset in range(len(found))])

    return await store.write(work, "moving messages" if move else "copying messages")
