"""The durable deposit outbox: jobs pending → sent → accepted | refused, retried with backoff on transport errors.

Exactly once, with the document's uniqueId as idempotency key:
- a job is created inside the caller's transaction (the message and its deposit jobs commit together);
- the outbox is a queue of the store's primitive (:data:`QUEUE`, :mod:`gateway.store.queue`): claiming moves a
  job to ``sent`` and pushes ``next_attempt_at`` forward by a lease, in one transaction (``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL, so several processes share the outbox; SQLite's conditional update of the lease);
- the answer is recorded only by the claim that is still current (``claim_token``, the lease's owner);
- a worker that dies between sending and recording leaves the job ``sent``; when the lease runs out another
  claim re-sends it, and the DMP's duplicate-uniqueId answer, confirmed by an ITI-18 query that finds the same
  document (uniqueId and hash), counts as accepted. The DMP therefore holds each document once.

Documents deposited together are linked (R15): :func:`link` gives the jobs of one message (one patient, one
author) one ``submission_uid``; the worker claims them together and sends them as one submission set, whose
uniqueId is derived from the documents it carries (the same documents, the same submission). The queue's unit is
that group: claimed whole or not at all, leased, retried and answered as one.

Every step is an event of the trail (R18).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from gateway.codes.rules import Rule
from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.deposit import submission_uid_for
from gateway.store import queue as q
from gateway.store.changes import DMP_OUTBOX, mark_changed
from gateway.store.events import record
from gateway.store.models import Base, Event, Id

log = structlog.get_logger("gateway.dmp_bridge.outbox")

PENDING = "pending"
SENT = "sent"
RETRY = "retry"
ACCEPTED = "accepted"
REFUSED = "refused"
CANCELLED = "cancelled"
STATES = (PENDING, SENT, RETRY, ACCEPTED, REFUSED, CANCELLED)
#: The states a deposit ends in: the DMP answered (the HL7 relay relays the answer, gateway/hl7/relay.py).
FINAL = frozenset({ACCEPTED, REFUSED})


class DmpDeposit(Base):
    """One document to deposit in one patient's DMP: the outbox row (claimed with SKIP LOCKED)."""

    __tablename__ = "dmp_deposits"
    __table_args__ = (Index("ix_dmp_deposits_due", "state", "next_attempt_at"),
                      Index("ix_dmp_deposits_submission_uid", "submission_uid"))
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: XDSDocumentEntry.uniqueId (the CDA id): the idempotency key.
    unique_id: Mapped[str] = mapped_column(String(128), unique=True)
    #: Shared by the jobs deposited together (R15, :func:`link`); the submission set's uniqueId when all go.
    submission_uid: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True, index=True)
    sender_mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id"), nullable=True)
    matricule: Mapped[str] = mapped_column(String(15), index=True)
    author_id: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text)
    type_code: Mapped[str] = mapped_column(String(40))
    visibility: Mapped[list[str]] = mapped_column(JSON, default=list)
    replaces: Mapped[str | None] = mapped_column(String(128), nullable=True)
    cda: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claim_token: Mapped[str | None] = mapped_column(String(36), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_code: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


#: The outbox as a durable queue: a claim moves jobs to ``sent`` under its token; the jobs linked for one
#: submission set (R15, one ``submission_uid``) are one unit, claimed whole or not at all. Transport errors are
#: retried without bound (the ceiling of the backoff); the DMP's own refusals end a job (``refused``).
QUEUE = q.Queue(DmpDeposit, waiting=(PENDING, RETRY), dead=REFUSED, leased=SENT, retry_state=RETRY,
                owner="claim_token", group=("submission_uid",), whole=True, wake=DMP_OUTBOX)


def now() -> datetime:
    return datetime.now(UTC)


# --- Enqueueing (inside the caller's transaction) ----------------------------------------------------------------

async def enqueue(session: AsyncSession, *, cda: bytes, unique_id: str, matricule: str, author_id: str, title: str,
                  type_code: str, visibility: Sequence[str] = (), replaces: str | None = None,
                  message_id: int | None = None, sender_mailbox_id: int | None = None,
                  identity_id: int | None = None, submission_root: str = "1.2.250.1.999",
                  actor: str | None = None) -> int | None:
    """Add a deposit job in the caller's transaction; None when this uniqueId is already in the outbox."""
    existing = (await session.execute(select(DmpDeposit.id, DmpDeposit.state)
                                      .where(DmpDeposit.unique_id == unique_id))).first()
    if existing is not None:
        await record(session, "dmp.deposit.duplicate", "skipped", rule=Rule.R18, actor=actor, message_id=message_id,
                     identity_id=identity_id, job_id=existing.id, state=existing.state, unique_id=unique_id)
        return None
    moment = now()
    submission_uid = submission_uid_for(submission_root, [unique_id])
    job = DmpDeposit(unique_id=unique_id, submission_uid=submission_uid, message_id=message_id,
                     sender_mailbox_id=sender_mailbox_id, matricule=matricule, author_id=author_id, title=title,
                     type_code=type_code, visibility=sorted(visibility), replaces=replaces, cda=cda, size=len(cda),
                     state=PENDING, attempts=0, next_attempt_at=moment, created_at=moment)
    session.add(job)
    await session.flush()
    mark_changed(session, DMP_OUTBOX)  # the outbox worker wakes at commit, not at its next poll
    await record(session, "dmp.deposit.queued", PENDING, rule=Rule.R12, actor=actor, message_id=message_id,
                 identity_id=identity_id, mailbox_id=sender_mailbox_id, job_id=job.id, unique_id=unique_id,
                 type_code=type_code, visibility=sorted(visibility), replaces=replaces, matricule=matricule)
    return job.id


def submission_groups(rows: Sequence[Any]) -> list[list[Any]]:
    """R15: rows (with ``matricule``, ``author_id`` and ``size``), in queue order, cut into the submission sets
    they are deposited as: one per patient and author (what one assertion covers), at most
    MAX_DOCUMENTS_PER_SUBMISSION documents and MAX_SUBMISSION_BYTES each."""
    groups: list[list[Any]] = []
    open_group: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        key = (row.matricule, row.author_id)
        group = open_group.get(key)
        if (group is None or len(group) == c.MAX_DOCUMENTS_PER_SUBMISSION
                or sum(r.size for r in group) + row.size > c.MAX_SUBMISSION_BYTES):
            group = open_group[key] = []
            groups.append(group)
        group.append(row)
    return groups


@dataclass(frozen=True)
class NewDeposit:
    """A deposit to queue, as the rules decided it (R12–R16); what :func:`add_deposits` writes."""

    cda: bytes
    unique_id: str
    matricule: str
    author_id: str
    title: str
    type_code: str
    visibility: tuple[str, ...] = ()
    replaces: str | None = None
    message_id: int | None = None
    sender_mailbox_id: int | None = None
    identity_id: int | None = None
    actor: str | None = None

    @property
    def size(self) -> int:
        return len(self.cda)


@dataclass(frozen=True)
class Added:
    """What :func:`add_deposits` did: each deposit's job id (None: its uniqueId was already in the outbox), its
    trail row (queued or duplicate), and the rows of the submission sets linked (R15), to record in order."""

    job_ids: list[int | None]
    rows: list[dict[str, Any]]
    linked: list[dict[str, Any]]

    @property
    def queued(self) -> list[int]:
        return [i for i in self.job_ids if i is not None]


def trail_row(kind: str, outcome: str, *, rule: str | None = None, actor: str | None = None,
              mailbox_id: int | None = None, message_id: int | None = None, identity_id: int | None = None,
              **detail: Any) -> dict[str, Any]:
    """An event row as :func:`gateway.store.events.record` writes it, for
    :func:`gateway.store.effects.record_events` (one statement for many); ``at`` is set when it is written."""
    return dict(at=None, kind=kind, rule=str(rule) if rule is not None else None, outcome=outcome, actor=actor,
                mailbox_id=mailbox_id, message_id=message_id, conversation_id=None, identity_id=identity_id,
                detail=detail)


async def add_deposits(session: AsyncSession, deposits: Sequence[NewDeposit], *, root: str,
                       message_id: int | None = None, actor: str | None = None) -> Added:
    """Queue the deposits of one message in the caller's transaction with three statements whatever their number
    (the uniqueIds already queued, one insert of the jobs, linked for R15 before they are written, so no worker
    can claim a part of a submission set); the trail rows are returned for the caller to record with its own.

    A uniqueId already in the outbox, or twice in ``deposits``, is not queued again (R18: ``duplicate``).
    """
    if not deposits:
        return Added([], [], [])
    wanted = sorted({d.unique_id for d in deposits})
    existing = {row.unique_id: row for row in (await session.execute(
        select(DmpDeposit.id, DmpDeposit.unique_id, DmpDeposit.state)
        .where(DmpDeposit.unique_id.in_(wanted)))).all()}
    fresh: list[NewDeposit] = []
    for deposit in deposits:
        if deposit.unique_id not in existing and all(f.unique_id != deposit.unique_id for f in fresh):
            fresh.append(deposit)
    uids = {d.unique_id: submission_uid_for(root, [d.unique_id]) for d in fresh}
    linked: list[tuple[str, list[NewDeposit]]] = []
    for group in submission_groups(fresh):
        if len(group) > 1:
            uid = submission_uid_for(root, (d.unique_id for d in group))
            uids.update((d.unique_id, uid) for d in group)
            linked.append((uid, group))
    moment = now()
    values = [dict(unique_id=d.unique_id, submission_uid=uids[d.unique_id], message_id=d.message_id,
                   sender_mailbox_id=d.sender_mailbox_id, matricule=d.matricule, author_id=d.author_id,
                   title=d.title, type_code=d.type_code, visibility=sorted(d.visibility), replaces=d.replaces,
                   cda=d.cda, size=d.size, state=PENDING, attempts=0, next_attempt_at=moment, claim_token=None,
                   last_error=None, result_code=None, created_at=moment, sent_at=None, finished_at=None)
              for d in fresh]
    ids: dict[str, int] = {}
    if values:
        if session.get_bind().dialect.name == "sqlite":
            # under the writer lock each row, in order, takes the next rowid (as gateway.store.bulk relies on)
            new = sorted((await session.execute(insert(DmpDeposit).returning(DmpDeposit.id), values)).scalars())
        else:
            new = list((await session.execute(
                insert(DmpDeposit).returning(DmpDeposit.id, sort_by_parameter_order=True), values)).scalars())
        ids = {d.unique_id: i for d, i in zip(fresh, new, strict=True)}
        mark_changed(session, DMP_OUTBOX)  # the outbox worker wakes at commit, not at its next poll
    job_ids: list[int | None] = []
    rows = []
    taken: set[str] = set()
    for deposit in deposits:
        if deposit.unique_id in ids and deposit.unique_id not in taken:
            taken.add(deposit.unique_id)
            job_ids.append(ids[deposit.unique_id])
            rows.append(trail_row(
                "dmp.deposit.queued", PENDING, rule=Rule.R12, actor=deposit.actor, message_id=deposit.message_id,
                identity_id=deposit.identity_id, mailbox_id=deposit.sender_mailbox_id,
                job_id=ids[deposit.unique_id], unique_id=deposit.unique_id, type_code=deposit.type_code,
                visibility=sorted(deposit.visibility), replaces=deposit.replaces, matricule=deposit.matricule))
            continue
        job_ids.append(None)
        before = existing.get(deposit.unique_id)
        rows.append(trail_row(
            "dmp.deposit.duplicate", "skipped", rule=Rule.R18, actor=deposit.actor, message_id=deposit.message_id,
            identity_id=deposit.identity_id, job_id=before.id if before is not None else ids[deposit.unique_id],
            state=before.state if before is not None else PENDING, unique_id=deposit.unique_id))
    linked_rows = [trail_row("dmp.deposit.linked", "linked", rule=Rule.R15, actor=actor, message_id=message_id,
                             job_ids=[ids[d.unique_id] for d in group], submission_uid=uid, documents=len(group))
                   for uid, group in linked]
    return Added(job_ids, rows, linked_rows)


async def link(session: AsyncSession, job_ids: Iterable[int], *, root: str, actor: str | None = None,
               message_id: int | None = None) -> list[list[int]]:
    """R15: the jobs just queued for one message are deposited together, as one submission set per patient and
    author (what one assertion covers), at most MAX_DOCUMENTS_PER_SUBMISSION documents and MAX_SUBMISSION_BYTES.

    Runs in the caller's transaction, before any worker can claim the jobs; returns the linked groups.
    """
    wanted = sorted(set(job_ids))
    if len(wanted) < 2:
        return []
    rows = (await session.execute(select(DmpDeposit.id, DmpDeposit.unique_id, DmpDeposit.matricule,
                                         DmpDeposit.author_id, DmpDeposit.size)
                                  .where(DmpDeposit.id.in_(wanted)).order_by(DmpDeposit.id))).all()
    groups = submission_groups(rows)
    linked = []
    for group in (g for g in groups if len(g) > 1):
        uid = submission_uid_for(root, (r.unique_id for r in group))
        ids = [r.id for r in group]
        await session.execute(update(DmpDeposit).where(DmpDeposit.id.in_(ids)).values(submission_uid=uid))
        await record(session, "dmp.deposit.linked", "linked", rule=Rule.R15, actor=actor, message_id=message_id,
                     job_ids=ids, submission_uid=uid, documents=len(ids))
        linked.append(ids)
    return linked


def _summary(job: DmpDeposit) -> dict[str, Any]:
    return {"id": job.id, "state": job.state, "unique_id": job.unique_id, "type_code": job.type_code,
            "title": job.title, "attempts": job.attempts, "message_id": job.message_id,
            "next_attempt_at": job.next_attempt_at.isoformat() if job.next_attempt_at else None,
            "result_code": job.result_code, "last_error": job.last_error,
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


async def list_jobs(session: AsyncSession, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Jobs, newest first, optionally of one state."""
    query = select(DmpDeposit).order_by(DmpDeposit.id.desc()).limit(limit)
    if state is not None:
        query = query.where(DmpDeposit.state == state)
    return [_summary(j) for j in (await session.execute(query)).scalars().all()]


async def show_job(session: AsyncSession, job_id: int) -> dict[str, Any]:
    """One job with its events (matched on the job id in the event details)."""
    job = await session.get(DmpDeposit, job_id)
    if job is None:
        raise LookupError(f"No DMP deposit job has id {job_id}.")
    summary = _summary(job)
    summary.update(matricule=job.matricule, author_id=job.author_id, visibility=job.visibility,
                   replaces=job.replaces, size=job.size, submission_uid=job.submission_uid)
    events = (await session.execute(select(Event).where(Event.kind.startswith("dmp.")).order_by(Event.id))).scalars()
    summary["events"] = [{"at": e.at.isoformat(), "kind": e.kind, "rule": e.rule, "outcome": e.outcome,
                          "detail": e.detail} for e in events if (e.detail or {}).get("job_id") == job_id]
    return summary


async def retry_job(session: AsyncSession, job_id: int, actor: str) -> None:
    """Make a refused, cancelled or waiting job due now (after the cause was fixed, e.g. the patient authorised)."""
    job = await session.get(DmpDeposit, job_id, with_for_update=True)
    if job is None:
        raise LookupError(f"No DMP deposit job has id {job_id}.")
    if job.state in (ACCEPTED, SENT):
        raise ValueError(f"Job {job_id} is {job.state}; only refused, cancelled, pending or retry jobs can be retried.")
    previous = job.state
    job.state = PENDING
    job.next_attempt_at = now()
    job.finished_at = None
    await record(session, "dmp.deposit.retry_requested", PENDING, rule=Rule.R18, actor=actor,
                 message_id=job.message_id, job_id=job_id, previous=previous)


async def cancel_job(session: AsyncSession, job_id: int, actor: str) -> None:
    """Withdraw a job that has not been deposited; a job in flight (sent) cannot be cancelled."""
    job = await session.get(DmpDeposit, job_id, with_for_update=True)
    if job is None:
        raise LookupError(f"No DMP deposit job has id {job_id}.")
    if job.state not in (PENDING, RETRY, REFUSED):
        raise ValueError(f"Job {job_id} is {job.state}; only pending, retry or refused jobs can be cancelled.")
    previous = job.state
    job.state = CANCELLED
    job.finished_at = now()
    await record(session, "dmp.deposit.cancelled", CANCELLED, rule=Rule.R18, actor=actor,
                 message_id=job.message_id, job_id=job_id, previous=previous)


async def counts(session: AsyncSession) -> dict[str, int]:
    from sqlalchemy import func

    rows = await session.execute(select(DmpDeposit.state, func.count()).group_by(DmpDeposit.state))
    return {state: int(n) for state, n in rows.all()}
