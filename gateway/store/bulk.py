"""Applying many accepted messages in one go: the write half of group commit.

A submission is first turned into a :class:`Plan` (what to store, where to file it, what to record); the
group committer then applies every plan of its batch with a handful of statements (one multi-row insert per
table, one counter update per folder) instead of a dozen statements per message. The plan's effects (see
:mod:`gateway.store.effects`: plain data, no callbacks) are applied afterwards in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import effects as store_effects
from gateway.store.anatomy import index_messages  # each message's anatomy, in the transaction storing it
from gateway.store.changes import mark_changed
from gateway.store.effects import Effect, EventRow
from gateway.store.events import now
from gateway.store.mailstore import StoredMessage, is_seen
from gateway.store.models import Delivery, Folder, Message


@dataclass(frozen=True)
class Placement:
    """File the message in ``folder`` of mailbox ``mailbox_id`` with these flags."""

    mailbox_id: int
    folder: str
    flags: str = ""


@dataclass
class Plan:
    message: StoredMessage
    placements: list[Placement]
    events: list[EventRow]
    #: What else accepting it changes (conversations, queued rows, wake-ups), applied once the message has its id.
    effects: list[Effect] = field(default_factory=list)
    #: What the unit's caller receives, given the new message id.
    result: Callable[[int], Any] = lambda message_id: message_id


async def _allocate(
    session: AsyncSession, wanted: dict[tuple[int, str], list[tuple[int, str]]]
) -> list[tuple[int, int, int, list[tuple[int, str]]]]:
    """Take UIDs and MODSEQs for every folder of the batch: two statements, whatever the number of folders.

    The folders are first locked in id order (``FOR UPDATE`` on PostgreSQL; SQLite's writer lock is global),
    so that two gateway processes sharing folders can never deadlock; then one UPDATE advances each
    folder's counters by the number of messages it receives and returns the new values.
    """
    keys = list(wanted)
    if not keys:  # nothing filed here (a message only for other operators, its Sent copy stored apart)
        return []
    rows = (await session.execute(
        select(Folder.id, Folder.mailbox_id, Folder.name)
        .where(tuple_(Folder.mailbox_id, Folder.name).in_(keys)).order_by(Folder.id).with_for_update()
    )).all()
    ids = {(r.mailbox_id, r.name): r.id for r in rows}
    missing = [k for k in keys if k not in ids]
    if missing:
        raise LookupError(f"no folder {missing[0][1]!r} for mailbox {missing[0][0]}")
    increment = case({ids[k]: len(wanted[k]) for k in keys}, value=Folder.id)
    allocated = (await session.execute(
        update(Folder).where(Folder.id.in_(ids.values()))
        .values(uidnext=Folder.uidnext + increment, highestmodseq=Folder.highestmodseq + increment)
        .returning(Folder.id, Folder.uidnext, Folder.highestmodseq)
    )).all()
    by_id = {r.id: r for r in allocated}
    return [(ids[k], by_id[ids[k]].uidnext, by_id[ids[k]].highestmodseq, wanted[k]) for k in keys]


async def apply(session: AsyncSession, plans: list[Plan]) -> list[int]:
    """Store every plan's message, file it and record its events; returns the message ids in order."""
    if not plans:
        return []
    at = now()
    rows = [dict(received_at=at, sender_mailbox_id=p.message.sender_mailbox_id, mail_from=p.message.mail_from,
                 rcpt_to=p.message.rcpt_to, message_id_header=p.message.message_id_header,
                 subject=p.message.subject, header_from=p.message.header_from, size=len(p.message.raw),
                 raw=p.message.raw) for p in plans]
    if session.get_bind().dialect.name == "sqlite":
        # One multi-row INSERT (SQLAlchemy's sort_by_parameter_order makes it one INSERT per row on SQLite):
        # under the writer lock each row, in order, gets the next rowid, so the ids sorted are in row order.
        result = await session.execute(insert(Message).returning(Message.id), rows)
        message_ids = sorted(result.scalars().all())
    else:
        result = await session.execute(insert(Message).returning(Message.id, sort_by_parameter_order=True), rows)
        message_ids = list(result.scalars().all())
    await index_messages(session, [(i, p.message.raw) for i, p in zip(message_ids, plans, strict=True)])

    wanted: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    for plan, message_id in zip(plans, message_ids, strict=True):
        for placement in plan.placements:
            wanted[(placement.mailbox_id, placement.folder)].append((message_id, placement.flags))
    deliveries = []
    for folder_id, uidnext, highest, items in await _allocate(session, wanted):
        mark_changed(session, folder_id)
        count = len(items)
        for offset, (message_id, flags) in enumerate(items):
            deliveries.append(dict(folder_id=folder_id, message_id=message_id, uid=uidnext - count + offset,
                                   flags=flags, seen=is_seen(flags), modseq=highest - count + 1 + offset,
                                   internal_date=at))
    if deliveries:
        await session.execute(insert(Delivery), deliveries)

    events = [store_effects.event_row(e, message_id)
              for plan, message_id in zip(plans, message_ids, strict=True) for e in plan.events]
    await store_effects.record_events(session, events)
    pairs = zip(plans, message_ids, strict=True)
    await store_effects.apply(session, [(message_id, effect) for plan, message_id in pairs for effect in plan.effects])
    return message_ids
