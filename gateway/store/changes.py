"""Signals that folders changed, so waiting IMAP sessions (IDLE) wake at once.

Writers mark the folders they touch with :func:`mark_changed` inside their transaction. After the commit,
:meth:`ChangeHub.publish` wakes this process's waiters; on PostgreSQL the same ids are also sent with
``pg_notify`` inside the transaction, which the database delivers to every other gateway process on commit
(their IMAP listener feeds them into their own hub).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "gateway_folders"
_KEY = "changed_folders"

#: Pseudo folder ids for the work queues: a transaction that adds work marks one, so the worker waiting on it
#: wakes at commit (in this process through the hub, in the others through NOTIFY) instead of at its next poll.
OUTBOUND = -1
FILING = -2
DMP_OUTBOX = -3
#: Work for the HL7 relay (gateway/hl7/relay.py): an acknowledgement or a document owed to a hospital system.
HL7_OUTBOX = -4
#: Message bodies waiting for the full-text index (gateway/imap/anatomy/indexer.py).
TEXT_INDEX = -5


def mark_changed(session: AsyncSession, folder_id: int) -> None:
    session.info.setdefault(_KEY, set()).add(folder_id)


def take_changed(session: AsyncSession) -> set[int]:
    changed: set[int] = session.info.pop(_KEY, set())
    return changed


async def notify_database(session: AsyncSession) -> None:
    """On PostgreSQL, queue a NOTIFY for the folders this transaction changed (sent at commit)."""
    changed = session.info.get(_KEY)
    if changed and session.get_bind().dialect.name == "postgresql":
        payload = ",".join(str(i) for i in sorted(changed))
        await session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload})


class ChangeHub:
    """In-process fan-out: one :class:`asyncio.Condition`-like wake-up per folder."""

    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Event]] = {}

    def publish(self, folder_ids: Iterable[int]) -> None:
        for folder_id in folder_ids:
            for event in self._waiters.get(folder_id, ()):
                event.set()

    def watch(self, folder_id: int, event: asyncio.Event | None = None) -> asyncio.Event:
        """An event set whenever ``folder_id`` changes (``event``: one already set by other ids too); release it
        with :meth:`unwatch`."""
        event = event if event is not None else asyncio.Event()
        self._waiters.setdefault(folder_id, set()).add(event)
        return event

    def unwatch(self, folder_id: int, event: asyncio.Event) -> None:
        waiters = self._waiters.get(folder_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[folder_id]
