"""Acknowledgements back to hospital systems: each destination's answer relayed as the volet's ZAM message.

For an HL7 message that asked ``ACK_RECEPTION`` (and whose peer has a ``return_address``), the DMP's answer to
its deposit becomes a ``ZAM^Z01^ZAM_Z01`` (OBX ``ACK_RECEPTION_DMP`` Y/N, ERR-5 the DMP's error code) and the
delivery of its MSSanté message a ``ZAM^Z02^ZAM_Z01`` per recipient set (OBX ``ACK_RECEPTION_MSS``; delivered
here at commit, or by the outbound queue to another operator: sent, or failed with its SMTP code). Each is a
row of :class:`~gateway.hl7.models.Hl7Outgoing` created once per (message, kind) and sent over MLLP (python-hl7's
asyncio client) until the peer answers ``AA``; ``AE``/``AR`` leaves it ``refused`` with the peer's ERR, visible
with ``state``/``last_error``; transport errors are retried with backoff. The worker runs once per gateway.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import hl7
import structlog
from hl7.mllp import open_hl7_connection
from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.dmp_bridge.outbox import ACCEPTED, REFUSED, DmpDeposit
from gateway.hl7 import codes
from gateway.hl7.ack import escape
from gateway.hl7.models import Hl7Outgoing, Hl7Received
from gateway.hl7.settings import Hl7Peer, Hl7Settings
from gateway.ins_matching.record import PatientDocument
from gateway.store.models import Identity, OutboundRecipient
from gateway.tasks import Background

log = structlog.get_logger("gateway.hl7.relay")

ZAM_DMP = "ZAM^Z01^ZAM_Z01"
ZAM_MSS = "ZAM^Z02^ZAM_Z01"
PENDING, DONE, REFUSED_BY_PEER, FAILED = "pending", "done", "refused", "failed"
MAX_ATTEMPTS = 20
POLL_SECONDS = 1.0
ANSWER_SECONDS = 30.0


def zam(kind: str, control_id: str, source_control_id: str, matricule: str, oid: str, ok: bool,
        error: tuple[str, str] | None = None, detail: str = "", application: str = "MSSANTE",
        now: datetime | None = None) -> str:
    """One acknowledgement message of the volet (HL7 v2.6), ER7 with CR between segments."""
    moment = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    event = kind.split("^")[1]
    code, label = ("ACK_RECEPTION_DMP", "Accusé de réception DMP") if kind == ZAM_DMP else \
        ("ACK_RECEPTION_MSS", "Accusé de réception MSSanté")
    segments = [
        f"MSH|^~\\&|{application}||||{moment}||ZAM^{event}^ZAM_Z01|{escape(control_id, 199)}|P|2.6|||||FRA|"
        "UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2",
        *([f"PID|1||{escape(matricule, 15)}^^^ASIP-SANTE-INS-NIR&{escape(oid, 64)}&ISO^INS"] if matricule else []),
        f"OBX|1|CWE|{code}^{label}^AckMetierZAM|{escape(source_control_id, 199)}|"
        f"{'Y' if ok else 'N'}^^expandedYes-NoIndicator||||||F",
    ]
    if detail:
        segments.append(f"OBX|2|ST|DESTINATAIRE_MSS^Destinataire MSSanté^AckMetierZAM||{escape(detail, 320)}||||||F")
    if not ok:
        system = "DMP_ERROR_CODE" if kind == ZAM_DMP else "SMTPERRORCODE"
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

    def __init__(self, settings: Hl7Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self.settings = settings
        self._sessions = sessions
        self._peers = {p.name: p for p in settings.peers if p.return_address is not None}

    async def main(self) -> None:
        while True:
            try:
                await self.collect()
                await self.send_due()
            except Exception:
                log.exception("hl7.relay_error")
            await asyncio.sleep(POLL_SECONDS)

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
            created += await self._documents(session)
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

    async def send_due(self) -> None:
        async with self._sessions() as session:
            due = (await session.execute(
                select(Hl7Outgoing.id, Hl7Outgoing.peer, Hl7Outgoing.payload, Hl7Outgoing.attempts)
                .where(Hl7Outgoing.state == PENDING, Hl7Outgoing.next_attempt_at <= datetime.now(UTC))
                .order_by(Hl7Outgoing.id).limit(50))).all()
        for row in due:
            peer = self._peers.get(row.peer)
            if peer is None:
                await self._finish(row.id, FAILED, "the peer has no return_address", row.attempts + 1)
                continue
            await self._send(row.id, peer, row.payload, row.attempts)

    async def _send(self, row_id: int, peer: Hl7Peer, payload: str, attempts: int) -> None:
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
            log.info("hl7.relay.sent", peer=peer.name, outcome="accepted", outbox_id=row_id)
        else:
            errors = [str(s) for s in answer if str(s[0]) == "ERR"]
            await self._finish(row_id, REFUSED_BY_PEER, f"{code}: {' '.join(errors)[:500]}", attempts + 1)
            log.warning("hl7.relay.sent", peer=peer.name, outcome="refused", code=code, outbox_id=row_id)

    async def _retry(self, row_id: int, attempts: int, error: str) -> None:
        state = FAILED if attempts >= MAX_ATTEMPTS else PENDING
        async with self._sessions() as session, session.begin():
            await session.execute(update(Hl7Outgoing).where(Hl7Outgoing.id == row_id).values(
                attempts=attempts, state=state, last_error=error[:2000],
                next_attempt_at=datetime.now(UTC) + timedelta(seconds=min(600, 2 ** attempts))))

    async def _finish(self, row_id: int, state: str, error: str | None, attempts: int) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(Hl7Outgoing).where(Hl7Outgoing.id == row_id).values(
                state=state, last_error=error, attempts=attempts, finished_at=datetime.now(UTC)))

