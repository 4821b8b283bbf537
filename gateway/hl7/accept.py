"""From an accepted HL7 document message to what the gateway does with it, through the doors mail uses.

Each ``DESTMSSANTEPS`` / ``DESTMSSANTEPAT`` becomes an MSSanté message (built by :mod:`gateway.hl7.mails`),
sent from the structure mailbox configured for the peer. Its recipients are decided by the routing rules of
SMTP submission (:func:`policy.decide`: R1–R4, a patient's mailbox only for a qualifiée identity, R8) and it
is stored by the one acceptance planner (:func:`delivery.plan_acceptance`), so other operators' recipients
enter the same outbound queue.
``DESTDMP`` is the planner's deposit job (R12): the filing worker hands the stored message to the DMP bridge
(rules R12–R17, outbox), with the visibility codes of the MetaDMPMSS OBX in ``X-DMP-Visibility`` (R16); a
``T10``'s CDA names the document it replaces (RPLC), which the bridge deposits as a new version (R15).

Everything (the messages, the queued rows, the deposit job, the events and the :class:`Hl7Received` row keyed by
peer and MSH-10) is written in one transaction of the group committer; the caller answers ``AA`` only after it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import structlog
from sqlalchemy import bindparam, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.accounts import Account
from gateway.codes.identity_status import QUALIFIEE
from gateway.codes.rules import Rule
from gateway.config import Config
from gateway.config.hl7 import Hl7Peer
from gateway.hl7 import ack, codes
from gateway.hl7.mails import build_mails, encoded_parts
from gateway.hl7.message import Hl7Document, Refusal, parse
from gateway.hl7.models import Hl7Received
from gateway.hl7.readreceipt import stamp_of
from gateway.routing.delivery import Arrival, plan_acceptance
from gateway.routing.policy import Decision, DsnRequest, Target, decide
from gateway.store import bulk
from gateway.store.anatomy import prepare
from gateway.store.changes import HL7_OUTBOX, mark_changed
from gateway.store.committer import GroupCommitter
from gateway.store.effects import EventRow, Rows
from gateway.store.events import now
from gateway.store.models import Identity, Mailbox
from gateway.store.recipients import Reader

log = structlog.get_logger("gateway.hl7")
T = TypeVar("T")

HL7 = "hl7"


@dataclass(frozen=True)
class Hl7Arrival(Arrival):
    """A message built from an HL7 message of ``peer``: traced as such (R18), not as an SMTP submission."""

    control_id: str = ""
    destinations: tuple[str, ...] = ()

    def accepted_event(self, recipients: int, refused: int, size: int, mailbox_id: int | None) -> EventRow:
        return EventRow("hl7.message", "accepted", None, self.actor, self.sender_mailbox_id,
                        detail={"peer": self.peer, "control_id": self.control_id, "recipients": recipients,
                                "destinations": list(self.destinations), "size": size})


@dataclass(frozen=True)
class Answer:
    """What the listener sends back: the ACK, and whether it was a re-send answered from the record."""

    ack: str
    code: str
    duplicate: bool = False
    message_ids: tuple[int, ...] = ()


# The reads of every message are built once (bound parameters): SQLAlchemy then neither builds the statement
# nor computes its cache key again per message.
_PREVIOUS_ACK = select(Hl7Received.ack).where(Hl7Received.peer == bindparam("peer"),
                                              Hl7Received.control_id == bindparam("control_id"))


def _sender_column(column: Any) -> Any:
    return select(column).where(Mailbox.address == bindparam("address"), Mailbox.active.is_(True)) \
        .scalar_subquery()


#: What acceptance reads before deciding the recipients, in one statement (one hop to the database): the ACK of
#: an earlier copy (exactly once by peer + MSH-10), the structure mailbox sending it, and whether the patient's
#: identity is qualifiée (R7: X-MSS-INS).
_FACTS = select(
    _PREVIOUS_ACK.scalar_subquery().label("previous"),
    _sender_column(Mailbox.id).label("sender_id"), _sender_column(Mailbox.address).label("sender_address"),
    _sender_column(Mailbox.kind).label("sender_kind"), _sender_column(Mailbox.matricule).label("sender_matricule"),
    exists().where(Identity.matricule == bindparam("matricule"), Identity.status == QUALIFIEE).label("qualified"))


async def previous_ack(session: Reader, peer: str, control_id: str) -> str | None:
    return (await session.execute(_PREVIOUS_ACK, {"peer": peer, "control_id": control_id})).scalar_one_or_none()


def _refusal_of(decision: Decision, location: str, what: str) -> Refusal:
    rule = f" ({decision.rule})" if decision.rule else ""
    refusal = Refusal(codes.AE, location, codes.APPLICATION, f"{what} refusé{rule} : {decision.reply.text}")
    return refusal.under(str(decision.rule)) if decision.rule else refusal


def _patient_domains(config: Config) -> set[str]:
    return {config.patient_domain, *config.rules.remote_patient_domains}


async def _targets(session: Reader, config: Config, sender: Account, doc: Hl7Document
                   ) -> tuple[list[Target], list[Target]]:
    """The professional and patient recipients as SMTP submission would decide them at RCPT (R1–R4, R8)."""
    professionals: list[Target] = []
    patients: list[Target] = []
    dsn = DsnRequest(notify="SUCCESS,FAILURE") if codes.ACK_RECEPTION in doc.flags else None
    patient_domains = _patient_domains(config)
    if codes.DESTMSSANTEPS in doc.destinations:
        wanted = [r for r in doc.recipients if r.address.rpartition("@")[2] not in patient_domains]
        if not wanted:
            raise Refusal(codes.AE, "PRT", codes.REQUIRED_FIELD, "DESTMSSANTEPS demande un destinataire : un PRT "
                          "RCT avec son adresse MSSanté en PRT-15.4.")
        for recipient in wanted:
            decision = await decide(session, config, sender, recipient.address)
            if decision.target is None:
                raise _refusal_of(decision, f"PRT^{recipient.prt}^15", "Destinataire")
            target = decision.target
            professionals.append(replace(target, dsn=dsn) if target.mailbox_id is None and dsn else target)
    if codes.DESTMSSANTEPAT in doc.destinations:
        if codes.INVISIBLE_PATIENT in doc.flags:  # R16: only a document visible to the patient goes to them
            raise Refusal(codes.AE, "OBX", codes.APPLICATION, "DESTMSSANTEPAT avec INVISIBLE_PATIENT à Y : un "
                          "document invisible au patient ne peut pas lui être envoyé (R16).").under("R16")
        address = f"{doc.matricule.lower()}@{config.patient_domain}"
        decision = await decide(session, config, sender, address)
        if decision.target is None:  # R4: a patient's mailbox only for a qualifiée identity
            raise _refusal_of(decision, "PID^1^3", "Envoi au patient")
        patients.append(decision.target)
    return professionals, patients


#: Frames up to this size are read and their mails built on the event loop's thread: for the 180 KB message of
#: a 135 KB CDA that is ~3 ms of work that mostly holds the GIL anyway, where each hop to a thread and back
#: (a self-pipe write, futex wake-ups, the GIL handed over twice) cost more CPU under load than it freed.
#: A larger frame (up to ``[hl7] max_frame_bytes``) is worked on a thread, so the loop is never held long.
INLINE_BYTES = 512 * 1024


async def off_loop(size: int, work: Callable[[], T]) -> T:
    """``work()`` for a message of ``size`` bytes: inline when small (:data:`INLINE_BYTES`), else on a thread."""
    if size <= INLINE_BYTES:
        return work()
    return await asyncio.to_thread(work)


def read(config: Config, frame: bytes, *, max_segments: int, max_document_bytes: int, allow_test_identities: bool
         ) -> tuple[Hl7Document, list[tuple[bytes, str, str]]]:
    """The HL7 message read (:func:`gateway.hl7.message.parse`) and its attachments made: the CPU work of one
    message in one pass (:func:`off_loop`: on the loop, or one thread hop for a large frame), before the store
    is asked anything."""
    doc = parse(frame, max_segments=max_segments, max_document_bytes=max_document_bytes,
                allow_test_identities=allow_test_identities)
    return doc, encoded_parts(config, doc)


async def accept(committer: GroupCommitter, config: Config, peer: Hl7Peer, doc: Hl7Document, raw: bytes,
                 client: str, parts: list[tuple[bytes, str, str]] | None = None) -> Answer:
    """Store what ``doc`` asks for in one transaction and return the ACK to answer (or the refusal's).

    ``parts``: the attachments :func:`read` made (made here when None). The mails, their plans and their
    anatomies are computed in one pass (:func:`off_loop`) before the transaction, which only inserts them."""
    control_id = doc.header.control_id
    # The process's autocommit connection for the reads before a unit (as SMTP's RCPT): three statements, no
    # session, pool checkout or transaction to end; the unique (peer, MSH-10) guards the race it cannot see.
    async with committer.facts() as session:
        facts = (await session.execute(_FACTS, {"peer": peer.name, "control_id": control_id,
                                                "address": peer.sender, "matricule": doc.matricule})).one()
        if facts.previous is not None:
            return Answer(facts.previous, codes.AA, duplicate=True)
        if facts.sender_id is None:
            raise Refusal(codes.AR, "MSH^1^4", codes.APPLICATION, "La boîte de la structure configurée pour ce "
                          "système n'existe pas ou est désactivée ; réessayez plus tard.")
        sender = Account(facts.sender_id, facts.sender_address, facts.sender_kind, facts.sender_matricule)
        if codes.DESTDMP in doc.destinations and config.dmp is None:
            raise Refusal(codes.AE, "OBX", codes.APPLICATION, "DESTDMP : l'alimentation du DMP n'est pas "
                          "configurée sur cette plateforme.")
        professionals, patients = await _targets(session, config, sender, doc)
    qualified = bool(facts.qualified)
    stamp = stamp_of(peer.name, control_id)
    deposit = codes.DESTDMP in doc.destinations
    arrival = Hl7Arrival(HL7, sender.address, sender.id, sender.address, False, peer=peer.name,
                         control_id=control_id, destinations=tuple(sorted(doc.destinations)))
    answer = ack.build(doc.header, codes.AA)
    ack_reception = codes.ACK_RECEPTION in doc.flags and peer.return_address is not None
    ack_lecture = bool({codes.ACK_LECTURE, codes.ACK_LECTURE_MSS} & doc.flags) and peer.return_address is not None
    owed = ack_reception or ack_lecture
    record = Rows(Hl7Received, ({"peer": peer.name, "control_id": control_id,
                                 "message_type": doc.header.message_type, "ack": answer,
                                 "raw": doc.envelope or raw,  # the document is kept once, in the mail
                                 "received_at": now(),
                                 "ack_reception": ack_reception, "ack_lecture": ack_lecture},))

    def planned() -> list[bulk.Plan]:
        """The mails and their plans (pure, :func:`plan_acceptance`), each with its anatomy and index rows
        computed here (``store.anatomy.prepare``) rather than in the shared writer's transaction."""
        mails = build_mails(config, sender.address, doc, professionals, patients, qualified=qualified,
                            stamp=stamp, parts=parts)
        plans = []
        for index, (targets, raw_mail, summary) in enumerate(mails):
            plan = plan_acceptance(arrival, targets, raw_mail, summary, dmp=deposit and index == 0,
                                   extra=[record] if index == 0 else ())
            plans.append(replace(plan, prepared=prepare(plan.message.raw)))
        return plans

    plans = await off_loop(len(raw), planned)

    async def unit(session: AsyncSession) -> bulk.Plans:
        # No second read of the record here: the unique (peer, MSH-10) of hl7_messages refuses a copy committed
        # meanwhile (IntegrityError below), so the shared writer's transaction does no extra statement per message.
        if owed:
            mark_changed(session, HL7_OUTBOX)  # the relay wakes at commit for what the peer is owed
        # Every mail of the message (the first with the record and the deposit job) is handed to the committer:
        # the plans of every unit in its batch are stored together, a few statements for all the connections.
        return bulk.Plans(plans, lambda ids: Answer(answer, codes.AA, message_ids=tuple(ids)))

    try:
        result: Answer = await committer.run(unit)
    except IntegrityError:  # the same control id committed by a concurrent connection meanwhile
        async with committer.facts() as connection:
            previous = await previous_ack(connection, peer.name, control_id)
        if previous is None:
            raise
        return Answer(previous, codes.AA, duplicate=True)
    log.info("hl7.accepted", peer=peer.name, client=client, mailbox_id=sender.id, control_id=control_id,
             message_type=doc.header.message_type, destinations=sorted(doc.destinations),
             duplicate=result.duplicate, message_ids=list(result.message_ids), rule=str(Rule.R4)
             if patients else None)
    return result


async def record_refusal(committer: GroupCommitter, peer: Hl7Peer, refusal: Refusal) -> None:
    """R18: a refused message is traced in the store with its rule, location and condition (no content)."""
    from gateway.store.events import record

    async def unit(session: AsyncSession) -> None:
        await record(session, "hl7.message", "refused", rule=refusal.rule, actor=peer.sender, peer=peer.name,
                     ack=refusal.ack, location=refusal.location, condition=refusal.condition[0],
                     control_id=refusal.header.control_id if refusal.header else None)
    await committer.run(unit)


def refused_event(peer: str, client: str, refusal: Refusal) -> dict[str, Any]:
    """The fields of the one log event of a refused message (no INS, names or content)."""
    return {"peer": peer, "client": client, "ack": refusal.ack, "location": refusal.location,
            "condition": refusal.condition[0],
            "control_id": refusal.header.control_id if refusal.header else None}
