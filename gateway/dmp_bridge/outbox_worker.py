"""The deposit outbox's worker: claims due deposits (a submission set whole, R15), sends them as ITI-41
submission sets and records the DMP's answers, only while its claim is current (see :mod:`.outbox`).

Jobs queued by this process are handed over (:meth:`OutboxWorker.take`) and claimed at once; others come by the
store's change notification or the poll. A final answer wakes the HL7 relay (the DPI's acknowledgement).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.codes.rules import Rule
from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.authors import AuthorDirectory, Unresolved
from gateway.dmp_bridge.authors import resolve as resolve_author
from gateway.dmp_bridge.deposit import Depositor, Prepared, prepare, together
from gateway.dmp_bridge.outbox import (
    ACCEPTED,
    FINAL,
    QUEUE,
    REFUSED,
    RETRY,
    SENT,
    DmpDeposit,
    now,
    trail_row,
)
from gateway.dmp_bridge.rules import DepositPolicy
from gateway.dmp_bridge.soap import DmpTransportError, RegistryResult
from gateway.documents.errors import CdaRefused
from gateway.store import queue as q
from gateway.store.changes import DMP_OUTBOX, HL7_OUTBOX, ChangeHub, mark_changed, notify_database, take_changed
from gateway.store.effects import record_events
from gateway.store.events import record
from gateway.store.queue import Backoff, Lease

log = structlog.get_logger("gateway.dmp_bridge.outbox")

#: DMP answers that are about the patient's record or the professional's access (R17), not the document (R15).
R17_CODES = frozenset({c.ERR_DMP_CLOSED, c.ERR_DMP_NOT_CREATED, c.ERR_NOT_AUTHORISED, c.ERR_PS_BLOCKED})


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

