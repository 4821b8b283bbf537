"""Tables the IMAP side adds to the store (migrations ``imap_0001``, ``imap_0003``, ``imap_0004``, ``imap_0005``).

``imap_expunged`` keeps, per folder, the UIDs removed at each MODSEQ: a selected session (possibly in another
gateway process) learns what disappeared since the MODSEQ it last saw without re-reading the whole folder.
Records older than a retention period are pruned (:mod:`gateway.imap.housekeeping`); ``folders.expunged_floor``
says up to which MODSEQ.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, LargeBinary, String, Text
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


class MessageAnatomy(Base):
    """What FETCH, SEARCH, SORT and THREAD need of a stored message, computed once when it is stored.

    ``anatomy`` is :func:`gateway.imap.anatomy.codec.encode` of its MIME structure with byte ranges
    (migration ``imap_0004``); the other columns are case-folded search and sort keys (RFC 5256, RFC 5957).
    The decoded header and body text live beside it in ``message_anatomy_text`` (an FTS5 trigram table on
    SQLite, a pg_trgm-indexed table on PostgreSQL), which the migration creates per dialect.
    """

    __tablename__ = "message_anatomy"
    message_id: Mapped[int] = mapped_column(Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    anatomy: Mapped[bytes] = mapped_column(LargeBinary)
    #: Why the structure was replaced by one flat part (a bound of the analysis was hit); None when it was not.
    refused: Mapped[str | None] = mapped_column(String(200), nullable=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str] = mapped_column(Text, default="")
    to_addr: Mapped[str] = mapped_column(Text, default="")
    cc_addr: Mapped[str] = mapped_column(Text, default="")
    bcc_addr: Mapped[str] = mapped_column(Text, default="")
    sort_subject: Mapped[str] = mapped_column(Text, default="")
    sort_from: Mapped[str] = mapped_column(Text, default="")
    sort_to: Mapped[str] = mapped_column(Text, default="")
    sort_cc: Mapped[str] = mapped_column(Text, default="")
    display_from: Mapped[str] = mapped_column(Text, default="")
    display_to: Mapped[str] = mapped_column(Text, default="")
    #: The Date header in UTC; None when absent or unreadable (SORT DATE then uses the internal date).
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    thread_message_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Message-ids of References (or the first of In-Reply-To), space separated (RFC 5256 4).
    thread_references: Mapped[str] = mapped_column(Text, default="")


class MessageTextPending(Base):
    """A message whose body text is not in ``message_anatomy_text`` yet (migration ``imap_0005``).

    Long bodies are indexed after the commit that stored them (:mod:`gateway.imap.anatomy.indexer`); SEARCH
    reads these messages' bodies from their bytes until the row goes.
    """

    __tablename__ = "message_text_pending"
    message_id: Mapped[int] = mapped_column(Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
