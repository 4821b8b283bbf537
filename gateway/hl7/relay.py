"""Acknowledgements back to hospital systems: each destination's answer relayed as the volet's ZAM message.

For an HL7 message that asked ``ACK_RECEPTION`` (and whose peer has a ``return_address``), the DMP's answer to
its deposit becomes a ``ZAM^Z01^ZAM_Z01`` (OBX ``ACK_RECEPTION_DMP`` Y/N, ERR-5 the DMP's error code) and the
delivery of its MSSanté message a ``ZAM^Z02^ZAM_Z01`` per recipient set (OBX ``ACK_RECEPTION_MSS``; delivered
here at commit, or by the outbound queue to another operator: sent, or failed with its SMTP code). Each is a
row of :class:`~gateway.hl7.models.Hl7Outgoing` created once per (message, kind) and sent over MLLP (python-hl7's
asyncio client) until the peer answers ``AA``; ``AE``/``AR`` leaves it ``refused`` with the peer's ERR, visible
with ``state``/``last_error``; transport errors are retried with backoff. The worker runs once per gateway.

For a message that asked ``ACK_LECTURE`` (``ACK_LECTURE_MSS``), the recipient's MDN (RFC 8098) arriving in the
structure mailbox becomes a ``ZAM^Z03^ZAM_Z01`` (OBX ``ACK_LECTURE_MSS`` Y/N, OBX ``LECTEUR_MSS`` the reader's
address, ERR-5 the error an MDN ``/error`` carries), once per HL7 message: the volet's "accusé de lecture
MSSanté" (transmission document CDA R2 en HL7 v2, structure ZAM_Z01). Only an MDN from one of the message's
recipients counts. A document the DPI refuses (``AE``/``AR`` to an ``MDM^T02``) opens a review item with the
DPI's error (R10) and an event (R18), so staff see it where they look.

The worker sleeps until a commit marks ``HL7_OUTBOX`` or a structure mailbox's folder (the change hub, NOTIFY on
PostgreSQL), or until ``[hl7] relay_poll`` seconds pass as a safety net.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
from datetime import UTC, datetime, timedelta

import hl7
import structlog
from hl7.mllp import open_hl7_connection
from sqlalchemy import LargeBinary, and_, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.codes.rules import Rule
from gateway.config.hl7 import Hl7Peer, Hl7Settings
from gateway.dmp_bridge.outbox import ACCEPTED, REFUSED, DmpDeposit
from gateway.hl7 import codes, readreceipt
from gateway.hl7.ack import escape
from gateway.hl7.models import Hl7Outgoing, Hl7Received
from gateway.ins_matching.matching import Review
from gateway.ins_matching.record import PatientDocument, open_review
from gateway.store import queue as q
from gateway.store.changes import HL7_OUTBOX, ChangeHub
from gateway.store.events import record
from gateway.store.models import Delivery, Folder, Identity, Mailbox, Message, OutboundRecipient
from gateway.tasks import Background

log = structlog.get_logger("gateway.hl7.relay")

ZAM_DMP = "ZAM^Z01^ZAM_Z01"
ZAM_MSS = "ZAM^Z02^ZAM_Z01"
ZAM_READ = "ZAM^Z03^ZAM_Z01"
MDM_T02 = "MDM^T02"
PENDING, DONE, REFUSED_BY_PEER, FAILED = "pending", "done", "refused", "failed"
MAX_ATTEMPTS = 20
ANSWER_SECONDS = 30.0
#: The relay's outbox as a queue of the store's primitive: each row claimed under a lease longer than a send
#: takes (connect and answer, ANSWER_SECONDS each), so instances sharing a store never send the same row; a
#: transport error is retried 2 s, 4 s, ... at most 10 min apart, then ``failed`` after MAX_ATTEMPTS.
QUEUE = q.Queue(Hl7Outgoing, waiting=(PENDING,), dead=FAILED, wake=HL7_OUTBOX)
RETRIES = q.Retry(q.Backoff(base=2.0, factor=2.0, ceiling=600.0), max_attempts=MAX_ATTEMPTS)
LEASE_SECONDS = 3 * ANSWER_SECONDS
#: Messages of the structure mailboxes read per pass when looking for MDNs.
MDN_BATCH = 100
#: Seconds a scanned message stays behind the MDN cursor (a transaction that took a lower id may commit later).
MDN_LAG_SECONDS = 120.0
#: The review item's source for a document the DPI refused (``gateway review list`` shows it).
DPI_REFUSAL_SOURCE = "hl7-dpi:"
#: The review code of a document the DPI refused: beside the ANS integration codes (900-906) of documents the
#: gateway could not file itself; the item's reason carries the DPI's own code and text (ERR-5, ERR-8, MSA-3).
DPI_REFUSED = 910
_ZAM_OBX = {ZAM_DMP: ("ACK_RECEPTION_DMP", "Accusé de réception DMP"),
            ZAM_MSS: ("ACK_RECEPTION_MSS", "Accusé de réception MSSanté"),
            ZAM_READ: ("ACK_LECTURE_MSS", "Accusé de lecture")}
_ZAM_ERROR_SYSTEM = {ZAM_DMP: "DMP_ERROR_CODE", ZAM_MSS: "SMTPERRORCODE", ZAM_READ: "applicationErrorCondition"}


def zam(kind: str, control_id: str, source_control_id: str, matricule: str, oid: str, ok: bool,
        error: tuple[str, str] | None = None, detail: str = "", application: str = "MSSANTE",
        now: datetime | None = None) -> str:
    """One acknowledgement message of the volet (HL7 v2.6), ER7 with CR between segments."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    event = kind.split("^")[1]
    code, label = _ZAM_OBX[kind]
    segments = [
        f"MSH|^~\\&|{application}||||{moment}||ZAM^{event}^ZAM_Z01|{escape(control_id, 199)}|P|2.6|||||FRA|"
        "UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2",
        *([f"PID|1||{escape(matricule, 15)}^^^ASIP-SANTE-INS-NIR&{escape(oid, 64)}&ISO^INS"] if matricule else []),
        f"OBX|1|CWE|{code}^{label}^AckMetierZAM|{escape(source_control_id, 199)}|"
        f"{'Y' if ok else 'N'}^^expandedYes-NoIndicator||||||F",
    ]
    if detail and kind == ZAM_READ:  # the reader's mailbox, an XTN of type X.400
        segments.append(f"OBX|2|XTN|LECTEUR_MSS^Lecteur du courriel MSSanté^AckMetierZAM||^^X.400^"
                        f"{escape(detail, 320)}||||||F")
    elif detail:  # the recipients' addresses, XTN of type X.400, one repetition each (volet, ZAM^Z02)
        addresses = [a.strip() for a in detail.split(",") if a.strip()][:50]
        value = "~".join(f"^^X.400^{escape(a, 320)}" for a in addresses)
        segments.append(f"OBX|2|XTN|DESTINATAIRE_MSS^Destinataire MSSanté^AckMetierZAM||{value}||||||F")
    if not ok:
        system = _ZAM_ERROR_SYSTEM[kind]
        number, text = error or ("", "")
        segments.append(f"ERR|||207^Application error^messageErrorCondition|E|{escape(number, 80)}^"
                        f"{escape(text, 200)}^{system}")
    return "\r".join(segments)


def mdm_t02(control_id: str, document: PatientDocument, matricule: str, oid: str,
            application: str = "MSSANTE", now: datetime | None = None) -> str:
    """A document filed to a patient (R10) as the volet's MDM^T02 for the DPI: PID with the INS and the IPP the
    document carries, TXA with its type and unique id, OBX ED with the CDA in base64."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    pid3 = [f"{escape(matricule, 15)}^^^ASIP-SANTE-INS-NIR&{escape(oid, 64)}&ISO^INS"]
    patient = (document.header or {}).get("patient") or {}
    for local in (patient.get("local_ids") or [])[:5]:  # the IPP when the document carries it
        if isinstance(local, dict) and local.get("extension"):
            pid3.append(f"{escape(str(local['extension']), 64)}^^^&{escape(str(local.get('root') or ''), 64)}"
                        "&ISO^PI")
    kind = f"{escape(document.type_code or '', 40)}^{escape(document.type_display or '', 200)}^LN"
    title = escape(document.title or "", 200)
    data = base64.b64encode(document.content).decode("ascii")
    return "\r".join([
        f"MSH|^~\\&|{application}||||{moment}||MDM^T02^MDM_T02|{escape(control_id, 199)}|P|2.6|||||FRA|"
        "UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2",
        f"EVN|T02|{moment}",
        f"PID|1||{'~'.join(pid3)}",
        "PV1|1|N",
        f"TXA|1|{kind}|TEXT|{moment}||||||||{escape(document.unique_id, 199)}||||AU",
        f"OBX|1|ED|{kind}||^TEXT^XML^Base64^{data}||||||F|||||||{title}",
    ])


class Hl7Relay(Background):
    name = "hl7-relay"
    once_per_daemon = True

    def __init__(self, settings: Hl7Settings, sessions: async_sessionmaker[AsyncSession],
                 hub: ChangeHub | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._sessions = sessions
        self._peers = {p.name: p for p in settings.peers if p.return_address is not None}
        self._hub = hub
        self._wake = hub.watch(HL7_OUTBOX) if hub is not None else asyncio.Event()
        #: The structure mailboxes' folders watched for MDNs, by folder id.
        self._folders: set[int] = set()
        #: Messages up to this id were looked at for MDNs (kept :data:`MDN_LAG_SECONDS` behind).
        self._mdn_floor = 0

    async def main(self) -> None:
        try:
            while True:
                self._wake.clear()  # a commit while working leaves it set: nothing waits for the poll
                pause = self.settings.relay_poll
                try:
                    await self._watch_folders()
                    await self.collect()
                    pause = min(pause, await self.send_due())
                except Exception:
                    log.exception("hl7.relay_error")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.05, pause))
        finally:
            if self._hub is not None:
                self._hub.unwatch(HL7_OUTBOX, self._wake)
                for folder_id in self._folders:
                    self._hub.unwatch(folder_id, self._wake)

    async def _watch_folders(self) -> None:
        """Wake on new mail in the structure mailboxes of peers with a return address (the MDNs, R6)."""
        if self._hub is None:
            return
        senders = {p.sender for p in self._peers.values()}
        async with self._sessions() as session:
            ids = set((await session.execute(select(Folder.id).join(Mailbox, Mailbox.id == Folder.mailbox_id)
                                             .where(Mailbox.address.in_(senders)))).scalars())
        for folder_id in ids - self._folders:
            self._hub.watch(folder_id, self._wake)
        for folder_id in self._folders - ids:
            self._hub.unwatch(folder_id, self._wake)
        self._folders = ids

    async def collect(self) -> int:
        """Turn the destinations' answers into outbox rows (one per message and kind), in one transaction."""
        created = 0
        async with self._sessions() as session, session.begin():
            owed = exists().where(and_(Hl7Outgoing.source_id == Hl7Received.id, Hl7Outgoing.kind == ZAM_DMP))
            dmp = (await session.execute(
                select(Hl7Received.id, Hl7Received.peer, Hl7Received.control_id, DmpDeposit.state,
                       DmpDeposit.result_code, DmpDeposit.last_error, DmpDeposit.matricule)
                .join(DmpDeposit, DmpDeposit.message_id == Hl7Received.message_id)
                .where(Hl7Received.ack_reception.is_(True), DmpDeposit.state.in_((ACCEPTED, REFUSED)), ~owed)
                .limit(200))).all()
            for row in dmp:
                ok = row.state == ACCEPTED
                payload = zam(ZAM_DMP, f"Z01-{row.id}", row.control_id, row.matricule, "", ok,
                              None if ok else (row.result_code or "", (row.last_error or "")[:200]))
                created += self._add(session, row.id, row.peer, ZAM_DMP, f"Z01-{row.id}", payload)
            owed_mss = exists().where(and_(Hl7Outgoing.source_id == Hl7Received.id, Hl7Outgoing.kind == ZAM_MSS))
            mss = (await session.execute(
                select(Hl7Received.id, Hl7Received.peer, Hl7Received.control_id, Hl7Received.message_id)
                .where(Hl7Received.ack_reception.is_(True), ~owed_mss).limit(200))).all()
            for received in mss:
                outcome = await self._mss_outcome(session, received.message_id)
                if outcome is None:
                    continue  # still in the outbound queue
                ok, error, recipients = outcome
                payload = zam(ZAM_MSS, f"Z02-{received.id}", received.control_id, "", "", ok, error, recipients)
                created += self._add(session, received.id, received.peer, ZAM_MSS, f"Z02-{received.id}", payload)
            created += await self._read_receipts(session)
            created += await self._documents(session)
        return created

    async def _read_receipts(self, session: AsyncSession) -> int:
        """ACK_LECTURE: the MDNs arrived in the structure mailboxes for messages still owed one, as ZAM^Z03.

        Only messages after the oldest owed one are read, from a cursor, a bounded prefix each
        (:mod:`gateway.hl7.readreceipt`); the MDN must name our Message-ID and come from one of its recipients."""
        owed_read = exists().where(and_(Hl7Outgoing.source_id == Hl7Received.id, Hl7Outgoing.kind == ZAM_READ))
        pending = (await session.execute(
            select(Hl7Received.id, Hl7Received.peer, Hl7Received.control_id, Hl7Received.message_id)
            .where(Hl7Received.ack_lecture.is_(True), Hl7Received.message_id.is_not(None), ~owed_read)
            .order_by(Hl7Received.id.desc()).limit(1000))).all()
        if not pending:
            return 0
        by_stamp = {readreceipt.stamp_of(r.peer, r.control_id): r for r in pending}
        wanted = {self._peers[r.peer].sender for r in pending if r.peer in self._peers}
        found = await session.execute(select(Mailbox.address, Mailbox.id).where(Mailbox.address.in_(wanted)))
        senders: dict[str, int] = {address: int(mailbox_id) for address, mailbox_id in found.tuples()}
        if not senders:
            return 0
        floor = max(self._mdn_floor, min(int(r.message_id) for r in pending))
        rows = (await session.execute(
            select(Message.id, Message.received_at, Message.header_from, Message.mail_from, Folder.mailbox_id,
                   func.substr(Message.raw, 1, readreceipt.PREFIX_BYTES, type_=LargeBinary).label("prefix"))
            .join(Delivery, Delivery.message_id == Message.id).join(Folder, Folder.id == Delivery.folder_id)
            .where(Folder.mailbox_id.in_(senders.values()), Message.id > floor)
            .order_by(Message.id).limit(MDN_BATCH))).all()
        settled = datetime.now(UTC) - timedelta(seconds=MDN_LAG_SECONDS)
        created = 0
        done: set[int] = set()
        advancing = True
        for row in rows:
            advancing = advancing and (len(rows) == MDN_BATCH or _aware(row.received_at) < settled)
            if advancing:
                self._mdn_floor = max(self._mdn_floor, int(row.id))
            disposition = readreceipt.read(bytes(row.prefix or b""))
            if disposition is None or disposition.stamp is None or not (disposition.read or disposition.error):
                continue
            received = by_stamp.get(disposition.stamp)
            if received is None or received.id in done or received.peer not in self._peers \
                    or senders.get(self._peers[received.peer].sender) != row.mailbox_id:
                continue
            reader = email.utils.parseaddr(row.header_from or "")[1].lower() or (row.mail_from or "").lower()
            recipients = (await session.execute(select(Message.rcpt_to).where(
                Message.message_id_header == disposition.original_message_id,
                Message.sender_mailbox_id == row.mailbox_id))).scalars().first()
            if reader not in {str(r).lower() for r in recipients or ()}:
                log.warning("hl7.relay.mdn_ignored", peer=received.peer, source_id=received.id, message_id=row.id,
                            reason="not_a_recipient", mailbox_id=row.mailbox_id)
                continue
            ok = disposition.error is None
            payload = zam(ZAM_READ, f"Z03-{received.id}", received.control_id, "", "", ok, disposition.error,
                          reader)
            created += self._add(session, received.id, received.peer, ZAM_READ, f"Z03-{received.id}", payload)
            done.add(received.id)
        return created

    async def _documents(self, session: AsyncSession) -> int:
        """R10: each document filed to a patient's record, once, to the DPI peer (MDM^T02)."""
        peer = self.settings.documents_peer
        if peer is None:
            return 0
        sent = exists().where(Hl7Outgoing.document_id == PatientDocument.id)
        rows = (await session.execute(
            select(PatientDocument, Identity.matricule, Identity.oid)
            .join(Identity, Identity.id == PatientDocument.identity_id)
            .where(~sent).order_by(PatientDocument.id).limit(20))).all()
        for document, matricule, oid in rows:
            control_id = f"T02-{document.id}"
            moment = datetime.now(UTC)
            session.add(Hl7Outgoing(source_id=None, document_id=document.id, peer=peer, kind="MDM^T02",
                                    control_id=control_id, payload=mdm_t02(control_id, document, matricule, oid),
                                    state=PENDING, attempts=0, next_attempt_at=moment, created_at=moment))
            log.info("hl7.relay.queued", peer=peer, kind="MDM^T02", document_id=document.id)
        return len(rows)

    @staticmethod
    async def _mss_outcome(session: AsyncSession, message_id: int | None
                           ) -> tuple[bool, tuple[str, str] | None, str] | None:
        """Delivered (local recipients are delivered at commit), failed (with the SMTP code), or not yet."""
        if message_id is None:
            return True, None, ""
        rows = (await session.execute(select(OutboundRecipient.recipient, OutboundRecipient.state,
                                             OutboundRecipient.last_reply)
                                      .where(OutboundRecipient.message_id == message_id))).all()
        if not rows:  # every recipient was ours: delivered in the acceptance's transaction
            local = (await session.execute(select(Message.rcpt_to).where(Message.id == message_id))).scalar()
            return True, None, ", ".join(str(r) for r in local or ())
        if any(r.state == "queued" for r in rows):
            return None
        failed = [r for r in rows if r.state == "failed"]
        if failed:
            reply = (failed[0].last_reply or "554").strip()
            return False, (reply[:3], reply[:200]), ", ".join(r.recipient for r in failed)
        return True, None, ", ".join(r.recipient for r in rows)

    def _add(self, session: AsyncSession, source_id: int, peer: str, kind: str, control_id: str,
             payload: str) -> int:
        moment = datetime.now(UTC)
        session.add(Hl7Outgoing(source_id=source_id, peer=peer, kind=kind, control_id=control_id, payload=payload,
                                state=PENDING, attempts=0, next_attempt_at=moment, created_at=moment))
        log.info("hl7.relay.queued", peer=peer, kind=kind, source_id=source_id)
        return 1

    async def send_due(self) -> float:
        """Send what is due; the seconds until the next retry falls due (the loop's longest sleep)."""
        async with self._sessions() as session, session.begin():
            due = [unit.rows[0] for unit in await q.claim(session, QUEUE, units=50, lease=LEASE_SECONDS)]
        for row in due:
            peer = self._peers.get(row.peer)
            if peer is None:
                await self._finish(row.id, FAILED, "the peer has no return_address", row.attempts)
                continue
            # the claim counted this attempt; _send counts from the attempts made before it
            await self._send(row.id, peer, row.payload, row.attempts - 1, row.kind, row.document_id)
        if len(due) == 50:
            return 0.0
        async with self._sessions() as session:
            later = (await session.execute(select(func.min(Hl7Outgoing.next_attempt_at))
                                           .where(Hl7Outgoing.state == PENDING))).scalar()
        return self.settings.relay_poll if later is None else \
            max(0.0, (_aware(later) - datetime.now(UTC)).total_seconds())

    async def _send(self, row_id: int, peer: Hl7Peer, payload: str, attempts: int, kind: str = "",
                    document_id: int | None = None) -> None:
        assert peer.return_address is not None
        try:
            reader, writer = await asyncio.wait_for(open_hl7_connection(
                peer.return_address.host, peer.return_address.port, encoding="utf-8"), ANSWER_SECONDS)
            try:
                writer.writemessage(hl7.parse(payload))
                await writer.drain()
                answer = await asyncio.wait_for(reader.readmessage(), ANSWER_SECONDS)
            finally:
                writer.close()
        except (OSError, TimeoutError, ValueError, hl7.ParseException) as exc:
            await self._retry(row_id, attempts + 1, f"{type(exc).__name__}: {exc}")
            return
        code = str(answer.segment("MSA")(1))
        if code in (codes.AA, "CA"):
            await self._finish(row_id, DONE, None, attempts + 1)
            log.info("hl7.relay.sent", peer=peer.name, outcome="accepted", outbox_id=row_id, kind=kind)
            return
        text = refusal_text(answer)
        review_id = await self._finish(row_id, REFUSED_BY_PEER, f"{code}: {text}"[:2000], attempts + 1,
                                       refused=(peer.name, code, text) if kind == MDM_T02 and document_id else None,
                                       document_id=document_id)
        log.warning("hl7.relay.sent", peer=peer.name, outcome="refused", code=code, outbox_id=row_id, kind=kind,
                    document_id=document_id, review_id=review_id, rule=str(Rule.R10) if review_id else None)

    async def _retry(self, row_id: int, attempts: int, error: str) -> None:
        async with self._sessions() as session, session.begin():
            await q.retry(session, QUEUE, None, [row_id], attempts=attempts, policy=RETRIES, last_error=error[:2000])

    async def _finish(self, row_id: int, state: str, error: str | None, attempts: int, *,
                      refused: tuple[str, str, str] | None = None, document_id: int | None = None) -> int | None:
        """Settle a row; a document the DPI refused (``refused``: peer, MSA-1, its error) also opens a review
        item with that error and an event, in the same transaction (R10, R18). The review item's id, if any."""
        async with self._sessions() as session, session.begin():
            await session.execute(update(Hl7Outgoing).where(Hl7Outgoing.id == row_id).values(
                state=state, last_error=error, attempts=attempts, finished_at=datetime.now(UTC)))
            if refused is None or document_id is None:
                return None
            return await _review_refusal(session, row_id, document_id, *refused)


def refusal_text(answer: hl7.Message) -> str:
    """The DPI's error as staff read it: MSA-3, then each ERR's code (ERR-3, ERR-5) and text (ERR-8)."""
    parts: list[str] = []
    msa = answer.segment("MSA")
    if len(msa) > 3 and str(msa(3)):
        parts.append(str(msa(3)))
    for segment in answer:
        if str(segment[0]) != "ERR":
            continue
        condition, application, text = (str(segment(n)) if len(segment) > n else "" for n in (3, 5, 8))
        code, label = [*(application or condition).split("^"), "", ""][:2]
        described = " ".join(p for p in (code, label) if p)
        if text and text != label:
            described = f"{described} — {text}" if described else text
        if described:
            parts.append(described)
    return "; ".join(parts)[:1000] or "(no error text)"


async def _review_refusal(session: AsyncSession, row_id: int, document_id: int, peer: str, code: str,
                          text: str) -> int | None:
    document = await session.get(PatientDocument, document_id)
    if document is None:
        return None
    reason = f"Refusé par le DPI « {peer} » ({code}) : {text}"
    review_id = await open_review(session, Review(DPI_REFUSED, reason[:2000], Rule.R10), document.content,
                                  document.header, message_id=document.message_id,
                                  source=f"{DPI_REFUSAL_SOURCE}{peer}", actor="hl7-relay")
    await record(session, "hl7.dpi_refused", code, rule=Rule.R10, actor="hl7-relay",
                 message_id=document.message_id, identity_id=document.identity_id, outbox_id=row_id,
                 document_id=document_id, review_id=review_id, peer=peer, error=text[:500])
    return review_id


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
