"""What accepting a message changes besides the message itself, as plain data the store applies.

Routing decides; the store writes. A :class:`~gateway.store.bulk.Plan` carries a list of effects computed
without the database: rows to insert (outbound recipients, filing and deposit jobs, upstream records), a
keyed state row to create or move (a conversation), and wake-ups for the workers that wait on new rows. The
store fills in the new message's id and applies them in the transaction that stores the message (accept =
durable); it knows nothing of the rules that chose them, and nothing here calls back into routing.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import plain
from gateway.store.changes import mark_changed
from gateway.store.events import log_event, now
from gateway.store.models import Base, Conversation, Event


@dataclass(frozen=True)
class EventRow:
    """An event whose ``message_id`` (and, for a conversation's events, ``conversation_id``) the store fills in."""

    kind: str
    outcome: str
    rule: str | None = None
    actor: str | None = None
    mailbox_id: int | None = None
    conversation_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rows:
    """Rows of ``table`` to insert, each given the new message's id in ``message_id``; ``wake`` is a change
    channel (:func:`gateway.store.changes.mark_changed`) signalled at commit, so the worker reading
    ``table`` starts at once."""

    table: type[Base]
    rows: tuple[dict[str, Any], ...]
    wake: int | None = None


@dataclass(frozen=True)
class Step:
    """Set ``values`` on the row if any differs from what it holds, and then record ``event``."""

    values: dict[str, Any]
    event: EventRow


@dataclass(frozen=True)
class ConversationChange:
    """Create the conversation keyed by ``key`` (``professional_id`` or ``remote_professional``, with
    ``matricule``) with ``create`` values if it does not exist, recording ``created``; then apply ``steps``
    in order; then record ``events`` against it. Applied when the transaction runs, on the row as it is then
    (locked on PostgreSQL), so two messages of one batch for one conversation see each other."""

    key: dict[str, Any]
    create: dict[str, Any]
    created: EventRow
    steps: tuple[Step, ...] = ()
    events: tuple[EventRow, ...] = ()


Effect = Rows | ConversationChange


def event_row(event: EventRow, message_id: int | None, conversation_id: int | None = None,
              at: datetime | None = None) -> dict[str, Any]:
    """The ``events`` row of ``event``, dated ``at`` (default: now; a batch's rows may share its time)."""
    return dict(at=at or now(), kind=event.kind, rule=str(event.rule) if event.rule is not None else None,
                outcome=event.outcome, actor=event.actor, mailbox_id=event.mailbox_id, message_id=message_id,
                conversation_id=conversation_id if conversation_id is not None else event.conversation_id,
                identity_id=None, detail=event.detail)


_INSERT_EVENTS = insert(cast(Table, Event.__table__))


async def record_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert event rows (one statement) and log each (R18)."""
    if rows:
        await (await session.connection()).execute(_INSERT_EVENTS, rows)  # Core: the ORM's bulk path costs more
        for row in rows:
            log_event(row)


async def _conversation(session: AsyncSession, change: ConversationChange, message_id: int | None) -> int:
    query = select(Conversation).where(*(getattr(Conversation, k) == v for k, v in change.key.items()))
    row = (await session.execute(query.with_for_update())).scalar_one_or_none()
    events: list[dict[str, Any]] = []
    at = now()
    if row is None:
        values = {**change.key, **change.create, "opened_at": at, "updated_at": at}
        conversation_id = (await session.execute(
            insert(Conversation).values(**values).returning(Conversation.id))).scalar_one()
        current = dict(values)
        events.append(event_row(change.created, message_id, conversation_id))
    else:
        conversation_id = row.id
        current = {k: getattr(row, k) for step in change.steps for k in step.values}
    for step in change.steps:
        if all(current.get(k) == v for k, v in step.values.items()):
            continue
        await session.execute(update(Conversation).where(Conversation.id == conversation_id)
                              .values(updated_at=at, **step.values))
        current.update(step.values)
        events.append(event_row(step.event, message_id, conversation_id))
    events += [event_row(e, message_id, conversation_id) for e in change.events]
    await record_events(session, events)
    return conversation_id


_CONVERSATIONS = cast(Table, Conversation.__table__)
_EVENTS = cast(Table, Event.__table__)


def apply_conversation_plain(db: sqlite3.Connection, change: ConversationChange, message_id: int | None,
                             at: datetime) -> list[dict[str, Any]]:
    """What :func:`_conversation` does, as plain ``sqlite3`` statements on the transaction's own connection, on
    its thread (SQLite's acceptance path, :mod:`gateway.store.bulk`): the same rows and events without a thread
    hop and SQLAlchemy's machinery per statement. SQLite has one writer, so the row read is the row updated.
    Returns the event rows inserted, for the caller to log (R18) once back on the event loop."""
    keys = list(change.key.items())
    columns = list(dict.fromkeys(k for step in change.steps for k in step.values))
    where = " AND ".join(f"{k} IS NULL" if v is None else f"{k} = ?" for k, v in keys)
    found = db.execute(f"SELECT {', '.join(['id', *columns])} FROM conversations WHERE {where}",
                       [plain.bind(_CONVERSATIONS, k, v) for k, v in keys if v is not None]).fetchone()
    events: list[dict[str, Any]] = []
    if found is None:
        values = {**change.key, **change.create, "opened_at": at, "updated_at": at}
        statement = plain.plain_insert(_CONVERSATIONS, tuple(values))
        conversation_id = int(db.execute(statement.sql, statement.params(values)).lastrowid or 0)
        current = dict(values)
        events.append(event_row(change.created, message_id, conversation_id, at=at))
    else:
        conversation_id = int(found[0])
        current = dict(zip(columns, found[1:], strict=True))  # as stored: a boolean reads 0 or 1, equal to it
    for step in change.steps:
        if all(current.get(k) == v for k, v in step.values.items()):
            continue
        changed = {"updated_at": at, **step.values}
        db.execute(f"UPDATE conversations SET {', '.join(f'{k} = ?' for k in changed)} WHERE id = ?",
                   [*(plain.bind(_CONVERSATIONS, k, v) for k, v in changed.items()), conversation_id])
        current.update(step.values)
        events.append(event_row(step.event, message_id, conversation_id, at=at))
    events += [event_row(e, message_id, conversation_id, at=at) for e in change.events]
    if events:
        db.executemany(*plain.params(_EVENTS, events))
    return events


async def apply(session: AsyncSession, effects: list[tuple[int | None, Effect]]) -> None:
    """Apply ``(message_id, effect)`` pairs in order, inside the caller's transaction.

    Rows of one table are inserted together (one multi-row statement per table for a whole batch).
    """
    tables: dict[type[Base], list[dict[str, Any]]] = {}
    for message_id, effect in effects:
        if isinstance(effect, Rows):
            tables.setdefault(effect.table, []).extend({**r, "message_id": message_id} for r in effect.rows)
            if effect.wake is not None:
                mark_changed(session, effect.wake)
        else:
            await _conversation(session, effect, message_id)
    for table, rows in tables.items():
        if rows:
            await (await session.connection()).execute(insert(cast(Table, table.__table__)), rows)
