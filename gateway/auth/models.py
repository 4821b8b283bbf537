"""The table the login throttle keeps in the store (migration ``auth_0001``).

Failed logins are counted in the store, not in one process's memory, so that every gateway process and
instance sharing the database sees the same count: a guesser cannot multiply its attempts by the number of
processes, and ``gateway throttle clear`` lifts a block everywhere at once.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, Id


class AuthFailure(Base):
    """One failed password login (or one being checked): from which client address, for which account, when."""

    __tablename__ = "auth_failures"
    __table_args__ = (Index("ix_auth_failures_client_failed_at", "client", "failed_at"),
                      Index("ix_auth_failures_failed_at", "failed_at"))
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: The client's IP address as the listener saw it.
    client: Mapped[str] = mapped_column(String(64))
    #: The account name as given (lower case, bounded), whether or not such a mailbox exists.
    account: Mapped[str] = mapped_column(String(320))
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The password of this attempt is being checked now: not a failure yet, but it holds a slot, so parallel
    #: guesses cannot all be checked at once; a parallel login waits for it rather than being refused.
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
