"""The record of each accepted HL7 message: what makes a re-sent message a no-op (MSH-10 + peer, exactly once).

The row is written in the transaction that stores the MSSanté messages and the deposit job it creates, so a
message either left no trace (the peer gets no ``AA`` and sends again) or is complete with the ``ACK`` that
was answered, which a re-send of the same control id gets again.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from gateway.store.models import Base, Id


class Hl7Received(Base):
    __tablename__ = "hl7_messages"
    __table_args__ = (UniqueConstraint("peer", "control_id", name="uq_hl7_messages_peer_control_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    peer: Mapped[str] = mapped_column(String(100))
    #: MSH-10 of the received message.
    control_id: Mapped[str] = mapped_column(String(200))
    message_type: Mapped[str] = mapped_column(String(20))
    #: The first stored MSSanté message (or the DMP-only record) it produced.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), nullable=True, index=True)
    #: The ACK answered (ER7 text), answered again to a re-send.
    ack: Mapped[str] = mapped_column(Text)
    #: The message as received, its document's base64 (OBX-5.5) left out: the document is stored once, in the
    #: MSSanté message built from it (or the DMP-only record in the structure mailbox's Sent).
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: ACK_RECEPTION was asked: each destination's answer is relayed to the peer (ZAM^Z01 DMP, ZAM^Z02 MSSanté).
    ack_reception: Mapped[bool] = mapped_column(Boolean, default=False)
    #: ACK_LECTURE was asked: the recipient's MDN (RFC 8098, "displayed") is relayed to the peer as ZAM^Z03.
    ack_lecture: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Hl7Outgoing(Base):
    """One HL7 message owed to a peer (an acknowledgement of the volet, ZAM): the durable queue of the relay.

    ``(source_id, kind)`` is unique, so a destination's answer is relayed once; the row's ``control_id`` is the
    MSH-10 it is sent with every time, so a peer that got it twice can tell (exactly once by control id)."""

    __tablename__ = "hl7_outbox"
    __table_args__ = (UniqueConstraint("source_id", "kind", name="uq_hl7_outbox_source_kind"),
                      Index("ix_hl7_outbox_due", "state", "next_attempt_at"))
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: The HL7 message whose destination answered (ZAM), or None for a filed document sent on (MDM^T02).
    source_id: Mapped[int | None] = mapped_column(ForeignKey("hl7_messages.id"), nullable=True)
    #: A document filed to a patient's record (R10) handed to the DPI as MDM^T02, once.
    document_id: Mapped[int | None] = mapped_column(ForeignKey("patient_documents.id"), nullable=True,
                                                    unique=True)
    peer: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    control_id: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[str] = mapped_column(Text)
    #: pending → done (AA) | refused (AE/AR, with the peer's ERR) | failed (attempts exhausted)
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
