"""The outbound queue's rows: mail for another operator, one row per recipient, claimed by (message, domain).

Rows are written in the transaction that stores the message (:func:`gateway.routing.delivery.enqueue_outbound`),
so "250" to our sender means they cannot be lost. The table is a queue of the store's primitive
(:mod:`gateway.store.queue`): ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several instances share one
queue, SQLite's conditional update of the lease; a claim moves ``next_attempt_at`` forward by the lease, so the
rows of a process that died mid-delivery come due again by themselves.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.routing.delivery import OUTBOUND_WAKE
from gateway.store import queue as q
from gateway.store.events import now
from gateway.store.models import Message, OutboundRecipient

QUEUED, SENT, FAILED = "queued", "sent", "failed"
#: Rows looked at per claim; the due ones are grouped by (message, domain).
CLAIM_SCAN = 200
MAX_RECIPIENTS_PER_TRANSACTION = 100

#: One unit is the due recipients of one message at one domain (one SMTP transaction, at most
#: MAX_RECIPIENTS_PER_TRANSACTION); a claimed row stays ``queued`` and its lease is its due time. A final
#: failure (5xx, or ``max_age`` reached) is ``failed``, with its DSN.
QUEUE = q.Queue(OutboundRecipient, waiting=(QUEUED,), dead=FAILED, group=("message_id", "domain"),
                per_unit=MAX_RECIPIENTS_PER_TRANSACTION, wake=OUTBOUND_WAKE)


@dataclass(frozen=True)
class Row:
    id: int
    message_id: int
    sender_mailbox_id: int | None
    mail_from: str
    recipient: str
    domain: str
    notify: str | None
    orcpt: str | None
    ret: str | None
    envid: str | None
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Group:
    """Recipients of one message at one domain: one SMTP transaction."""

    message_id: int
    domain: str
    rows: tuple[Row, ...]
    raw: bytes
    received_at: datetime
    lease: q.Lease | None = None


def _as_row(r: OutboundRecipient) -> Row:
    return Row(r.id, r.message_id, r.sender_mailbox_id, r.mail_from, r.recipient, r.domain, r.notify, r.orcpt,
               r.ret, r.envid, r.attempts, r.created_at)


def aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes (stored as UTC); PostgreSQL returns aware ones."""
    return value if value.tzinfo is not None else value.replace(tzinfo=now().tzinfo)


async def claim(session: AsyncSession, groups: int, lease: float) -> list[Group]:
    """Claim up to ``groups`` due (message, domain) groups for this worker, for ``lease`` seconds."""
    units = await q.claim(session, QUEUE, units=groups, lease=lease, scan=CLAIM_SCAN)
    if not units:
        return []
    message_ids = {unit.key[0] for unit in units}
    messages = {m.id: (m.raw, m.received_at) for m in (await session.execute(
        select(Message.id, Message.raw, Message.received_at).where(Message.id.in_(message_ids)))).all()}
    result = []
    for unit in units:
        message_id, domain = unit.key
        raw, received = messages[message_id]
        result.append(Group(message_id, domain, tuple(_as_row(m) for m in unit.rows), raw, aware(received),
                            unit.lease))
    return result


async def release(session: AsyncSession, group: Group, lease: q.Lease) -> None:
    """Give the group back unanswered, due now and this attempt not counted (unless its lease was taken over)."""
    await q.release(session, QUEUE, lease, [r.id for r in group.rows])


async def extend(session: AsyncSession, group: Group, lease: q.Lease, seconds: float) -> q.Lease | None:
    """Renew a live delivery's claim; None when another instance took it over."""
    return await q.extend(session, QUEUE, lease, [r.id for r in group.rows], seconds)


# --- administration (gateway queue ...) ---------------------------------------------------------------------
async def list_queue(session: AsyncSession, state: str | None = None, limit: int = 1000) -> list[OutboundRecipient]:
    query = select(OutboundRecipient).order_by(OutboundRecipient.id).limit(limit)
    if state:
        query = query.where(OutboundRecipient.state == state)
    return list((await session.execute(query)).scalars().all())


async def retry_now(session: AsyncSession, ids: list[int] | None = None) -> int:
    """Make queued recipients due at once (all, or those ``ids``); returns how many."""
    return await q.due_now(session, QUEUE, ids or None)
