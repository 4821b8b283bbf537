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
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, case, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import TextClause

from gateway.store import effects as store_effects
from gateway.store import plain
from gateway.store.anatomy import (  # each message's anatomy, in its transaction
    INLINE_BODY,
    TEXT_TABLE,
    MessageAnatomy,
    MessageTextPending,
    Prepared,
    index_messages,
    index_rows,
    text_key,
)
from gateway.store.changes import TEXT_INDEX, mark_changed
from gateway.store.effects import Effect, EventRow
from gateway.store.events import log_event, now
from gateway.store.mailstore import StoredMessage, is_seen
from gateway.store.models import Base, Delivery, Event, Folder, Message
from gateway.store.sqlite_driver import BUSY
from gateway.store.sqlite_writes import sql_time


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


@dataclass
class Plans:
    """Several messages of one unit (an HL7 message's mails, one per destination): the group committer stores
    them in its batch's statements with the other units' plans, instead of a second write per unit."""

    plans: list[Plan]
    #: What the unit's caller receives, given the new message ids (in the order of ``plans``).
    result: Callable[[list[int]], Any]


_MESSAGES = cast(Table, Message.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)
_FOLDERS = cast(Table, Folder.__table__)
#: One INSERT for a batch's messages; the ids come back in the order of the rows (``sort_by_parameter_order``).
_INSERT_MESSAGES = insert(_MESSAGES).returning(_MESSAGES.c.id, sort_by_parameter_order=True)
_INSERT_DELIVERIES = insert(_DELIVERIES)
_EVENTS = cast(Table, Event.__table__)
#: The columns of a ``deliveries`` row, in the order the SQLite path builds its tuples.
_DELIVERY_KEYS = ("folder_id", "message_id", "uid", "flags", "seen", "modseq", "internal_date")


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
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        return await _apply_sqlite(session, connection, plans)
    at = now()
    rows = [_message_row(p, at) for p in plans]
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


def _message_row(plan: Plan, at: datetime) -> dict[str, Any]:
    """The ``messages`` row of a plan (both stores)."""
    m = plan.message
    return dict(received_at=at, sender_mailbox_id=m.sender_mailbox_id, mail_from=m.mail_from, rcpt_to=m.rcpt_to,
                message_id_header=m.message_id_header, subject=m.subject, header_from=m.header_from,
                size=len(m.raw), raw=m.raw)


@dataclass
class _Pending:
    """Parameters of one batch's plain statements, built before the hop; ``slot`` is where each statement's
    ``message_id`` goes (filled in on the thread once the message rows have their ids)."""

    sql: str
    slot: int
    rows: list[tuple[int, list[Any]]]  # (index of the plan, parameters)


def _pending(table: Table, rows: list[tuple[int, dict[str, Any]]]) -> _Pending | None:
    if not rows:
        return None
    statement = plain.for_rows(table, [r for _, r in rows])
    return _Pending(statement.sql, statement.position("message_id"), [(i, statement.params(r)) for i, r in rows])


async def _apply_sqlite(session: AsyncSession, connection: AsyncConnection, plans: list[Plan]) -> list[int]:
    """SQLite: the same rows as :func:`apply`, as plain ``sqlite3`` statements run in one call on the
    transaction's connection (:mod:`gateway.store.plain` binds them as SQLAlchemy would).

    Every parameter is converted before the call; in it, under the write lock, only the new ids are filled in.
    Statement and result processing, the greenlet and a thread hop per statement cost more than SQLite's own
    work on these rows. The call runs on the event loop's thread, so no hop to the connection's thread and back
    lengthens the time the lock is held (bench/HISTORY.md); on the connection's thread only when another writer
    has the lock. Conversation changes are applied in the same call, after the deliveries
    (:func:`gateway.store.effects.apply_conversation_plain`); rows plain statements cannot bind alike go through
    :func:`gateway.store.effects.apply` afterwards, in the same transaction.
    """
    at = now()
    message = plain.for_rows(_MESSAGES, [_message_row(plans[0], at)])
    message_params = [message.params(_message_row(p, at)) for p in plans]
    # The rows of each message's anatomy and text, keyed here by the plan's index (its id comes on the thread).
    indexed = index_rows([(index, p.message.raw) for index, p in enumerate(plans)], defer_over=INLINE_BODY,
                         prepared=[p.prepared for p in plans])
    anatomy_rows = [(row["message_id"], row) for row in indexed.anatomy_rows]
    text_rows = [(row["message_id"], [0, row["header"], row["body"]]) for row in indexed.text_rows]
    flat = indexed.refused
    event_rows = [(index, store_effects.event_row(e, None, at=at)) for index, plan in enumerate(plans)
                  for e in plan.events]
    event_rows += [(index, store_effects.event_row(
        EventRow("imap.anatomy.flat", "flat", detail={"limit": reason}), None, at=at)) for index, reason in flat]
    inserts = [_pending(cast(Table, MessageAnatomy.__table__), anatomy_rows),
               _Pending(f"INSERT INTO {TEXT_TABLE} ({text_key('sqlite')}, header, body) VALUES (?, ?, ?)", 0,
                        text_rows),
               _pending(cast(Table, MessageTextPending.__table__),
                        [(row["message_id"], {**row, "message_id": 0}) for row in indexed.pending_rows()]),
               _pending(_EVENTS, event_rows)]
    later: list[tuple[int, Effect]] = []  # rows plain statements cannot bind alike
    changes: list[tuple[int, store_effects.ConversationChange]] = []  # applied on the thread, in plan order
    tables: dict[Table, list[tuple[int, dict[str, Any]]]] = {}
    wakes: set[int] = set()
    for index, plan in enumerate(plans):
        for effect in plan.effects:
            if isinstance(effect, store_effects.Rows) and effect.rows:
                table = cast(Table, effect.table.__table__)
                tables.setdefault(table, []).extend((index, {**r, "message_id": 0}) for r in effect.rows)
                if effect.wake is not None:
                    wakes.add(effect.wake)
            elif isinstance(effect, store_effects.ConversationChange):
                changes.append((index, effect))
    for table, rows in tables.items():
        try:
            inserts.append(_pending(table, rows))
        except (KeyError, ValueError):  # e.g. a decorated column type, rows of different columns
            later += [(i, store_effects.Rows(_model(table), ({k: v for k, v in r.items() if k != "message_id"},)))
                      for i, r in rows]
    wanted: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
    for index, plan in enumerate(plans):
        for placement in plan.placements:
            wanted[(placement.mailbox_id, placement.folder)].append((index, placement.flags))
    keys = list(wanted)
    advance = {}
    for number, (mailbox_id, name) in enumerate(keys):
        advance.update({f"m{number}": mailbox_id, f"f{number}": name, f"n{number}": len(wanted[(mailbox_id, name)])})
    delivery = plain.plain_insert(_DELIVERIES, _DELIVERY_KEYS)
    if delivery.columns != _DELIVERY_KEYS:  # the tuples below are built in this order
        raise RuntimeError(f"deliveries columns are {delivery.columns}")
    internal_date = sql_time(at)

    def write(db: sqlite3.Connection) -> tuple[list[int], list[int], list[dict[str, Any]]]:
        ids = [db.execute(message.sql, row).lastrowid or 0 for row in message_params]
        for statement in inserts:
            if statement is not None:
                slot = statement.slot
                for index, row in statement.rows:
                    row[slot] = ids[index]
                db.executemany(statement.sql, [row for _, row in statement.rows])
        folders: list[int] = []
        if keys:
            found = {(r[1], r[2]): r for r in db.execute(_sqlite_advance(len(keys)).text, advance).fetchall()}
            absent = [k for k in keys if k not in found]
            if absent:
                raise LookupError(f"no folder {absent[0][1]!r} for mailbox {absent[0][0]}")
            deliveries = []
            for key in keys:
                folder, _, _, uidnext, highest = found[key]
                folders.append(folder)
                items = wanted[key]
                count = len(items)
                for offset, (index, flags) in enumerate(items):
                    deliveries.append((folder, ids[index], uidnext - count + offset, flags, int(is_seen(flags)),
                                       highest - count + 1 + offset, internal_date))
            db.executemany(delivery.sql, deliveries)
        logged = [row for index, change in changes
                  for row in store_effects.apply_conversation_plain(db, change, ids[index], at)]
        return ids, folders, logged

    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    done = driver.run_plain_inline(write)
    message_ids, folders, conversation_events = await driver.run_plain(write) if done is BUSY else done
    for folder_id in folders:
        mark_changed(session, folder_id)
    for wake in wakes:
        mark_changed(session, wake)
    if indexed.to_index:
        mark_changed(session, TEXT_INDEX)  # the indexer starts at the commit
    for index, row in event_rows:
        log_event({**row, "message_id": message_ids[index]})
    for row in conversation_events:
        log_event(row)
    if later:
        await store_effects.apply(session, [(message_ids[i], effect) for i, effect in later])
    return message_ids


def _model(table: Table) -> type[Base]:
    """The mapped class of ``table`` (for :class:`gateway.store.effects.Rows`)."""
    for mapper in Base.registry.mappers:
        if mapper.local_table is table:
            return cast(type[Base], mapper.class_)
    raise LookupError(f"no mapped class for {table.name}")
