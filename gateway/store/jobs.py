"""The filing queue: its table, its states, and the effect that fills it in the delivering transaction.

The table lives in the store because the acceptance planner (gateway/routing) writes its rows as an effect the
store applies with the message (R10, R12); the filing worker (gateway/filing) works them off.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.changes import FILING
from gateway.store.effects import Rows
from gateway.store.events import now
from gateway.store.models import Base, Id

PENDING, DONE, FAILED = "pending", "done", "failed"
FILE, DEPOSIT = "file", "deposit"


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


def jobs(mailbox_ids: Iterable[int], kind: str = FILE) -> Rows:
    """The jobs of a message being accepted, as an effect the store applies with the message (R10, R12);
    the filing worker is woken at commit."""
    at = now()
    return Rows(FilingJob, tuple(dict(kind=kind, mailbox_id=m, state=PENDING, attempts=0, next_attempt_at=at,
                                      created_at=at) for m in dict.fromkeys(mailbox_ids)), wake=FILING)
