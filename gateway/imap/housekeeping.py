"""Pruning of IMAP expunge records: ``imap_expunged`` would otherwise grow with every message ever removed.

A record is only needed by a session that last looked at its folder before the expunge. Records older than
:data:`RETENTION` are deleted, and the folder's ``expunged_floor`` is raised to the highest MODSEQ deleted in the
same transaction: a session (or cached UID list) older than the floor then compares UID lists to find what went
(``FolderData._changes``), so pruning never makes a client miss an expunge.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.imap.models import ExpungedUid
from gateway.store.models import Folder
from gateway.tasks import Background

log = structlog.get_logger("gateway.imap")

#: How long expunge records are kept: sessions idle for longer resynchronise by comparing UID lists.
RETENTION = timedelta(days=7)
#: Time between two prunings (each gateway process prunes; the work is idempotent).
INTERVAL = 3600.0


async def prune_expunged(session: AsyncSession, before: datetime) -> int:
    """Delete the expunge records older than ``before`` (or undated); returns how many were deleted."""
    old = or_(ExpungedUid.expunged_at.is_(None), ExpungedUid.expunged_at < before)
    tops = (await session.execute(select(ExpungedUid.folder_id, func.max(ExpungedUid.modseq)).where(old)
                                  .group_by(ExpungedUid.folder_id).order_by(ExpungedUid.folder_id))).all()
    removed = 0
    for folder_id, top in tops:
        # The floor first: a reader that finds the records gone also finds the floor that says so.
        await session.execute(update(Folder).where(Folder.id == folder_id, Folder.expunged_floor < top)
                              .values(expunged_floor=top))
        result = await session.execute(delete(ExpungedUid).where(ExpungedUid.folder_id == folder_id,
                                                                 ExpungedUid.modseq <= top))
        removed += result.rowcount  # type: ignore[attr-defined]
    return removed


class ExpungePruner(Background):
    """Prunes expunge records every :data:`INTERVAL` seconds."""

    name = "imap-expunge-pruner"
    once_per_daemon = True

    def __init__(self, sessions: async_sessionmaker[AsyncSession], retention: timedelta = RETENTION,
                 interval: float = INTERVAL) -> None:
        super().__init__()
        self.sessions = sessions
        self.retention = retention
        self.interval = interval

    async def main(self) -> None:
        while True:
            try:
                async with self.sessions() as session:
                    removed = await prune_expunged(session, datetime.now(UTC) - self.retention)
                    await session.commit()
                if removed:
                    log.info("imap.expunged_pruned", count=removed)
            except Exception:  # the store may be briefly unavailable: try again at the next interval
                log.exception("imap.expunged_prune_failed")
            await asyncio.sleep(self.interval)
