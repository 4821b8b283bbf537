"""The anatomy of each message, written in the transaction that stores it (FETCH, SEARCH, SORT and THREAD read it).

:func:`index_messages` goes beside every insert into ``messages`` (one multi-row insert per table): the bounded
analysis (:mod:`gateway.anatomy`), the case-folded search and sort keys, and the decoded header and body text
in ``message_anatomy_text`` (an FTS5 trigram table on SQLite, a pg_trgm-indexed table on PostgreSQL, created
per dialect by migration imap_0004). A body whose text parts exceed :data:`INLINE_BODY` is indexed after the
commit (``MessageTextPending``, worked by the IMAP text indexer): a trigram index costs about 0.2 s of the
single SQLite writer per MiB of text, which would hold every other delivery back. A body with more text than
:data:`INDEXED_BODY_MAX` is never indexed (``oversize``): SEARCH reads it from the message, as a server without a
full-text index reads every message, so a stream of long text bodies costs the writer nothing after its commit.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    false,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import TextClause

from gateway.anatomy import codec
from gateway.anatomy.analyse import Anatomy, analyse
from gateway.anatomy.text import body_text, search_fields, text_size
from gateway.store import events
from gateway.store.changes import TEXT_INDEX, mark_changed
from gateway.store.models import Base, Id, Message

#: The table of decoded header and body text (created per dialect by migration imap_0004).
TEXT_TABLE = "message_anatomy_text"
#: Most bytes of text parts indexed in the delivering transaction (a few mail bodies' worth, ~3 ms of index).
INLINE_BODY = 16 * 1024
#: Most bytes of text parts a message may have to enter the trigram index at all (~50 ms of the writer, after
#: the commit); SEARCH reads a longer body from the message. Long text bodies are rare in real mail (large
#: messages carry attachments, which are not text) but a sender of many would otherwise keep the single SQLite
#: writer indexing 0.2 s per MiB behind every delivery.
INDEXED_BODY_MAX = 256 * 1024


class MessageAnatomy(Base):
    """What FETCH, SEARCH, SORT and THREAD need of a stored message, computed once when it is stored.

    ``anatomy`` is :func:`gateway.anatomy.codec.encode` of its MIME structure with byte ranges
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

    Long bodies are indexed after the commit that stored them (by the IMAP text indexer); SEARCH
    reads these messages' bodies from their bytes until the row goes, and for good when it is ``oversize``.
    """

    __tablename__ = "message_text_pending"
    message_id: Mapped[int] = mapped_column(Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    #: More text than :data:`INDEXED_BODY_MAX`: the indexer leaves it, SEARCH always reads it (imap_0006).
    oversize: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


@dataclass(frozen=True, slots=True)
class Indexed:
    """The rows to insert for a batch of messages, and which of them were stored flat (limit reached)."""

    anatomy_rows: list[dict[str, Any]]
    text_rows: list[dict[str, Any]]
    anatomies: dict[int, Anatomy]
    refused: list[tuple[int, str]]
    #: Messages whose text row has the header only: their body is indexed later.
    pending: list[int]
    #: Those of ``pending`` whose body is never indexed (:data:`INDEXED_BODY_MAX`).
    oversize: frozenset[int] = frozenset()

    def pending_rows(self, ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The ``message_text_pending`` rows, with ``ids[n]`` for the message numbered ``n`` (when given)."""
        return [{"message_id": n if ids is None else ids[n], "oversize": n in self.oversize} for n in self.pending]

    @property
    def to_index(self) -> bool:
        """Whether the text indexer has work from these messages (a pending body that is not oversize)."""
        return len(self.pending) > len(self.oversize)


@dataclass(frozen=True, slots=True)
class Prepared:
    """One message's analysis and index rows, computed before the transaction that stores it (pure CPU): the
    writer then only inserts them, so the analysis is not done while the single SQLite write lock is held.
    Used only for the very ``raw`` it was computed from."""

    raw: bytes
    anatomy: Anatomy
    anatomy_row: dict[str, Any]
    text_row: dict[str, Any]
    deferred: bool
    #: Deferred and never to be indexed (:data:`INDEXED_BODY_MAX`).
    oversize: bool = False


def prepare(raw: bytes, defer_over: int | None = INLINE_BODY) -> Prepared:
    """Analyse ``raw`` (bounded, :mod:`gateway.anatomy`) and build its rows, without its message id."""
    data = bytes(raw)
    anatomy = analyse(data)
    size = 0 if anatomy.refused else text_size(anatomy)
    deferred = defer_over is not None and size > defer_over
    found = search_fields(anatomy, data, with_body=not deferred)
    anatomy_row = dict(
        anatomy=codec.encode(anatomy), refused=anatomy.refused,
        subject=found.subject, from_addr=found.from_, to_addr=found.to, cc_addr=found.cc, bcc_addr=found.bcc,
        sort_subject=found.sort_subject, sort_from=found.sort_from, sort_to=found.sort_to,
        sort_cc=found.sort_cc, display_from=found.display_from, display_to=found.display_to,
        sent_at=found.sent_at, thread_message_id=found.message_id, thread_references=found.references)
    return Prepared(raw, anatomy, anatomy_row, dict(header=found.header, body=found.body), deferred,
                    deferred and size > INDEXED_BODY_MAX)


def index_rows(rows: Iterable[tuple[int, bytes]], defer_over: int | None = None,
               prepared: Sequence[Prepared | None] = ()) -> Indexed:
    """Analyse messages and build their ``message_anatomy`` and text rows (pure CPU, bounded per message).

    With ``defer_over``, a message with more bytes of text parts than that gets a text row without its body
    and is listed in ``pending``. ``prepared[i]``, when given for the same bytes (and the same ``defer_over``),
    is the ``i``-th message's analysis done beforehand.
    """
    anatomy_rows: list[dict[str, Any]] = []
    text_rows: list[dict[str, Any]] = []
    anatomies: dict[int, Anatomy] = {}
    refused: list[tuple[int, str]] = []
    pending: list[int] = []
    oversize: set[int] = set()
    for index, (message_id, raw) in enumerate(rows):
        done = prepared[index] if index < len(prepared) else None
        if done is None or done.raw is not raw:
            done = prepare(raw, defer_over)
        anatomies[message_id] = done.anatomy
        if done.deferred:
            pending.append(message_id)
            if done.oversize:
                oversize.add(message_id)
        if done.anatomy.refused:
            refused.append((message_id, done.anatomy.refused))
        anatomy_rows.append({"message_id": message_id, **done.anatomy_row})
        text_rows.append({"message_id": message_id, **done.text_row})
    return Indexed(anatomy_rows, text_rows, anatomies, refused, pending, frozenset(oversize))


def text_key(dialect: str) -> str:
    """The text table's message id column: FTS5 tables have their ``rowid``, PostgreSQL's has ``message_id``."""
    return "rowid" if dialect == "sqlite" else "message_id"


def text_insert_sql(dialect: str) -> str:
    """The insert of a text row (``:message_id, :header, :body``) for ``dialect``."""
    return f"INSERT INTO {TEXT_TABLE} ({text_key(dialect)}, header, body) VALUES (:message_id, :header, :body)"


_INSERT_ANATOMY = insert(cast(Table, MessageAnatomy.__table__))
_INSERT_PENDING = insert(cast(Table, MessageTextPending.__table__))


@functools.cache
def _text_insert(dialect: str) -> TextClause:
    return text(text_insert_sql(dialect))


async def index_messages(session: AsyncSession, rows: Sequence[tuple[int, bytes]],
                         prepared: Sequence[Prepared | None] = ()) -> dict[int, Anatomy]:
    """Analyse and index newly inserted messages, in the caller's transaction; returns their anatomies.

    Call it wherever a ``messages`` row is inserted. A message beyond the analysis limits is stored flat and an
    ``imap.anatomy.flat`` event records which limit (R18), without content. ``prepared``: analyses made before
    the transaction with :func:`prepare` (see :func:`index_rows`).
    """
    if not rows:
        return {}
    indexed = index_rows(rows, defer_over=INLINE_BODY, prepared=prepared)
    connection = await session.connection()  # Core statements, compiled once: the ORM's bulk path costs more
    await connection.execute(_INSERT_ANATOMY, indexed.anatomy_rows)
    await connection.execute(_text_insert(connection.dialect.name), indexed.text_rows)
    if indexed.pending:
        await connection.execute(_INSERT_PENDING, indexed.pending_rows())
    if indexed.to_index:
        mark_changed(session, TEXT_INDEX)  # the indexer starts at the commit
    for message_id, reason in indexed.refused:
        await events.record(session, "imap.anatomy.flat", "flat", message_id=message_id, limit=reason)
    return indexed.anatomies


#: What :func:`index_pending_body` did with a message.
INDEXED, OVERSIZE = "indexed", "oversize"


async def index_pending_body(session: AsyncSession, message_id: int) -> str | None:
    """Put a pending message's body text into the index, in the caller's transaction, and drop its pending row
    (:data:`INDEXED`); or, when it has more text than :data:`INDEXED_BODY_MAX` (stored before that bound was
    known at delivery), mark it ``oversize`` and leave it to SEARCH (:data:`OVERSIZE`). None when it was not
    pending any more (indexed meanwhile, or the message deleted)."""
    raw = (await session.execute(select(Message.raw).where(Message.id == message_id))).scalar_one_or_none()
    data = b"" if raw is None else bytes(raw)
    anatomy = analyse(data)
    if raw is not None and not anatomy.refused and text_size(anatomy) > INDEXED_BODY_MAX:
        marked = (await session.execute(update(MessageTextPending).where(MessageTextPending.message_id == message_id)
                                        .values(oversize=True))).rowcount  # type: ignore[attr-defined]
        return OVERSIZE if marked else None
    taken = (await session.execute(delete(MessageTextPending).where(MessageTextPending.message_id == message_id))
             ).rowcount  # type: ignore[attr-defined]
    if not taken or raw is None:
        return None
    await session.execute(
        text(f"UPDATE {TEXT_TABLE} SET body = :body WHERE {text_key(session.get_bind().dialect.name)} = :id"),
        {"body": body_text(anatomy, data), "id": message_id})
    return INDEXED
