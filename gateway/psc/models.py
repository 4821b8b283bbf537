"""Which mailboxes a professional may use when logging in with Pro Santé Connect (migration ``psc_0001``).

A grant binds a national id (PSC ``SubjectNameID``, ``8`` + RPPS) to a mailbox: the professional's own, and
each organisational mailbox a structure lets them use. It lives in the store, so every gateway process and
instance on one database sees the same grants, and ``gateway psc revoke`` takes effect at the next login.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, Id


class PscGrant(Base):
    """The professional ``national_id`` may log in to ``mailbox_id`` with a PSC token."""

    __tablename__ = "psc_grants"
    __table_args__ = (UniqueConstraint("national_id", "mailbox_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    national_id: Mapped[str] = mapped_column(String(64), index=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    granted_by: Mapped[str] = mapped_column(String(200), default="")
