"""Accepting a message, whichever door it came through: one planner for submission, relay and upstream import.

The recipients were decided at RCPT (or by the upstream connector's configuration). Inside the store's
transaction only what can have changed since is checked again: a patient's reply depends on the
conversation still being open and replies allowed (R1–R3). :func:`plan_acceptance` then turns the accepted
recipients into a :class:`~gateway.store.bulk.Plan` without touching the database: the message, where it is
filed (each recipient's INBOX and our sender's Sent), the events naming each rule, and the effects as data —
the conversation changes of R1–R3 and R5, the rows queued for other operators, the filing jobs of R10 and the
deposit job of R12. The same message gets the same effects whether it was submitted, relayed by another
operator or imported from an upstream mailbox. The caller says "250" only after the commit that holds it all
(maddy's two-phase contract, committed once).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.accounts import Account
from gateway.codes.rules import Rule
from gateway.config import Config
from gateway.routing import conversations, replies
from gateway.routing.headers import MSS_MES, Summary
from gateway.routing.policy import Decision, DsnRequest, Target, recheck
from gateway.routing.replies import Reply
from gateway.store.bulk import Placement, Plan
from gateway.store.changes import OUTBOUND
from gateway.store.effects import Effect, EventRow, Rows
from gateway.store.events import now, record
from gateway.store.jobs import DEPOSIT
from gateway.store.jobs import jobs as filing_jobs
from gateway.store.mailstore import StoredMessage
from gateway.store.models import OutboundRecipient

#: The change channel marked when mail is queued for other operators: wakes the outbound worker at once.
OUTBOUND_WAKE = OUTBOUND


def may_carry_documents(raw: bytes) -> bool:
    """A cheap look at the header section and part headers: could this message carry a CDA, a PDF or an XDM?"""
    lowered = raw[:65536].lower()
    return any(marker in lowered for marker in (b"application/", b"text/xml", b"multipart/"))


SUBMISSION, RELAY, UPSTREAM = "submission", "relay", "upstream"
TO_PATIENT = frozenset({"pro-to-patient", "pro-to-remote-patient", "remote-to-patient"})


@dataclass(frozen=True)
class Outcome:
    reply: Reply
    message_id: int | None = None
    delivered: tuple[str, ...] = ()
    refused: tuple[tuple[str, Decision], ...] = ()


@dataclass(frozen=True)
class Arrival:
    """How a message reached us: the door, who sent it, and what is traced about it (R18)."""

    door: str  # SUBMISSION, RELAY or UPSTREAM
    mail_from: str
    #: Our sender's mailbox (submission only): its Sent folder, its conversations, its deposits (R12).
    sender_mailbox_id: int | None = None
    sender_address: str | None = None
    sender_is_patient: bool = False
    #: The operator that relayed it, or the upstream source's name.
    peer: str | None = None
    detail: dict[str, object] = field(default_factory=dict)

    @staticmethod
    def submitted(sender: Account, mail_from: str) -> Arrival:
        return Arrival(SUBMISSION, mail_from, sender.id, sender.address, sender.is_patient)

    @staticmethod
    def relayed(peer: str, mail_from: str) -> Arrival:
        return Arrival(RELAY, mail_from, peer=peer)

    @staticmethod
    def imported(source: str, uidvalidity: int, uid: int, mail_from: str = "") -> Arrival:
        return Arrival(UPSTREAM, mail_from, peer=source, detail={"uid": uid, "uidvalidity": uidvalidity})

    @property
    def actor(self) -> str:
        return self.sender_address or self.mail_from or self.peer or ""

    def accepted_event(self, recipients: int, refused: int, size: int, mailbox_id: int | None) -> EventRow:
        """The one event of the acceptance itself, named after the door."""
        if self.door == SUBMISSION:
            return EventRow("smtp.message", "accepted", None, self.actor, self.sender_mailbox_id,
                            detail={"recipients": recipients, "refused": refused, "size": size})
        if self.door == RELAY:
            return EventRow("relay.message", "accepted", None, self.actor, None,
                            detail={"peer": self.peer, "recipients": recipients, "size": size})
        return EventRow("upstream.imported", "delivered", Rule.R10, self.peer, mailbox_id, detail=dict(self.detail))


def with_fin_header(raw: bytes, summary: Summary) -> bytes:
    """R2: a ``[FIN]`` message to a patient leaves with ``X-MSS-MES: FIN`` so both conventions agree."""
    if summary.fin_in_subject and not summary.fin_header:
        return f"{MSS_MES}: FIN\r\n".encode() + raw
    return raw


def _conversation(arrival: Arrival, target: Target, summary: Summary, message_events: tuple[EventRow, ...]
                  ) -> Effect:
    """R1 (the professional opens), R3 (replies blocked or allowed by header), R2 ([FIN] closes), R5 (traced)."""
    assert target.matricule is not None
    via = ("subject" if summary.fin_in_subject else "header") if summary.ends_conversation else None
    if arrival.sender_mailbox_id is not None:
        return conversations.professional_wrote(
            target.matricule, arrival.actor, professional_id=arrival.sender_mailbox_id, replies=summary.replies,
            ends_via=via, events=message_events)
    return conversations.professional_wrote(
        target.matricule, arrival.actor, remote_professional=arrival.mail_from, replies=summary.replies,
        ends_via=via, events=message_events)


def _outbound(arrival: Arrival, targets: list[Target]) -> Rows:
    """Each remote recipient queued in the transaction that stores the message (accept = durable)."""
    at = now()
    rows = []
    for target in targets:
        dsn = target.dsn or DsnRequest()
        rows.append(dict(
            sender_mailbox_id=arrival.sender_mailbox_id, mail_from=arrival.mail_from, recipient=target.address,
            domain=target.address.rpartition("@")[2], notify=dsn.notify, orcpt=dsn.orcpt, ret=dsn.ret,
            envid=dsn.envid, state="queued", attempts=0, next_attempt_at=at, created_at=at))
    return Rows(OutboundRecipient, tuple(rows), wake=OUTBOUND)


def plan_acceptance(arrival: Arrival, accepted: Sequence[Target], raw: bytes, summary: Summary | None, *,
                    dmp: bool = False, refused: Sequence[tuple[str, Decision]] = (),
                    extra: Sequence[Effect] = ()) -> Plan:
    """The plan storing a message for its ``accepted`` recipients, and everything accepting it changes.

    Pure: no database access; the store applies the plan. ``dmp``: the DMP bridge is configured (R12: only
    what our professionals send is then considered for deposit). ``extra``: effects of the door itself (the
    upstream record that prevents a second import).
    """
    to_patient = [t for t in accepted if t.exchange in TO_PATIENT]
    body = with_fin_header(raw, summary) if to_patient and summary is not None else raw
    message = StoredMessage(
        raw=body, mail_from=arrival.mail_from, rcpt_to=[t.address for t in accepted],
        sender_mailbox_id=arrival.sender_mailbox_id,
        message_id_header=summary.message_id if summary else None, subject=summary.subject if summary else None,
        header_from=summary.header_from_raw if summary else None)
    local = [t for t in accepted if t.mailbox_id is not None]
    outgoing = [t for t in accepted if t.mailbox_id is None]  # other operators: queued in this transaction
    placements = [Placement(t.mailbox_id, "INBOX") for t in local if t.mailbox_id is not None]
    if arrival.sender_mailbox_id is not None:
        placements.append(Placement(arrival.sender_mailbox_id, "Sent", "\\Seen"))
    peer = {"peer": arrival.peer} if arrival.door == RELAY else {}
    events = [EventRow("message.patient_reply", "delivered", Rule.R1, arrival.actor, t.mailbox_id,
                       t.conversation_id, detail=dict(peer)) for t in local if t.exchange == "patient-to-pro"]
    events += [EventRow("message.patient_reply", "queued", Rule.R1, arrival.actor, arrival.sender_mailbox_id,
                        t.conversation_id) for t in outgoing if t.exchange == "patient-to-remote"]

    effects: list[Effect] = []
    if summary is not None:
        for target in to_patient:
            mailbox = arrival.sender_mailbox_id if arrival.sender_mailbox_id is not None else target.mailbox_id
            delivered = EventRow("message.to_patient", "delivered", Rule.R4, arrival.actor, mailbox, detail=dict(peer))
            effects.append(_conversation(arrival, target, summary, (delivered,)))
    if outgoing:
        effects.append(_outbound(arrival, outgoing))
        events.append(EventRow("outbound.queued", "queued", None, arrival.mail_from, arrival.sender_mailbox_id,
                               detail={"recipients": len(outgoing)}))
    filing = [t.mailbox_id for t in local if t.files and t.mailbox_id is not None]
    if filing:  # R10: the documents are read after delivery, exactly once per filing mailbox
        effects.append(filing_jobs(filing))
    if dmp and arrival.sender_mailbox_id is not None and not arrival.sender_is_patient and may_carry_documents(body):
        effects.append(filing_jobs([arrival.sender_mailbox_id], DEPOSIT))  # R12: ours, for their patients' DMP
    effects.extend(extra)
    events.append(arrival.accepted_event(len(accepted), len(refused), len(body),
                                         local[0].mailbox_id if len(local) == 1 else None))

    delivered_to = tuple(t.address for t in accepted)

    def result(message_id: int) -> Outcome:
        return Outcome(replies.ACCEPTED.with_text(f"Message accepted as {message_id}"), message_id,
                       delivered_to, tuple(refused))

    return Plan(message, placements, events, effects, result)


# --- The doors: each re-checks what may have changed since RCPT, then uses the one planner ----------------------
async def record_refusal(session: AsyncSession, sender: Account, decision: Decision) -> None:
    await record(session, decision.kind, "refused", rule=decision.rule, actor=sender.address,
                 mailbox_id=sender.id, reply=str(decision.reply))


async def record_relay_refusal(session: AsyncSession, peer: str, sender: str | None, decision: Decision) -> None:
    await record(session, decision.kind, "refused", rule=decision.rule, actor=sender or peer,
                 reply=str(decision.reply), peer=peer, relayed=True)


async def _rechecked(session: AsyncSession, targets: list[Target]
                     ) -> tuple[list[Target], list[tuple[str, Decision]]]:
    accepted: list[Target] = []
    refused: list[tuple[str, Decision]] = []
    for target in targets:
        decision = await recheck(session, target)
        if decision.target is not None:
            accepted.append(decision.target)
        else:
            refused.append((target.address, decision))
    return accepted, refused


def _refused_outcome(refused: list[tuple[str, Decision]], empty: Reply) -> Outcome:
    if not refused:
        return Outcome(empty)
    reply = refused[0][1].reply if len(refused) == 1 else replies.ALL_RECIPIENTS_REFUSED
    return Outcome(reply, refused=tuple(refused))


async def plan_submission(
    session: AsyncSession,
    config: Config,
    sender: Account,
    mail_from: str,
    targets: list[Target],
    raw: bytes,
    summary: Summary,
) -> Plan | Outcome:
    """Plan the storage of a submitted message for the recipients accepted at RCPT, or refuse it."""
    accepted, refused = await _rechecked(session, targets)
    for _, decision in refused:
        await record_refusal(session, sender, decision)
    if not accepted:
        return _refused_outcome(refused, replies.ALL_RECIPIENTS_REFUSED)
    return plan_acceptance(Arrival.submitted(sender, mail_from), accepted, raw, summary,
                           dmp=config.dmp is not None, refused=refused)


async def plan_relayed(
    session: AsyncSession,
    peer: str,
    mail_from: str,
    targets: list[Target],
    raw: bytes,
    summary: Summary,
) -> Plan | Outcome:
    """Plan the storage of a message relayed by another operator ``peer`` for our recipients accepted at RCPT.

    A remote professional writing to our patient opens the conversation keyed by its address (R1, R5) and may
    block replies (R3) or end it with ``[FIN]`` (R2), exactly as one of ours would; a lab report relayed to a
    filing mailbox is filed (R10) as if it had been submitted here.
    """
    accepted, refused = await _rechecked(session, targets)
    for _, decision in refused:
        await record_relay_refusal(session, peer, mail_from or None, decision)
    if not accepted:
        return _refused_outcome(refused, replies.NO_VALID_RECIPIENT)
    return plan_acceptance(Arrival.relayed(peer, mail_from), accepted, raw, summary, refused=refused)
