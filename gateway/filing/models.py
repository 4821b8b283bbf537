"""Tables of the filing path: jobs, and what was already imported from upstream mailboxes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, Id


class FilingJob(Base):
    """Work on a stored message after its delivery: ``pending`` → ``done`` (or ``failed`` after repeated errors).

    ``kind`` is ``file`` (file the documents it carries, R10) or ``deposit`` (consider its documents for the
    DMP, R12–R16; ``mailbox_id`` is then the sending professional's mailbox).
    """

    __tablename__ = "filing_jobs"
    __table_args__ = (
        UniqueConstraint("message_id", "mailbox_id", "kind"),
        Index("ix_filing_jobs_state_next", "state", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default="file")
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id"))
    state: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


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
