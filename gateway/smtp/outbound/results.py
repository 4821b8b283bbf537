"""What a next hop answered, per recipient, and what that answer makes of the queue row.

2xx = sent; 5xx = failed at once; 4xx or no connection = retried on ``retry_schedule`` until ``max_age``. A DSN
(RFC 3464) is filed in the sender's INBOX on final failure, and on success when asked (NOTIFY=SUCCESS) and the
peer does not report it itself. Answers are facts whether or not the claim is still current (the peer has the
message), so they are written without the lease's condition.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Config, OutboundSettings
from gateway.routing.headers import HeaderError
from gateway.smtp import dsn
from gateway.smtp.outbound.queue import FAILED, QUEUE, SENT, Group, Row, aware
from gateway.store import queue as q
from gateway.store.events import now, record
from gateway.store.mailstore import StoredMessage, deliver, folder_id, store_message
from gateway.store.models import Mailbox


@dataclass(frozen=True)
class Result:
    kind: str  # "sent" | "permanent" | "temporary"
    reply: str
    remote_mta: str | None = None
    #: The peer advertised DSN and got our NOTIFY/ORCPT: it reports success itself.
    peer_reports: bool = False


def classify(code: int) -> str:
    return "sent" if 200 <= code < 300 else "permanent" if 500 <= code < 600 else "temporary"


def reply_text(code: int, message: str) -> str:
    """The peer's reply on one line, bounded, as it is kept in the row and shown in a DSN."""
    return f"{code} {' '.join(message.split())}"[:900]


def _enhanced(reply: str, default: str) -> str:
    parts = reply.split()
    if len(parts) > 1 and parts[1].count(".") == 2 and parts[1][0] in "245":
        return parts[1]
    return default


class ResultRecorder:
    """Writes a group's answers: row states, one event per recipient, and the DSNs they call for."""

    def __init__(self, config: Config) -> None:
        assert config.outbound is not None
        self.config = config
        self.settings: OutboundSettings = config.outbound
        self.postmaster = f"mailer-daemon@{sorted(config.domains)[0]}"

    async def record(self, session: AsyncSession, group: Group, results: dict[int, Result]) -> None:
        at = now()
        retries = q.Retry(q.Schedule(tuple(self.settings.retry_schedule)))
        reports: dict[str, list[tuple[Row, dsn.RecipientStatus]]] = defaultdict(list)
        for row in group.rows:
            result = results.get(row.id) or Result("temporary", "no result")
            notify = set((row.notify or "FAILURE").split(","))
            values: dict[str, Any] = {"last_reply": result.reply, "remote_mta": result.remote_mta}
            kind = result.kind
            if kind == "temporary" and (at - aware(row.created_at)).total_seconds() >= self.settings.max_age:
                kind = "expired"
            if kind == "sent":
                await q.finish(session, QUEUE, None, [row.id], SENT, finished_at=at, **values)
                if "SUCCESS" in notify and not result.peer_reports:
                    reports["relayed"].append((row, self._status(row, "relayed", "2.0.0", result, at)))
            elif kind in ("permanent", "expired"):
                await q.finish(session, QUEUE, None, [row.id], FAILED, finished_at=at, **values)
                status = _enhanced(result.reply, "5.0.0") if kind == "permanent" else "4.4.7"
                if "FAILURE" in notify:
                    reports["failed"].append((row, self._status(row, "failed", status, result, at)))
            else:
                await q.retry(session, QUEUE, None, [row.id], attempts=row.attempts, policy=retries, at=at, **values)
            outcome = {"sent": "delivered", "permanent": "failed", "expired": "expired"}.get(kind, "deferred")
            await record(session, f"outbound.{outcome}", outcome, actor=row.mail_from,
                         mailbox_id=row.sender_mailbox_id, message_id=row.message_id, domain=row.domain,
                         attempts=row.attempts, reply=result.reply[:300], recipient=row.recipient)
        for action, items in reports.items():
            await self._file_dsn(session, group, action, items)

    def _status(self, row: Row, action: str, status: str, result: Result, at: datetime) -> dsn.RecipientStatus:
        return dsn.RecipientStatus(row.recipient, action, status, row.orcpt, result.remote_mta, result.reply, at)

    async def _file_dsn(self, session: AsyncSession, group: Group, action: str,
                        items: list[tuple[Row, dsn.RecipientStatus]]) -> None:
        """File the report in the sender's INBOX (our senders are always local mailboxes)."""
        by_sender: dict[int, list[tuple[Row, dsn.RecipientStatus]]] = defaultdict(list)
        for row, status in items:
            if row.sender_mailbox_id is not None and row.mail_from:
                by_sender[row.sender_mailbox_id].append((row, status))
        for mailbox_id, entries in by_sender.items():
            mailbox = await session.get(Mailbox, mailbox_id)
            if mailbox is None or not mailbox.active:
                continue
            first = entries[0][0]
            try:
                raw = dsn.build(reporting_mta=self.config.hostname, postmaster=self.postmaster, to=mailbox.address,
                                recipients=[s for _, s in entries], original=group.raw, arrival=group.received_at,
                                envid=first.envid, ret=first.ret,
                                software_reference=self.config.software_reference)
            except HeaderError:
                raw = dsn.build(reporting_mta=self.config.hostname, postmaster=self.postmaster, to=mailbox.address,
                                recipients=[s for _, s in entries], original=b"\r\n", arrival=group.received_at,
                                envid=first.envid, software_reference=self.config.software_reference)
            message_id = await store_message(session, StoredMessage(
                raw=raw, mail_from="", rcpt_to=[mailbox.address], sender_mailbox_id=None, message_id_header=None,
                subject="Delivery status notification", header_from=self.postmaster))
            await deliver(session, message_id, await folder_id(session, mailbox_id, "INBOX"))
            await record(session, "outbound.dsn", action, actor=self.postmaster, mailbox_id=mailbox_id,
                         message_id=message_id, original_message_id=group.message_id, recipients=len(entries))
