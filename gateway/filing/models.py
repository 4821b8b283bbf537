"""Tables of the filing path: what was already imported from upstream mailboxes, and the jobs' table (in
gateway/store/jobs.py, since the acceptance planner writes it).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.jobs import FilingJob
from gateway.store.models import Base, Id

__all__ = ["FilingJob", "UpstreamMessage"]


class UpstreamMessage(Base):
    """A message imported from an upstream IMAP mailbox: never imported twice (UIDVALIDITY + UID)."""

    __tablename__ = "upstream_messages"
    __table_args__ = (UniqueConstraint("source", "uidvalidity", "uid"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    uidvalidity: Mapped[int] = mapped_column(Id)
    uid: Mapped[int] = mapped_column(Id)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
