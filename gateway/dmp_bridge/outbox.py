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

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from gateway.codes.rules import Rule
from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.authors import AuthorDirectory, Unresolved
from gateway.dmp_bridge.authors import resolve as resolve_author
from gateway.dmp_bridge.deposit import Depositor, Prepared, prepare, submission_uid_for, together
from gateway.dmp_bridge.rules import DepositPolicy
from gateway.dmp_bridge.soap import DmpTransportError, RegistryResult
from gateway.documents.errors import CdaRefused
from gateway.store import queue as q
from gateway.store.changes import DMP_OUTBOX, HL7_OUTBOX, ChangeHub, mark_changed, notify_database, take_changed
from gateway.store.effects import record_events
from gateway.store.events import record
from gateway.store.models import Base, Event, Id
from gateway.store.queue import Backoff, Lease

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
#: DMP answers that are about the patient's record or the professional's access (R17), not the document (R15).
R17_CODES = frozenset({c.ERR_DMP_CLOSED, c.ERR_DMP_NOT_CREATED, c.ERR_NOT_AUTHORISED, c.ERR_PS_BLOCKED})


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


# --- The worker ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """A claimed job: what the worker needs, detached from the session."""

    id: int
    lease: Lease
    attempts: int
    unique_id: str
    submission_uid: str
    cda: bytes
    title: str
    visibility: tuple[str, ...]
    author_id: str
    message_id: int | None
    resend: bool


@dataclass(frozen=True)
class Answer:
    """What one request's answer means for one job: its new state, the rule, the code and a sentence."""

    state: str
    rule: str
    code: str
    text: str


class OutboxWorker:
    """Claims due jobs and deposits them, ``concurrency`` at a time."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], depositor: Depositor, policy: DepositPolicy, *,
                 concurrency: int = 8, lease: float = 300.0, backoff: Backoff | None = None,
                 poll_interval: float = 1.0, worker_id: str | None = None, hub: ChangeHub | None = None,
                 directory: AuthorDirectory | None = None) -> None:
        self.sessions = sessions
        #: The Annuaire Santé the authors' profession, specialty and structure come from (authors.py).
        self.directory = directory
        self.depositor = depositor
        self.policy = policy
        self.concurrency = concurrency
        self.lease = lease
        self.backoff = backoff or Backoff()
        self.poll_interval = poll_interval
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        #: Set when deposits are committed (``DMP_OUTBOX`` on the store's change hub); the poll is the safety net.
        self._wake = hub.watch(DMP_OUTBOX) if hub is not None else asyncio.Event()
        #: Told of final answers (``HL7_OUTBOX``: the HL7 relay owes the hospital system the DMP's answer).
        self._hub = hub
        #: Deposits this process just committed (:meth:`take`), claimed by id before anything else is looked for.
        self._handed: set[int] = set()
        #: Set while :meth:`run` waits for a wake-up or its poll (tests wait on it before committing work).
        self.idle = asyncio.Event()

    def wake(self) -> None:
        """New jobs were committed: look now rather than at the next poll."""
        self._wake.set()

    def take(self, job_ids: Iterable[int]) -> None:
        """Deposits this process has just committed: claimed by id at once, without a scan of the due jobs or a
        round through the change hub (which still wakes the outbox of other processes)."""
        self._handed.update(job_ids)
        self._wake.set()

    async def claim(self, limit: int, only: Sequence[int] | None = None) -> list[list[Claimed]]:
        """Move up to ``limit`` groups of due deposits to ``sent`` under a new lease, in one transaction; each
        comes with every job linked to it (R15), due or not, as one group to send together. A group of which a
        member is locked or in flight under another live claim is left whole for later: a group never goes in
        part. A ``sent`` job whose lease ran out is due again (its worker died) and is sent again. ``only``:
        the candidates, by id (their groups still go whole)."""
        moment = now()
        where = [DmpDeposit.id.in_(list(only))] if only is not None else []
        async with self.sessions() as session, session.begin():
            units = await q.claim(session, QUEUE, units=limit, lease=self.lease, where=where)
            claimed: list[list[Claimed]] = []
            rows: list[dict[str, Any]] = []
            for unit in units:
                group = []
                for job in sorted(unit.rows, key=lambda j: j.id):
                    resend = job.id in unit.reclaimed
                    rows.append(trail_row("dmp.deposit.sent", SENT, rule=Rule.R18, actor=self.worker_id,
                                          message_id=job.message_id, job_id=job.id, attempt=job.attempts,
                                          resend=resend))
                    group.append(Claimed(job.id, unit.lease, job.attempts, job.unique_id, job.submission_uid,
                                         job.cda, job.title, tuple(job.visibility or ()), job.author_id,
                                         job.message_id, resend))
                claimed.append(group)
            if rows:  # two statements for the whole claim, whatever the number of jobs
                await session.execute(update(DmpDeposit).where(DmpDeposit.id.in_(
                    [job.id for group in claimed for job in group])).values(sent_at=moment)
                    .execution_options(synchronize_session=False))
                await record_events(session, [{**row, "at": moment} for row in rows])
        return claimed

    async def process(self, job: Claimed) -> str:
        """Send one claimed job and record the outcome; returns the new state."""
        return (await self.process_group([job]))[0]

    async def process_group(self, group: Sequence[Claimed]) -> list[str]:
        """Send claimed jobs linked together (R15) as one submission set; the new state of each, in order."""
        states: dict[int, str] = {}
        ready: list[tuple[Claimed, Prepared]] = []
        for job in group:
            prepared = await self._prepare(job)
            if isinstance(prepared, str):
                states[job.id] = prepared
            else:
                ready.append((job, prepared))
        by_assertion: dict[tuple[str, str], list[tuple[Claimed, Prepared]]] = {}
        for job, prepared in ready:  # one patient and one author per request (one VIHF assertion)
            by_assertion.setdefault((prepared.entry.matricule, job.author_id), []).append((job, prepared))
        for batch in by_assertion.values():
            jobs = [job for job, _ in batch]
            sent = together([p for _, p in batch], self.policy.structure.source_id)
            states.update(zip((j.id for j in jobs), await self._send(jobs, sent), strict=True))
        return [states[job.id] for job in group]

    async def _prepare(self, job: Claimed) -> Prepared | str:
        """The job's submission, or the state it was finished in when it cannot be deposited at all."""
        author = self.policy.professional(job.author_id)
        if author is None:
            return await self._finish(job, REFUSED, Rule.R12, "not_a_professional",
                                      f"The author {job.author_id} is no longer a professional of the structure.")
        described = await resolve_author(author, self.policy.structure, self.directory)
        if isinstance(described, Unresolved):  # R15: never a guessed author; wait and try again later
            return (await self._settle([(job, Answer(RETRY, Rule.R15, described.code, described.reason))]))[0]
        author = described
        try:
            return prepare(job.cda, title=job.title, visibility=job.visibility, author=author,
                           submission_uid=job.submission_uid, policy=self.policy)
        except (CdaRefused, AssertionError, ValueError) as exc:
            return await self._finish(job, REFUSED, Rule.R15, "unreadable", f"The document cannot be deposited: {exc}")

    async def _send(self, jobs: Sequence[Claimed], prepared: Prepared) -> list[str]:
        """One ITI-41 request for ``jobs``; its answer recorded on all of them in one transaction, so that linked
        jobs retried come due at the same instant and are claimed again together (R15)."""
        try:
            result = await self.depositor.send(prepared)
            stored = set()
            if not result.success and result.has(c.ERR_DUPLICATE_UNIQUE_ID):
                stored = await self.depositor.deposited(prepared)
        except DmpTransportError as exc:
            return await self._settle([(job, Answer(RETRY, Rule.R18, "transport", str(exc))) for job in jobs])
        if stored:  # an earlier send was stored before its answer was lost; the others go again, still together
            return await self._settle([
                (job, Answer(ACCEPTED, Rule.R18, c.ERR_DUPLICATE_UNIQUE_ID, "Already in the DMP (an earlier send "
                             "was stored before its answer was lost).")) if job.unique_id in stored else
                (job, Answer(RETRY, Rule.R18, "partial", "Sent again without the documents already in the DMP."))
                for job in jobs])
        if result.success:
            return await self._settle([(job, Answer(ACCEPTED, Rule.R18, "Success", "Deposited.")) for job in jobs])
        code = result.errors[0].code if result.errors else "Failure"
        text = result.message or "The DMP refused the deposit."
        return await self._settle([(job, Answer(REFUSED, _rule_of(result), code, text)) for job in jobs])

    async def _finish(self, job: Claimed, state: str, rule: str, code: str, text: str) -> str:
        return (await self._settle([(job, Answer(state, rule, code, text))]))[0]

    async def _retry(self, job: Claimed, text: str) -> str:
        return (await self._settle([(job, Answer(RETRY, Rule.R18, "transport", text))]))[0]

    async def _settle(self, answers: Sequence[tuple[Claimed, Answer]]) -> list[str]:
        """Record the answers of one request in one transaction; the new state of each job, in order.

        Only the claim still current (its lease's token) writes; a stale one leaves the job as it is (``sent``).
        Jobs retried together get one ``next_attempt_at``, from the most attempts among them.
        """
        moment = now()
        retried = [job for job, answer in answers if answer.state == RETRY]
        policy = q.Retry(self.backoff)
        delay = self.backoff.delay(max(job.attempts for job in retried)) if retried else 0.0
        written: set[int] = set()
        async with self.sessions() as session, session.begin():
            for job, answer in answers:
                if answer.state == RETRY:
                    done = (await q.retry(session, QUEUE, job.lease, [job.id], attempts=max(
                        j.attempts for j in retried), policy=policy, at=moment, last_error=answer.text[:2000])).ids
                else:
                    done = await q.finish(session, QUEUE, job.lease, [job.id], answer.state,
                                          result_code=answer.code[:80], finished_at=moment,
                                          last_error=None if answer.state == ACCEPTED else answer.text)
                written |= done
            states: list[str] = []
            for job, answer in answers:
                if job.id not in written:
                    log.warning("dmp.deposit.stale_claim", job_id=job.id)
                    states.append(SENT)
                    continue
                if answer.state == RETRY:
                    await record(session, "dmp.deposit.retry", RETRY, rule=Rule.R18, actor=self.worker_id,
                                 message_id=job.message_id, job_id=job.id, attempts=job.attempts, delay=delay,
                                 error=answer.text[:300], submission_uid=job.submission_uid, code=answer.code)
                else:
                    await record(session, f"dmp.deposit.{answer.state}", answer.state, rule=answer.rule,
                                 actor=self.worker_id, message_id=job.message_id, job_id=job.id, code=answer.code,
                                 reason_text=answer.text, attempts=job.attempts)
                states.append(answer.state)
            final = any(state in FINAL for state in states)
            if final:  # the HL7 relay owes the hospital system the DMP's answer (ZAM^Z01): it wakes at commit
                mark_changed(session, HL7_OUTBOX)
                await notify_database(session)
        if final and self._hub is not None:
            self._hub.publish(take_changed(session))
        return states

    async def run_once(self) -> int:
        """Claim and process one batch; the number of jobs processed."""
        groups = await self.claim(self.concurrency)
        if groups:
            await asyncio.gather(*(self.process_group(group) for group in groups))
        return sum(len(group) for group in groups)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep ``concurrency`` deposits in flight until ``stop`` is set."""
        tasks: set[asyncio.Task[list[str]]] = set()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                free = self.concurrency - len(tasks)
                if free > 0 and self._handed:  # just committed here: claimed by id, then whatever else is due
                    handed, self._handed = sorted(self._handed), set()
                    self._start(await self.claim(free, only=handed), tasks)
                    continue
                groups = await self.claim(free) if free > 0 else []
                self._start(groups, tasks)
                if groups and free == len(groups):
                    continue  # there may be more due right now
                self._wake.clear()
                waker = asyncio.ensure_future(self._wake.wait())
                self.idle.set()
                await asyncio.wait({stopping, waker, *tasks}, timeout=self.poll_interval,
                                   return_when=asyncio.FIRST_COMPLETED)
                self.idle.clear()
                waker.cancel()
        finally:
            stopping.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


    def _start(self, groups: list[list[Claimed]], tasks: set[asyncio.Task[list[str]]]) -> None:
        for group in groups:
            task = asyncio.create_task(self.process_group(group))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


def _rule_of(result: RegistryResult) -> str:
    return Rule.R17 if any(e.code in R17_CODES for e in result.errors) else Rule.R15


# --- Commands (gateway dmp list|show|retry|cancel) -------------------------------------------------------------

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
