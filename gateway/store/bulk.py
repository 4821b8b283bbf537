"""Applying many accepted messages in one go: the write half of group commit.

A submission is first turned into a :class:`Plan` (what to store, where to file it, what to record); the
group committer then applies every plan of its batch with a handful of statements (one multi-row insert per
table, one counter update per folder) instead of a dozen statements per message. The plan's effects (see
:mod:`gateway.store.effects`: plain data, no callbacks) are applied afterwards in the same transaction.

The statements are Core, on the tables, run on the transaction's connection with a list of parameter sets
(executemany): the ORM's bulk path (mapper lookups, per-row attribute handling, a session flush check) cost
more than SQLite's work on the rows, and the fixed statements are compiled once.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, case, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import TextClause

from gateway.store import effects as store_effects
from gateway.store.anatomy import Prepared, index_messages  # each message's anatomy, in its transaction
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
    #: The message's analysis done before the transaction (store.anatomy.prepare), for ``message.raw`` only.
    prepared: Prepared | None = None


_MESSAGES = cast(Table, Message.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)
_FOLDERS = cast(Table, Folder.__table__)
#: One INSERT for a batch's messages; the ids come back in the order of the rows (``sort_by_parameter_order``).
_INSERT_MESSAGES = insert(_MESSAGES).returning(_MESSAGES.c.id, sort_by_parameter_order=True)
#: On SQLite ``sort_by_parameter_order`` makes it one INSERT per row: under the writer lock each row, in
#: order, gets the next rowid, so the ids sorted are in row order.
_INSERT_MESSAGES_SQLITE = insert(_MESSAGES).returning(_MESSAGES.c.id)
_INSERT_DELIVERIES = insert(_DELIVERIES)


@functools.cache
def _sqlite_advance(folders: int) -> TextClause:
    """SQLite: advance ``folders`` folders' counters, each by its own count, in one UPDATE ... FROM (VALUES)
    (a fixed text per number of folders, so nothing is built or compiled per batch)."""
    values = ", ".join(f"(:m{i}, :f{i}, :n{i})" for i in range(folders))
    return text(
        f"UPDATE folders SET uidnext = uidnext + v.column3, highestmodseq = highestmodseq + v.column3 "
        f"FROM (VALUES {values}) AS v WHERE folders.mailbox_id = v.column1 AND folders.name = v.column2 "
        f"RETURNING folders.id, folders.mailbox_id, folders.name, folders.uidnext, folders.highestmodseq")


async def _allocate(
    connection: AsyncConnection, wanted: dict[tuple[int, str], list[tuple[int, str]]]
) -> list[tuple[int, int, int, list[tuple[int, str]]]]:
    """Take UIDs and MODSEQs for every folder of the batch: two statements (one on SQLite), whatever the
    number of folders.

    On PostgreSQL the folders are first locked in id order (``FOR UPDATE``), so that two gateway processes
    sharing folders can never deadlock; then one UPDATE advances each folder's counters by the number of
    messages it receives and returns the new values. SQLite's writer lock is global and already held
    (``BEGIN IMMEDIATE``): the UPDATE alone, keyed by mailbox and name, does it.
    """
    keys = list(wanted)
    if not keys:  # nothing filed here (a message only for other operators, its Sent copy stored apart)
        return []
    folder = _FOLDERS.c
    if connection.dialect.name == "sqlite":
        params: dict[str, Any] = {}
        for index, (mailbox_id, name) in enumerate(keys):
            params[f"m{index}"], params[f"f{index}"], params[f"n{index}"] = mailbox_id, name, len(wanted[
                (mailbox_id, name)])
        updated = (await connection.execute(_sqlite_advance(len(keys)), params)).all()
        found = {(r.mailbox_id, r.name): r for r in updated}
        absent = [k for k in keys if k not in found]
        if absent:
            raise LookupError(f"no folder {absent[0][1]!r} for mailbox {absent[0][0]}")
        return [(found[k].id, found[k].uidnext, found[k].highestmodseq, wanted[k]) for k in keys]
    rows = (await connection.execute(
        select(_FOLDERS.c.id, _FOLDERS.c.mailbox_id, _FOLDERS.c.name)
        .where(tuple_(_FOLDERS.c.mailbox_id, _FOLDERS.c.name).in_(keys)).order_by(_FOLDERS.c.id).with_for_update()
    )).all()
    ids = {(r.mailbox_id, r.name): r.id for r in rows}
    missing = [k for k in keys if k not in ids]
    if missing:
        raise LookupError(f"no folder {missing[0][1]!r} for mailbox {missing[0][0]}")
    increment = case({ids[k]: len(wanted[k]) for k in keys}, value=folder.id)
    allocated = (await connection.execute(
        update(_FOLDERS).where(folder.id.in_(ids.values()))
        .values(uidnext=folder.uidnext + increment, highestmodseq=folder.highestmodseq + increment)
        .returning(folder.id, folder.uidnext, folder.highestmodseq)
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
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        message_ids = sorted((await connection.execute(_INSERT_MESSAGES_SQLITE, rows)).scalars().all())
    else:
        message_ids = list((await connection.execute(_INSERT_MESSAGES, rows)).scalars().all())
    await index_messages(session, [(i, p.message.raw) for i, p in zip(message_ids, plans, strict=True)],
                         prepared=[p.prepared for p in plans])

    wanted: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    for plan, message_id in zip(plans, message_ids, strict=True):
        for placement in plan.placements:
            wanted[(placement.mailbox_id, placement.folder)].append((message_id, placement.flags))
    deliveries = []
    for folder_id, uidnext, highest, items in await _allocate(connection, wanted):
        mark_changed(session, folder_id)
        count = len(items)
        for offset, (message_id, flags) in enumerate(items):
            deliveries.append(dict(folder_id=folder_id, message_id=message_id, uid=uidnext - count + offset,
                                   flags=flags, seen=is_seen(flags), modseq=highest - count + 1 + offset,
                                   internal_date=at))
    if deliveries:
        await connection.execute(_INSERT_DELIVERIES, deliveries)

    events = [store_effects.event_row(e, message_id)
              for plan, message_id in zip(plans, message_ids, strict=True) for e in plan.events]
    await store_effects.record_events(session, events)
    pairs = zip(plans, message_ids, strict=True)
    await store_effects.apply(session, [(message_id, effect) for plan, message_id in pairs for effect in plan.effects])
    return message_ids
