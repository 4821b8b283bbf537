"""Exporting an account's mail to a Maildir++ tree: every folder, every message with its flags and date.

Each folder is read in UID order, a bounded number of messages per query, from read sessions (on SQLite they
never wait for the daemon's writers). Files are written through ``tmp/`` and renamed into ``cur/``, named with
their ``:2,`` flags, their keywords in the folder's ``dovecot-keywords``, and their internal date as mtime,
so Dovecot, Courier, mutt or a later ``gateway mail import`` read them back as they were.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.models import Delivery, Folder, Message
from gateway.transfer.maildir import MaildirWriter

#: Messages read per query.
CHUNK = 200


@dataclass
class ExportReport:
    messages: int = 0
    per_folder: dict[str, int] = field(default_factory=dict)
    dropped_keywords: set[str] = field(default_factory=set)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def export_mailbox(reads: async_sessionmaker[AsyncSession], mailbox_id: int, root: Path, *,
                         progress: Callable[[int], None] | None = None) -> ExportReport:
    """Write every folder of account ``mailbox_id`` under ``root`` (a new or empty folder)."""
    report = ExportReport()
    writer = MaildirWriter(root)
    async with reads() as session, session.begin():
        folders = (await session.execute(select(Folder.id, Folder.name).where(
            Folder.mailbox_id == mailbox_id).order_by(Folder.name))).all()
    for folder in folders:
        out = writer.folder(folder.name)
        last = 0
        while True:
            async with reads() as session, session.begin():
                rows = (await session.execute(
                    select(Delivery.uid, Delivery.flags, Delivery.internal_date, Message.raw)
                    .join(Message, Message.id == Delivery.message_id)
                    .where(Delivery.folder_id == folder.id, Delivery.uid > last)
                    .order_by(Delivery.uid).limit(CHUNK))).all()
            for row in rows:
                out.add(bytes(row.raw), row.flags.split(), _utc(row.internal_date), int(row.uid))
                report.messages += 1
            if rows:
                last = int(rows[-1].uid)
                if progress is not None:
                    progress(report.messages)
            if len(rows) < CHUNK:
                break
        out.close()
        report.per_folder[folder.name] = out.count
        report.dropped_keywords |= out.dropped_keywords
    return report
