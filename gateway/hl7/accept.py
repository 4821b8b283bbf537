"""From an accepted HL7 document message to what the gateway does with it, through the doors mail uses.

Each ``DESTMSSANTEPS`` / ``DESTMSSANTEPAT`` becomes an MSSanté message built here: an IHE XDM zip with the CDA
(and the PDF a level-1 CDA wraps), the ``X-MSS-*`` headers of the ANS client specification, the subject
convention ``XDM/1.0/DDM+<title> <NAME> <first name> <birth date>``, sent from the structure mailbox configured
for the peer. Its recipients are decided by the routing rules of SMTP submission (:func:`policy.decide`:
R1–R4, a patient's mailbox only for a qualifiée identity) and it is stored by the one acceptance planner
(:func:`delivery.plan_acceptance`), so other operators' recipients enter the same outbound queue.
``DESTDMP`` is the planner's deposit job (R12): the filing worker hands the stored message to the DMP bridge
(rules R12–R17, outbox), with the visibility codes of the MetaDMPMSS OBX in ``X-DMP-Visibility`` (R16); a
``T10``'s CDA names the document it replaces (RPLC), which the bridge deposits as a new version (R15).

Everything (the messages, the queued rows, the deposit job, the events and the :class:`Hl7Received` row keyed by
peer and MSH-10) is written in one transaction of the group committer; the caller answers ``AA`` only after it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pybase64
import structlog
from sqlalchemy import bindparam, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth.accounts import Account
from gateway.codes.identity_status import QUALIFIEE
from gateway.codes.rules import Rule
from gateway.config import Config
from gateway.config.hl7 import Hl7Peer
from gateway.documents.cda import CdaHeader
from gateway.documents.packaging import NIL_HEADER
from gateway.documents.xdm_writer import build_xdm, mss_headers
from gateway.hl7 import ack, codes, headers
from gateway.hl7.message import Hl7Document, Refusal, parse
from gateway.hl7.models import Hl7Received
from gateway.hl7.readreceipt import stamp_of
from gateway.routing.delivery import Arrival, plan_acceptance
from gateway.routing.headers import Summary, summarise
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
VISIBILITY_HEADER = "X-DMP-Visibility"


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


def _subject(header: CdaHeader) -> str:
    """The ANS subject convention for a message carrying a CDA (domain.md, MSSanté headers)."""
    patient = header.patient
    label = header.title or (header.code.display_name if header.code else None) or "Document"
    parts = [label, (patient.birth_name or "").upper(), patient.first_name or "",
             (patient.birth_date or "").replace("-", "")]
    return "XDM/1.0/DDM+" + " ".join(p for p in parts if p)


def attachments(config: Config, doc: Hl7Document) -> list[tuple[bytes, str, str]]:
    """The XDM zip of the CDA and, for a level-1 CDA, the PDF it wraps: built once per HL7 message, from the
    header the listener already read (the CDA is parsed once)."""
    zipped, _ = build_xdm([doc.cda], source_name=config.software_reference, headers=[doc.cda_header],
                          store_documents=True)
    parts = [(zipped, "zip", "IHE_XDM.ZIP")]
    if doc.wrapped is not None and doc.wrapped.startswith(b"%PDF"):
        parts.append((doc.wrapped, "pdf", "document.pdf"))
    return parts


def encoded_parts(config: Config, doc: Hl7Document) -> list[tuple[bytes, str, str]]:
    """The attachments of every MSSanté message of ``doc``, in base64 lines: what does not depend on the
    recipients, made once, in the pass that read the HL7 message (:func:`read`)."""
    return [(_base64(data), subtype, filename) for data, subtype, filename in attachments(config, doc)]


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


def build_mails(config: Config, sender: str, doc: Hl7Document, professionals: list[Target],
                patients: list[Target], *, qualified: bool, stamp: str,
                parts: list[tuple[bytes, str, str]] | None = None) -> list[tuple[list[Target], bytes, Summary]]:
    """Every MSSanté message of one HL7 message with its header summary: the XDM zip is built once for all of
    them (``parts``, from :func:`read`), and the summary is read here rather than in the transaction."""
    if parts is None:
        parts = encoded_parts(config, doc)
    built: list[tuple[list[Target], bytes, Summary]] = []
    for targets, to_patient, tag in ((professionals, False, "ps"), (patients, True, "pat")):
        if targets:
            raw_mail = build_mail(config, sender, [t.address for t in targets], doc, to_patient=to_patient,
                                  qualified=qualified, message_id=f"<hl7.{tag}.{stamp}@{config.hostname}>",
                                  parts=parts)
            built.append((targets, raw_mail, summarise(raw_mail)))
    if not built:  # DMP only: the record the deposit job reads, kept in the structure mailbox's Sent
        raw_mail = build_mail(config, sender, [sender], doc, to_patient=False, qualified=qualified,
                              message_id=f"<hl7.dmp.{stamp}@{config.hostname}>", parts=parts)
        built.append(([], raw_mail, summarise(raw_mail)))
    return built


def build_mail(config: Config, sender: str, recipients: list[str], doc: Hl7Document, *, to_patient: bool,
               qualified: bool, message_id: str, parts: list[tuple[bytes, str, str]] | None = None) -> bytes:
    """The MSSanté message for one destination (CPU work: called outside the transaction). ``parts``: the
    attachments already in base64 lines (:func:`_base64`), encoded once for every message of one HL7 message."""
    header = doc.cda_header
    fields = [headers.addresses("From", [sender]), headers.addresses("To", recipients),
              headers.text("Subject", _subject(header)),
              headers.text("Date", email.utils.formatdate(localtime=False)), headers.text("Message-ID", message_id)]
    fields += [headers.text(name, value) for name, value in mss_headers([header], qualified).items()]
    fields.append(headers.text(NIL_HEADER, config.software_reference))
    if to_patient and doc.no_reply:
        fields.append(b"X-MSS-MES: FIN\r\n")  # the volet's NTE-4: the patient may not answer (R2)
    if doc.reply_to:
        fields.append(headers.addresses("Reply-To", [doc.reply_to]))
    if codes.ACK_LECTURE in doc.flags or codes.ACK_LECTURE_MSS in doc.flags:
        fields.append(headers.addresses("Disposition-Notification-To", [sender]))  # read receipt (R6, RFC 8098)
    visibility = sorted(codes.DMP_VISIBILITY[f] for f in doc.flags if f in codes.DMP_VISIBILITY)
    if visibility:
        fields.append(headers.text(VISIBILITY_HEADER, ",".join(visibility)))
    body = doc.bodies.get(codes.CORPSMAIL_PATIENT if to_patient else codes.CORPSMAIL_PS)
    text = body or f"Veuillez trouver ci-joint le document « {header.title or 'CDA'} »."
    if parts is None:
        parts = [(_base64(data), subtype, filename) for data, subtype, filename in attachments(config, doc)]
    return _multipart(b"".join(fields), text, parts)


#: Boundaries need only differ from the content (checked below), not be secret: a counter, no entropy read.
_BOUNDARIES = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _multipart(head: bytes, text: str, parts: list[tuple[bytes, str, str]]) -> bytes:
    """The MIME body written directly (RFC 2045, 2046) after ``head``, the header fields made by
    :mod:`gateway.hl7.headers`: the parts are base64 in CRLF lines made in C, instead of the email generator's
    walk of every encoded line of the XDM zip. The boundary is ours: "=_" cannot occur in base64 nor in 8bit
    text we check."""
    boundary = f"=_hl7_{os.getpid():x}.{next(_BOUNDARIES):x}".encode("ascii")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    encoded = "\r\n".join(lines).encode("utf-8")
    plain = all(len(line) < 900 for line in lines) and b"\0" not in encoded and b"--=_hl7_" not in encoded
    out = [head,  # the header section without its closing empty line
           b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n",
           b"--" + boundary + b"\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: ",
           b"8bit\r\n\r\n" + encoded + b"\r\n" if plain else b"base64\r\n\r\n" + _base64(encoded)]
    for encoded_part, subtype, filename in parts:  # already in base64 lines
        out += [b"--", boundary, b"\r\nContent-Type: application/", subtype.encode("ascii"),
                b"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"",
                filename.encode("ascii"), b"\"\r\n\r\n", encoded_part]
    out += [b"--", boundary, b"--\r\n"]
    return b"".join(out)


def _base64(data: bytes) -> bytes:
    """Base64 in lines of 76 characters ended by CRLF (RFC 2045 6.8): pybase64's vectorised encoder writes the
    lines (LF) in C and one pass turns LF into CRLF, about half the time of cutting binascii's one line of a
    137 KB zip into 1,800 slices."""
    return pybase64.encodebytes(data).replace(b"\n", b"\r\n")


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
