"""The record of each accepted HL7 message: what makes a re-sent message a no-op (MSH-10 + peer, exactly once).

The row is written in the transaction that stores the MSSanté messages and the deposit job it creates, so a
message either left no trace (the peer gets no ``AA`` and sends again) or is complete with the ``ACK`` that
was answered, which a re-send of the same control id gets again.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

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
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
