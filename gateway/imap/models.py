"""Tables the IMAP side adds to the store (migration ``imap_0001``).

``imap_expunged`` keeps, per folder, the UIDs removed at each MODSEQ: a selected session (possibly in another
gateway process) learns what disappeared since the MODSEQ it last saw without re-reading the whole folder.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index
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
