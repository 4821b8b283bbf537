"""The store's tables: the one source of truth every listener and worker reads and writes.

Shaped for SMTP (messages and per-recipient deliveries), IMAP (folders with UIDVALIDITY, UIDNEXT and a
modification sequence; per-delivery UID, flags and MODSEQ), the patient-messaging rules (conversations,
R1–R5), identities (R7–R9) and the append-only event trail (R18).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import JSON

#: 64-bit ids on PostgreSQL, INTEGER PRIMARY KEY (rowid) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Mailbox(Base):
    """An account: a professional (PER), organisational (ORG), applicative (APP) or patient (PAT) mailbox."""

    __tablename__ = "mailboxes"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    kind: Mapped[str] = mapped_column(String(3))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Patient mailboxes: the INS matricule the address is built from.
    matricule: Mapped[str | None] = mapped_column(String(15), nullable=True, index=True)
    #: Software accounts bound to a client certificate (SHA-256 fingerprint, hex) for SASL EXTERNAL.
    certificate_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Login methods this mailbox accepts, comma-separated among psc, password, certificate; NULL = all
    #: (migration psc_0001; gateway/auth/methods.py).
    auth_methods: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)


class Folder(Base):
    """An IMAP mailbox (folder) of an account, with the counters IMAP needs to stay stable across restarts."""

    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("mailbox_id", "name"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(400))
    special_use: Mapped[str | None] = mapped_column(String(20), nullable=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uidnext: Mapped[int] = mapped_column(BigInteger, default=1)
    highestmodseq: Mapped[int] = mapped_column(BigInteger, default=1)
    #: Expunge records up to this MODSEQ were pruned (migration imap_0003): a session that last looked at the
    #: folder before it compares UID lists instead of reading expunges it can no longer find.
    expunged_floor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: Highest UID some IMAP session has already been told is \\Recent (migration imapview_0001): a message
    #: above it is recent for the first session that selects the folder after its arrival (RFC 3501 2.3.2).
    recent_uid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)


class Message(Base):
    """One accepted message: its exact bytes, stored once whatever the number of recipients."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: The authenticated submitter (or relaying operator's certificate domain later).
    sender_mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id"), nullable=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[list[str]] = mapped_column(JSON)
    message_id_header: Mapped[str | None] = mapped_column(String(998), nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    header_from: Mapped[str | None] = mapped_column(String(998), nullable=True)
    size: Mapped[int] = mapped_column(Integer)
    raw: Mapped[bytes] = mapped_column(LargeBinary)


class Delivery(Base):
    """A message in one folder: what IMAP shows as a message with its UID, flags and MODSEQ."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("folder_id", "uid"),
        Index("ix_deliveries_folder_modseq", "folder_id", "modseq"),
        Index("ix_deliveries_folder_seen_uid", "folder_id", "seen", "uid"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    uid: Mapped[int] = mapped_column(BigInteger)
    #: System flags and keywords, space separated, e.g. "\\Seen $Label1".
    flags: Mapped[str] = mapped_column(String(1000), default="")
    #: ``\\Seen`` is among ``flags`` (migration imap_0002): the first unseen message and the unseen count come
    #: from the (folder_id, seen, uid) index instead of a scan of the folder. Written with ``flags``, always.
    seen: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    modseq: Mapped[int] = mapped_column(BigInteger)
    internal_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Conversation(Base):
    """A professional mailbox's conversation with one patient (R5): who may write, and why."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("professional_id", "matricule"),
                      UniqueConstraint("remote_professional", "matricule"))
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: Our professional's mailbox; None when the professional is at another operator (relayed mail).
    professional_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id"), nullable=True)
    #: The remote professional's address when the conversation was opened by relayed mail (migration relay_0001).
    remote_professional: Mapped[str | None] = mapped_column(String(320), nullable=True)
    matricule: Mapped[str] = mapped_column(String(15))
    state: Mapped[str] = mapped_column(String(10))  # "open" | "closed"
    replies_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Identity(Base):
    """A patient identity of the structure's repository: matricule, OID, five traits and status (R7)."""

    __tablename__ = "identities"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    matricule: Mapped[str] = mapped_column(String(15), unique=True)
    oid: Mapped[str] = mapped_column(String(64))
    birth_name: Mapped[str] = mapped_column(String(200))
    first_names: Mapped[str] = mapped_column(String(400))
    first_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[str] = mapped_column(String(10))  # ISO date, YYYY-MM-DD
    sex: Mapped[str] = mapped_column(String(1))
    birth_place: Mapped[str] = mapped_column(String(5))  # INSEE code
    status: Mapped[str] = mapped_column(String(12))
    #: When the national service declared this matricule obsolete: the principal one that replaces it (R8).
    replaced_by: Mapped[str | None] = mapped_column(String(15), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdentityEvidence(Base):
    """One step of an identity's qualification (R7): an INSi result or an identity document check."""

    __tablename__ = "identity_evidence"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # "insi" | "document"
    detail: Mapped[str] = mapped_column(String(100))  # INSi result, or the document kind
    actor: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Event(Base):
    """The append-only trail (R18): every rule decision and state change with time, actor and subject ids."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(60), index=True)
    rule: Mapped[str | None] = mapped_column(String(8), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(320), nullable=True)
    mailbox_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    message_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    conversation_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    identity_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class OutboundRecipient(Base):
    """One recipient of a message to another operator: the durable outbound queue (claimed with SKIP LOCKED).

    ``next_attempt_at`` doubles as the claim lease: a worker that claims a row moves it forward by the lease,
    so a row whose worker died becomes due again by itself and nothing queued is ever lost.
    """

    __tablename__ = "outbound_queue"
    __table_args__ = (Index("ix_outbound_queue_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    #: Our mailbox that sent it: the one that receives the DSN (RFC 3464).
    sender_mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id"), nullable=True)
    mail_from: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(255))
    #: RFC 3461 parameters: NOTIFY (comma list, None = failures only), ORCPT, RET and ENVID.
    notify: Mapped[str | None] = mapped_column(String(40), nullable=True)
    orcpt: Mapped[str | None] = mapped_column(String(500), nullable=True)
    ret: Mapped[str | None] = mapped_column(String(4), nullable=True)
    envid: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str] = mapped_column(String(12))  # "queued" | "sent" | "failed"
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    remote_mta: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RelayReceipt(Base):
    """A message accepted from another operator, by its key (operator, Message-ID, envelope sender and
    recipients): the same message relayed again within ``relay.dedupe_window`` (its sender crashed between our
    "250" and recording it) is answered 250 and not stored twice."""

    __tablename__ = "relay_receipts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: SHA-256 (hex) of the operator's certificate name, the Message-ID and the envelope.
    key: Mapped[str] = mapped_column(String(64), unique=True)
    peer: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
