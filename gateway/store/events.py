"""Recording the event trail (R18): one row per decision or state change, and one log line without health data.

Whoever counts events (gateway/ops/metrics.py) subscribes with :func:`observe`: the store sits below the
packages that watch it and calls no one upward.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import Event

log = structlog.get_logger("gateway.events")

#: Detail keys that may carry health data or names: kept in the database, never logged above debug.
_PRIVATE = frozenset({"matricule", "address", "recipient", "subject", "name", "traits", "reason_text"})

#: Called with every event row as it is logged (the metrics of rule decisions, deposits and documents).
_observers: list[Callable[[Mapping[str, Any]], None]] = []


def observe(callback: Callable[[Mapping[str, Any]], None]) -> None:
    """Call ``callback(row)`` for every event from now on; subscribing the same callback twice is one subscription."""
    if callback not in _observers:
        _observers.append(callback)


def now() -> datetime:
    return datetime.now(UTC)


async def record(
    session: AsyncSession,
    kind: str,
    outcome: str,
    *,
    rule: str | None = None,
    actor: str | None = None,
    mailbox_id: int | None = None,
    message_id: int | None = None,
    conversation_id: int | None = None,
    identity_id: int | None = None,
    **detail: Any,
) -> None:
    """Append an event inside the caller's transaction, and log it (private details only at debug)."""
    row = dict(at=now(), kind=kind, rule=str(rule) if rule is not None else None, outcome=outcome, actor=actor,
               mailbox_id=mailbox_id, message_id=message_id, conversation_id=conversation_id, identity_id=identity_id,
               detail=detail)
    await session.execute(insert(Event).values(**row))
    log_event(row)


def log_event(row: dict[str, Any]) -> None:
    """One log line per event; the actor and private details (health data, names) only at debug."""
    detail: dict[str, Any] = row.get("detail") or {}
    public = {k: v for k, v in detail.items() if k not in _PRIVATE}
    ids = {k: row[k] for k in ("mailbox_id", "message_id", "conversation_id", "identity_id") if row.get(k)}
    log.info(row["kind"], outcome=row["outcome"], rule=row["rule"], **ids, **public)
    for callback in _observers:
        callback(row)
    if len(public) != len(detail):
        log.debug(row["kind"], **{k: v for k, v in detail.items() if k in _PRIVATE})
