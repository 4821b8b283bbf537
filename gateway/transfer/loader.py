"""Storing imported mail: batches of messages filed into an account's folders, one transaction per batch.

Each message gets exactly what IMAP APPEND gives one (gateway/imap/view/mutate.py): its bytes in ``messages``
with the Message-ID, Subject and From summary columns, its IMAP anatomy in the same transaction, a fresh UID and
MODSEQ from one counter update per folder, its flags with the ``seen`` column beside them, its internal date; the
folders are marked changed (and ``pg_notify`` sent on PostgreSQL) so a running daemon's IMAP sessions see the
batch at once. A missing folder is created with its missing superiors, as IMAP CREATE does (RFC 9051 6.3.4).
One event per batch traces the import (R18): how many messages, into which account, by whom; never content.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import email.utils
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

import structlog
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import mailstore
from gateway.store.changes import mark_changed, notify_database
from gateway.store.effects import record_events
from gateway.store.models import Delivery, Folder, Message
from gateway.transfer.names import DELIMITER

log = structlog.get_logger("gateway.transfer")

#: Messages per transaction, and bytes: a batch is stored when either is reached.
BATCH_MESSAGES = 500
BATCH_BYTES = 32 * 1024 * 1024
#: Folders one account may have (as the IMAP view enforces).
MAX_FOLDERS = 1000
#: Header bytes read for the summary columns.
SUMMARY_HEAD = 65536
#: Longest flags text of a delivery (the column holds 1,000 characters): further keywords are dropped.
MAX_FLAGS_TEXT = 1000


class ImportRefused(Exception):
    """The import cannot go on (no such account, too many folders): one sentence."""


@dataclass(frozen=True)
class Item:
    """One message to store: bytes (CRLF line ends), IMAP flags, internal date (None: now)."""

    raw: bytes
    flags: tuple[str, ...] = ()
    date: datetime | None = None


@dataclass
class LoadReport:
    messages: int = 0
    per_folder: dict[str, int] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)


def summary(raw: bytes) -> dict[str, str | None]:
    """Message-ID, Subject and From for the ``messages`` columns, from a bounded read of the header."""
    head = raw[:SUMMARY_HEAD].split(b"\r\n\r\n", 1)[0]
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")

    def value(name: str, limit: int) -> str | None:
        found = parsed.get(name)
        return str(found)[:limit] if found is not None else None

    sender = value("From", 998)
    if sender:
        sender = email.utils.parseaddr(sender)[1] or sender
    return {"message_id_header": value("Message-ID", 998), "subject": value("Subject", 4000), "header_from": sender}


def flags_text(flags: tuple[str, ...]) -> str:
    """The flags column: case-insensitively distinct, sorted, no ``\\Recent`` (a session flag), bounded."""
    distinct = {flag.lower(): flag for flag in flags if flag.lower() != "\\recent"}
    kept: list[str] = []
    length = 0
    for flag in sorted(distinct.values()):
        if length + len(flag) + 1 > MAX_FLAGS_TEXT:
            continue
        kept.append(flag)
        length += len(flag) + 1
    return " ".join(kept)


def superiors(name: str) -> list[str]:
    """``a/b/c`` gives ``a``, ``a/b``, ``a/b/c``."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:i]) for i in range(1, len(levels) + 1)]


class MailLoader:
    """Buffers messages and stores them a batch at a time into one account."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], mailbox_id: int, *, actor: str, source: str,
                 batch_messages: int = BATCH_MESSAGES, batch_bytes: int = BATCH_BYTES,
                 progress: Callable[[int], None] | None = None) -> None:
        self.sessions = sessions
        self.mailbox_id = mailbox_id
        self.actor = actor
        self.source = source
        self.batch_messages = batch_messages
        self.batch_bytes = batch_bytes
        self.progress = progress
        self.report = LoadReport()
        self._pending: list[tuple[str, Item]] = []
        self._pending_bytes = 0

    async def add(self, folder: str, item: Item) -> None:
        self._pending.append((folder, item))
        self._pending_bytes += len(item.raw)
        if len(self._pending) >= self.batch_messages or self._pending_bytes >= self.batch_bytes:
            await self.flush()

    async def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` (and its superiors) now, even if no message goes there."""
        async with self.sessions() as session, session.begin():
            await self._folder_ids(session, {folder})

    async def flush(self) -> None:
        """Store the buffered messages in one transaction."""
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        if not batch:
            return
        async with self.sessions() as session:
            async with session.begin():
                counts = await self._store(session, batch)
                await notify_database(session)
        for name, count in counts.items():
            self.report.per_folder[name] = self.report.per_folder.get(name, 0) + count
        self.report.messages += len(batch)
        log.info("mail.import.batch", mailbox_id=self.mailbox_id, count=len(batch), source=self.source)
        if self.progress is not None:
            self.progress(self.report.messages)

    async def _folder_ids(self, session: AsyncSession, names: set[str]) -> dict[str, int]:
        wanted = sorted({level for name in names for level in superiors(name)})
        rows = await session.execute(select(Folder.name, Folder.id).where(
            Folder.mailbox_id == self.mailbox_id, Folder.name.in_(wanted)))
        ids = {row.name: int(row.id) for row in rows}
        missing = [name for name in wanted if name not in ids]
        if missing:
            have = (await session.execute(select(func.count()).select_from(Folder).where(
                Folder.mailbox_id == self.mailbox_id))).scalar_one()
            if have + len(missing) > MAX_FOLDERS:
                raise ImportRefused(f"The account would have more than {MAX_FOLDERS} folders; nothing more imported.")
            for name in missing:
                ids[name] = await mailstore.create_folder(session, self.mailbox_id, name)
                self.report.created.append(name)
        return ids

    async def _store(self, session: AsyncSession, batch: list[tuple[str, Item]]) -> dict[str, int]:
        folder_ids = await self._folder_ids(session, {name for name, _ in batch})
        at = datetime.now(UTC)
        rows: list[dict[str, Any]] = [
            dict(received_at=at, sender_mailbox_id=None, mail_from="", rcpt_to=[], size=len(item.raw), raw=item.raw,
                 **summary(item.raw)) for _, item in batch]
        result = await session.execute(insert(Message).returning(Message.id, sort_by_parameter_order=True), rows)
        message_ids = list(result.scalars().all())
        from gateway.store.anatomy import index_messages  # the IMAP view of each message, same transaction

        await index_messages(session, [(mid, item.raw) for mid, (_, item) in zip(message_ids, batch, strict=True)])
        grouped: dict[int, list[tuple[int, Item]]] = defaultdict(list)
        names: dict[int, str] = {}
        for message_id, (name, item) in zip(message_ids, batch, strict=True):
            grouped[folder_ids[name]].append((message_id, item))
            names[folder_ids[name]] = name
        deliveries: list[dict[str, Any]] = []
        for folder_id in sorted(grouped):  # counters locked in id order: concurrent writers cannot deadlock
            items = grouped[folder_id]
            allocated = (await session.execute(update(Folder).where(Folder.id == folder_id).values(
                uidnext=Folder.uidnext + len(items), highestmodseq=Folder.highestmodseq + len(items))
                .returning(Folder.uidnext, Folder.highestmodseq))).one()
            first_uid, first_modseq = int(allocated.uidnext) - len(items), int(allocated.highestmodseq) - len(items) + 1
            mark_changed(session, folder_id)
            for offset, (message_id, item) in enumerate(items):
                text = flags_text(item.flags)
                deliveries.append(dict(folder_id=folder_id, message_id=message_id, uid=first_uid + offset,
                                       flags=text, seen=mailstore.is_seen(text), modseq=first_modseq + offset,
                                       internal_date=item.date or at))
        await session.execute(insert(Delivery), deliveries)
        await record_events(session, [dict(
            at=at, kind="mail.imported", rule="R18", outcome="ok", actor=self.actor, mailbox_id=self.mailbox_id,
            message_id=None, conversation_id=None, identity_id=None,
            detail={"count": len(batch), "folders": len(grouped), "source": self.source})])
        return {names[folder_id]: len(items) for folder_id, items in grouped.items()}
