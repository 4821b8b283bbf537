"""Tables the IMAP side adds to the store (migrations ``imap_0001`` and ``imap_0003``).

``imap_expunged`` keeps, per folder, the UIDs removed at each MODSEQ: a selected session (possibly in another
gateway process) learns what disappeared since the MODSEQ it last saw without re-reading the whole folder.
Records older than a retention period are pruned (:mod:`gateway.imap.housekeeping`); ``folders.expunged_floor``
says up to which MODSEQ.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, Id


class ExpungedUid(Base):
    """A UID expunged from a folder, and the folder MODSEQ at which it happened."""

    __tablename__ = "imap_expunged"
    __table_args__ = (Index("ix_imap_expunged_folder_modseq", "folder_id", "modseq"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInteger)
    modseq: Mapped[int] = mapped_column(BigInteger)
    #: When the UID was expunged; rows written before imap_0003 have none and are pruned first.
    expunged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
