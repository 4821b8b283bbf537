"""The filing worker: claims filing jobs, files each message's documents, and answers MDN requests.

Extraction (MIME → XDM → CDA, schema validation) is CPU work done outside any transaction; matching,
recording and marking the job done happen in one transaction, so a job is filed exactly once. The jobs are a
queue of the store's primitive (:data:`QUEUE`, :mod:`gateway.store.queue`); the work is short, so a job is read
unlocked, extracted, and claimed by the transaction that files it (:func:`~gateway.store.queue.finish_due`: only
while it is still due and held by nobody), one write transaction per job; a job another worker recorded
meanwhile is left to it. A job that keeps failing is retried with backoff, then marked
``failed`` (the message itself stays in its mailbox: nothing is lost) and traced.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import email.policy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.codes.rules import Rule
from gateway.config import Config
from gateway.documents.pipeline import ExtractedDocument, NotDocument, read_message
from gateway.filing import mdn
from gateway.filing.jobs import DEPOSIT, DONE, FAILED, PENDING
from gateway.filing.models import FilingJob
from gateway.ins_matching.filing import Outcome, decide
from gateway.ins_matching.record import Recorded, filed_versions, identities_for, record_outcomes
from gateway.routing.headers import header_block
from gateway.store import bulk
from gateway.store import queue as q
from gateway.store.changes import FILING, OUTBOUND, ChangeHub, notify_database, take_changed
from gateway.store.effects import Rows
from gateway.store.events import now, record
from gateway.store.mailstore import StoredMessage
from gateway.store.models import Mailbox, Message, OutboundRecipient
from gateway.tasks import Background

if TYPE_CHECKING:
    from gateway.dmp_bridge.bridge import Submission
    from gateway.dmp_bridge.rules import DepositPolicy

log = structlog.get_logger("gateway.filing")

MAX_ATTEMPTS = 5
POLL_SECONDS = 0.5
#: Due jobs read at a time.
BATCH = 20

#: The filing queue: one job per unit; after MAX_ATTEMPTS failed attempts (2 s, 4 s, ... at most 10 min apart)
#: a job is ``failed``, traced, and its message stays where it was delivered.
QUEUE = q.Queue(FilingJob, waiting=(PENDING,), dead=FAILED, wake=FILING)
RETRIES = q.Retry(q.Backoff(base=2.0, factor=2.0, ceiling=600.0), max_attempts=MAX_ATTEMPTS)


@dataclass(frozen=True)
class Filed:
    job_id: int
    recorded: list[Recorded]


class FilingWorker(Background):
    name = "filing-worker"

    def __init__(self, config: Config, sessions: async_sessionmaker[AsyncSession],
                 reads: async_sessionmaker[AsyncSession], hub: ChangeHub) -> None:
        super().__init__()
        self.config = config
        self._sessions = sessions
        self._reads = reads
        self._hub = hub
        self.wake = hub.watch(FILING)
        #: Set while the worker waits with no job due (tests wait on it before committing work).
        self.idle = asyncio.Event()
        #: This process's DMP outbox, given the ids of the deposits a commit just queued (it claims them now).
        self.deposits: Callable[[Sequence[int]], None] | None = None
        self._policy: DepositPolicy | None = None

    async def main(self) -> None:
        """Work while jobs are due; otherwise sleep until a commit adds one (``FILING`` on the change hub, in
        this process or, on PostgreSQL, by NOTIFY from another) or the poll comes round as a safety net."""
        try:
            while True:
                self.wake.clear()  # a commit during run_once leaves it set: no job waits for the poll
                try:
                    worked = await self.run_once()
                except Exception:
                    log.exception("filing.loop_error")
                    worked = False
                if not worked:
                    self.idle.set()
                    try:
                        await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
                    except TimeoutError:
                        pass
                    self.idle.clear()
        finally:
            self._hub.unwatch(FILING, self.wake)

    async def _due(self) -> list[FilingJob]:
        """The jobs due now, read without a lock: each is claimed by the transaction that records it."""
        async with self._reads() as session:
            return list((await session.execute(
                select(FilingJob).where(QUEUE.claimable(now())).order_by(FilingJob.next_attempt_at, FilingJob.id)
                .limit(BATCH))).scalars())

    async def run_once(self) -> bool:
        """Process the jobs due now; returns whether there was any."""
        due = await self._due()
        for job in due:
            await self._process(job.id, job.kind, job.message_id, job.mailbox_id, job.attempts)
        return bool(due)

    async def _process(self, job_id: int, kind: str, message_id: int, mailbox_id: int, attempts: int) -> None:
        async with self._reads() as session:
            stored = (await session.execute(select(Message.raw, Message.mail_from, Message.rcpt_to)
                                            .where(Message.id == message_id))).one()
        raw = bytes(stored.raw)
        try:
            if kind == DEPOSIT:
                submission = await asyncio.to_thread(self._read_submission, raw, message_id)
                await self._consider_deposit(job_id, message_id, mailbox_id, raw, submission,
                                             (stored.mail_from, list(stored.rcpt_to)))
            else:
                read = await asyncio.to_thread(read_message, raw)
                await self._file(job_id, message_id, mailbox_id, raw, read.documents, read.not_documents)
        except Exception as exc:
            log.warning("filing.job_error", job_id=job_id, message_id=message_id, error=type(exc).__name__)
            await self._failed(job_id, message_id, mailbox_id, attempts + 1, exc)

    async def _file(self, job_id: int, message_id: int, mailbox_id: int, raw: bytes,
                    documents: list[ExtractedDocument], not_documents: Sequence[NotDocument] = ()) -> None:
        """File or review every document; record every other XML, PDF or zip part as not a document with its
        reason, so that no message ends with zero outcomes (R10); then answer as the sender asked (R6)."""
        async with self._sessions() as session:
            async with session.begin():
                if not await q.finish_due(session, QUEUE, [job_id], DONE, done_at=now()):
                    return  # another worker filed it meanwhile, or holds it
                matricules = [d.header.patient.matricule for d in documents
                              if d.header and d.header.patient.matricule]
                set_ids = [str(d.header.set_id) for d in documents if d.header and d.header.set_id]
                lookup = await identities_for(session, matricules)
                versions = await filed_versions(session, set_ids)
                allow_test = self.config.rules.allow_test_identities
                compare_place = self.config.documents.compare_birth_place if self.config.documents else True
                outcomes = [Outcome(d, decide(d, lookup, allow_test_oids=allow_test, filed_version=versions.get,
                                              compare_birth_place=compare_place))
                            for d in documents]
                recorded = await record_outcomes(session, outcomes, message_id=message_id)
                codes = [r.outcome.decision.code for r in recorded if r.kind == "review"]  # type: ignore[union-attr]
                for other in not_documents:
                    await record(session, "filing.not_a_document", "recorded", rule=Rule.R10,
                                 mailbox_id=mailbox_id, message_id=message_id, source=other.source,
                                 reason=other.reason)
                filed = sum(r.kind == "filed" for r in recorded)
                await record(session, "filing.done", "filed" if not codes else "review", rule=Rule.R10,
                             mailbox_id=mailbox_id, message_id=message_id, documents=len(documents),
                             filed=filed, review=len(codes), not_documents=len(not_documents))
                error = min(codes) if codes else (mdn.OTHER_ERROR if not_documents and not filed else None)
                reasons = [str(getattr(r.outcome.decision, "reason", "")) for r in recorded if r.kind == "review"]
                reasons += [f"{o.source} : {o.reason}" for o in not_documents]
                await self._acknowledge(session, raw, mailbox_id, message_id, error, reasons)
                await notify_database(session)
            self._hub.publish(take_changed(session))

    def _deposit_policy(self) -> DepositPolicy:
        """R13, R14, R16 as configured, built once (the configuration is reloaded by a restart)."""
        from gateway.dmp_bridge.daemon import policy_from

        if self._policy is None:
            assert self.config.dmp is not None
            self._policy = policy_from(self.config.dmp)
        return self._policy

    def _read_submission(self, raw: bytes, message_id: int) -> Submission:
        """The documents a message submits for deposit, read by the one document reader (CPU: off the loop)."""
        from gateway.dmp_bridge.bridge import read_submission

        extracted = read_message(raw, validate=False)
        return read_submission(raw, policy=self._deposit_policy(), message_id=message_id, extracted=extracted)

    async def _consider_deposit(self, job_id: int, message_id: int, mailbox_id: int, raw: bytes,
                                submission: Submission, envelope: tuple[str, list[str]]) -> None:
        """R12–R16: the documents a professional sent, considered for the patients' DMP (deposits queued);
        ``envelope`` is the message's (MAIL FROM, RCPT TO), read with its bytes.

        The rules are decided from reads (identities, the patient's presence) before the write transaction,
        which holds the writer only for the job's claim, the deposits and the trail (a handful of statements).
        After the commit the deposits go straight to this process's outbox (:attr:`deposits`), if it runs one;
        the change hub (NOTIFY on PostgreSQL) wakes the others."""
        from gateway.dmp_bridge.bridge import decide_message, record_decisions
        from gateway.dmp_bridge.outbox import trail_row
        from gateway.dmp_bridge.presence import card_presence

        async with self._reads() as reading:
            decisions = await decide_message(
                reading, message_id, raw, envelope[0], envelope[1], policy=self._deposit_policy(),
                sender_mailbox_id=mailbox_id, presence=card_presence(), submission=submission)
        async with self._sessions() as session, session.begin():
            if not await q.finish_due(session, QUEUE, [job_id], DONE, done_at=now()):
                return  # another worker considered it meanwhile, or holds it
            considered = await record_decisions(session, decisions, closing=[trail_row(
                "dmp.considered", "done", rule=Rule.R12, mailbox_id=mailbox_id, message_id=message_id,
                documents=len(decisions))])
            await notify_database(session)
        self._hub.publish(take_changed(session))  # the outbox starts the deposits queued in this transaction
        queued = [c.job_id for c in considered if c.job_id is not None]
        if queued and self.deposits is not None:
            self.deposits(queued)

    async def _acknowledge(self, session: AsyncSession, raw: bytes, mailbox_id: int, message_id: int,
                           error_code: int | None, reasons: Sequence[str] = ()) -> None:
        """R6: an MDN when the message asked for one; without Disposition-Notification-To, an integration error
        still reaches the sender as a readable message (ANS platform volet). Delivered here if the recipient is
        ours."""
        headers: EmailMessage = BytesHeaderParser(policy=email.policy.default).parsebytes(header_block(raw))
        mailbox = await session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        request = mdn.requested(headers, mailbox.address)
        subject = str(headers.get("Subject") or "")
        if request is None:
            auto = str(headers.get("Auto-Submitted") or "no").strip().lower()
            if error_code is None or not auto.startswith("no"):
                return  # RFC 3834: nothing answers an automatic message (no notice loops)
            sender = mdn.sender_of(headers)
            if sender is None:
                message = await session.get(Message, message_id)
                sender = (message.mail_from or "").lower() if message is not None else ""
            if not sender:
                return
            message_id_header = headers.get("Message-ID")
            body = mdn.error_notice(sender, mailbox.address, self.config.hostname, error_code, list(reasons),
                                    str(message_id_header) if message_id_header else None, subject,
                                    self.config.software_reference)
            request = mdn.MdnRequest(sender, None, mailbox.address)
            kind = "error_notice"
        else:
            body = mdn.build(request, mailbox.address, self.config.hostname, error_code, raw, subject,
                             self.config.software_reference)
            kind = "mdn"
        requester = (await session.execute(
            select(Mailbox.id).where(Mailbox.address == request.notify, Mailbox.active.is_(True)))).scalar()
        outcome = "processed" if error_code is None else f"error {error_code}"
        event = bulk.EventRow("filing.mdn", outcome, Rule.R6, None, mailbox_id,
                              detail={"in_reply_to": message_id, "kind": kind})
        domain = request.notify.rpartition("@")[2]
        if requester is None and not self.config.serves(domain) and self.config.outbound is not None:
            # Another operator's mailbox: queued for it, a copy in the filing mailbox's Sent. The envelope sender
            # is the filing mailbox with NOTIFY=NEVER rather than null (RFC 8098 section 2.1 prefers null, but
            # the relay listener answers RCPT after MAIL FROM:<> with 503); Auto-Submitted stops any loop.
            at = now()
            row = dict(sender_mailbox_id=mailbox_id, mail_from=mailbox.address, recipient=request.notify,
                       domain=domain,
                       notify="NEVER", orcpt=None, ret=None, envid=None, state="queued", attempts=0,
                       next_attempt_at=at, created_at=at)
            await bulk.apply(session, [bulk.Plan(
                StoredMessage(raw=body, mail_from=mailbox.address, rcpt_to=[request.notify],
                              sender_mailbox_id=mailbox_id,
                              message_id_header=None, subject="MDN", header_from=mailbox.address),
                [bulk.Placement(mailbox_id, "Sent", "\\Seen")], [event],
                [Rows(OutboundRecipient, (row,), wake=OUTBOUND)])])
            return
        if requester is None:
            await record(session, "filing.mdn", "not_sent", rule=Rule.R6, mailbox_id=mailbox_id,
                         message_id=message_id, reason="requester is not a mailbox of this gateway nor reachable "
                         "through [outbound]", notice=kind)
            return
        plan = bulk.Plan(
            StoredMessage(raw=body, mail_from=mailbox.address, rcpt_to=[request.notify],
                               sender_mailbox_id=mailbox_id, message_id_header=None, subject="MDN",
                               header_from=mailbox.address),
            [bulk.Placement(requester, "INBOX")], [event])
        await bulk.apply(session, [plan])

    async def _failed(self, job_id: int, message_id: int, mailbox_id: int, attempts: int, exc: Exception) -> None:
        """Retried with backoff (this attempt counted); ``failed`` and traced after MAX_ATTEMPTS (R10)."""
        async with self._sessions() as session, session.begin():
            retried = await q.retry(session, QUEUE, None, [job_id], attempts=attempts, policy=RETRIES, count=True,
                                    last_error=f"{type(exc).__name__}: {exc}"[:2000])
            if retried.dead and retried.ids:
                await record(session, "filing.failed", "failed", rule=Rule.R10, mailbox_id=mailbox_id,
                             message_id=message_id, attempts=attempts, error=type(exc).__name__)
