"""The full-text index of long message bodies, written after the commit that stored them.

A message whose text parts exceed :data:`~gateway.store.anatomy.INLINE_BODY` is stored with its header indexed
and a ``message_text_pending`` row; this worker has its body put into the trigram index
(:func:`~gateway.store.anatomy.index_pending_body`), one message per transaction so no delivery waits behind more
than one of them. It starts a moment after the commit that woke it (:data:`SETTLE`), so the work that commit
queued goes first. Until then SEARCH reads the body from the message itself
(:func:`~gateway.imap.anatomy.store.search_text`), so answers never depend on how far the indexer has come. Woken
by the commit that adds work (``TEXT_INDEX`` on the change hub, NOTIFY on PostgreSQL); a slow poll catches
commits made by other processes on SQLite. A body longer than
:data:`~gateway.store.anatomy.INDEXED_BODY_MAX` is left out of the index (``oversize``): SEARCH reads it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store.anatomy import INDEXED, MessageTextPending, index_pending_body
from gateway.store.changes import TEXT_INDEX, ChangeHub
from gateway.tasks import Background

log = structlog.get_logger("gateway.imap")

#: Seconds between two looks for work nobody woke us for (commits of other processes on SQLite).
POLL = 5.0
#: Pending messages read per look.
BATCH = 20
#: Pause between two messages, so deliveries queued behind the writer go first.
BREATHE = 0.01
#: Seconds between the commit that wakes the indexer and its first transaction: the work that commit queued
#: (filing, deposits, outbound) takes the single SQLite writer first, and a burst of deliveries is indexed after.
SETTLE = 1.0


class TextIndexer(Background):
    """Indexes pending message bodies as they come (one process of the daemon does it)."""

    name = "imap-text-indexer"
    once_per_daemon = True

    def __init__(self, sessions: async_sessionmaker[AsyncSession], hub: ChangeHub, poll: float = POLL,
                 settle: float = SETTLE) -> None:
        super().__init__()
        self.sessions = sessions
        self.hub = hub
        self.poll = poll
        self.settle = settle

    async def main(self) -> None:
        wake = self.hub.watch(TEXT_INDEX)
        try:
            while True:
                wake.clear()
                try:
                    done = await self.run_once()
                except Exception:  # the store may be briefly unavailable: the rows wait for the next round
                    log.exception("imap.text_index_failed")
                    done = 0
                if not done:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.poll)
                    await asyncio.sleep(self.settle)
        finally:
            self.hub.unwatch(TEXT_INDEX, wake)

    async def run_once(self) -> int:
        """Index up to :data:`BATCH` pending messages, oldest first; returns how many were handled (indexed, or
        found too long to index)."""
        async with self.sessions() as session:
            ids = list((await session.execute(select(MessageTextPending.message_id)
                                              .where(MessageTextPending.oversize.is_(False))
                                              .order_by(MessageTextPending.message_id).limit(BATCH))).scalars())
        outcomes: list[str] = []
        for message_id in ids:
            async with self.sessions() as session:
                outcome = await index_pending_body(session, message_id)
                await session.commit()
            if outcome is not None:
                outcomes.append(outcome)
            await asyncio.sleep(BREATHE)
        if outcomes:
            indexed = outcomes.count(INDEXED)
            log.info("imap.text_indexed", count=indexed, oversize=len(outcomes) - indexed)
        return len(outcomes)
