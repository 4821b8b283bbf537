"""What a routing decision reads about one recipient, loaded in one query: the facts, never the decision.

:func:`load` answers, in a single statement, the three questions R1–R5 and R8 ask of a recipient: the
mailbox at that address (id, kind, active), the identity of a matricule (status, replacement), and the
conversation a patient's message would belong to (state, replies blocked). Routing decides from these plain
values (:mod:`gateway.routing.policy`); nothing is cached, so a mailbox disabled, an identity qualified or a
conversation closed by another process is seen at the next RCPT. On a SQLite file the reads before a unit of work
(:class:`FactsReader`) take the one-hop reader (:class:`~gateway.store.sqlite_reads.SqliteReader`): tried on the
event loop's thread within its budget, with no thread hop nor SQLAlchemy's execution path at every RCPT.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, false, func, literal, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from gateway.store.db import READ_ONLY
from gateway.store.models import Conversation, Delivery, Folder, Identity, Mailbox, Message
from gateway.store.sqlite_reads import SqliteReader, engine_file


@dataclass(frozen=True)
class MailboxFacts:
    id: int
    kind: str
    active: bool


@dataclass(frozen=True)
class IdentityFacts:
    status: str
    #: The principal matricule when this one is obsolete (R8).
    replaced_by: str | None


@dataclass(frozen=True)
class ConversationFacts:
    id: int
    state: str
    replies_blocked: bool


@dataclass(frozen=True)
class RecipientFacts:
    mailbox: MailboxFacts | None = None
    identity: IdentityFacts | None = None
    conversation: ConversationFacts | None = None


@dataclass(frozen=True)
class Wanted:
    """Which facts a decision needs: each field left None is not looked up."""

    #: The recipient's mailbox address (ours).
    address: str | None = None
    #: The matricule whose identity is read (a patient recipient, R4).
    identity: str | None = None
    #: The patient's matricule of the conversation to read (a patient sender, R1–R3) ...
    conversation: str | None = None
    #: ... with a professional at another operator (by address); else with the recipient's mailbox.
    remote_professional: str | None = None


@functools.cache
def _facts_statement(address: bool, identity: bool, conversation: str | None) -> Any:
    """The facts query for one shape of :class:`Wanted`, built and compiled once (values are bound).

    ``conversation`` is None (not wanted), ``"remote"`` (with a remote professional) or ``"local"``.
    """
    anchor = select(literal(1).label("one")).subquery()
    mailbox_on: ColumnElement[bool] = Mailbox.address == bindparam("address") if address else false()
    identity_on: ColumnElement[bool] = Identity.matricule == bindparam("identity") if identity else false()
    conversation_on: ColumnElement[bool]
    if conversation is None:
        conversation_on = false()
    elif conversation == "remote":
        conversation_on = and_(Conversation.remote_professional == bindparam("remote"),
                               Conversation.matricule == bindparam("conversation"))
    else:
        conversation_on = and_(Conversation.professional_id == Mailbox.id,
                               Conversation.matricule == bindparam("conversation"))
    return (select(Mailbox.id, Mailbox.kind, Mailbox.active, Identity.status, Identity.replaced_by,
                   Conversation.id.label("conversation_id"), Conversation.state, Conversation.replies_blocked)
            .select_from(anchor)
            .outerjoin(Mailbox, mailbox_on)
            .outerjoin(Identity, identity_on)
            .outerjoin(Conversation, conversation_on))


#: The facts query's shape: an address, an identity, and which conversation (None, "remote" or "local").
Shape = tuple[bool, bool, str | None]
_NAMED_SQLITE = sqlite.dialect(paramstyle="named")


@functools.cache
def _facts_sql(shape: Shape) -> tuple[str, dict[str, Any]]:
    """The facts query of ``shape`` as SQLite text with named parameters, and the values it binds itself."""
    compiled = _facts_statement(*shape).compile(dialect=_NAMED_SQLITE)
    return str(compiled), dict(compiled.params)


class Facts:
    """What :meth:`FactsReader.connection` hands out: its autocommit connection (``execute``), and on a SQLite
    file the one-hop reader :func:`load` reads through instead."""

    def __init__(self, connection: AsyncConnection, sqlite_reader: SqliteReader | None) -> None:
        self.connection = connection
        self.sqlite = sqlite_reader

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await self.connection.execute(statement, parameters)


#: What the facts are read through: a session (inside a transaction), the held autocommit connection, or the
#: reads before a unit of work (:class:`Facts`).
Reader = AsyncSession | AsyncConnection | Facts


def _recipient_facts(row: Sequence[Any]) -> RecipientFacts:
    """The facts of one row of the facts query (SQLite's 0/1 read as booleans)."""
    mailbox_id, kind, active, status, replaced_by, conversation_id, state, replies_blocked = row
    return RecipientFacts(
        MailboxFacts(mailbox_id, kind, bool(active)) if mailbox_id is not None else None,
        IdentityFacts(status, replaced_by) if status is not None else None,
        ConversationFacts(conversation_id, state, bool(replies_blocked)) if conversation_id is not None else None)


def _one_row(sql: str, params: dict[str, Any], connection: sqlite3.Connection) -> Sequence[Any]:
    row: Sequence[Any] = connection.execute(sql, params).fetchone()
    return row


async def load(session: Reader, wanted: Wanted) -> RecipientFacts:
    """The facts ``wanted`` names, in one statement (outer joins from a one-row anchor).

    The statement of each shape is built once and run as Core on the session's connection: at every RCPT,
    building the query and the ORM's execution path cost more than SQLite's answer. Read through :class:`Facts`
    on a SQLite file, it is that statement's text on the one-hop reader, a snapshot of its own as the
    autocommit connection's.
    """
    conversation = None if wanted.conversation is None else (
        "remote" if wanted.remote_professional is not None else "local")
    shape: Shape = (wanted.address is not None, wanted.identity is not None, conversation)
    params: dict[str, str] = {}
    if wanted.address is not None:
        params["address"] = wanted.address.lower()
    if wanted.identity is not None:
        params["identity"] = wanted.identity
    if wanted.conversation is not None:
        params["conversation"] = wanted.conversation
        if wanted.remote_professional is not None:
            params["remote"] = wanted.remote_professional.lower()
    if isinstance(session, Facts):
        if session.sqlite is not None:
            sql, bound = _facts_sql(shape)
            return _recipient_facts(await session.sqlite.run(functools.partial(_one_row, sql, {**bound, **params})))
        connection = session.connection
    elif isinstance(session, AsyncConnection):
        connection = session
    else:
        connection = await session.connection()
    return _recipient_facts(tuple((await connection.execute(_facts_statement(*shape), params)).one()))


async def stored_bytes(session: Reader, mailbox_id: int) -> int:
    """The sizes of every message filed in the mailbox's folders (a copy in two folders counts twice), for the
    ``limits.mailbox_quota`` check at RCPT (RFC 9208 5.1, the same sum GETQUOTA reports)."""
    query = (select(func.coalesce(func.sum(Message.size), 0))
             .select_from(Folder).join(Delivery, Delivery.folder_id == Folder.id)
             .join(Message, Message.id == Delivery.message_id).where(Folder.mailbox_id == mailbox_id))
    return int((await session.execute(query)).scalar_one())


class FactsReader:
    """One autocommit connection per process for the reads made before a unit of work (RCPT's facts).

    Autocommit: every statement is its own snapshot, so nothing read is older than the last commit (no
    transaction is left open to pin an old one). Users take turns (an asyncio lock: a statement is a few
    hundred microseconds). A connection that failed, or whose user was cancelled mid-statement, is dropped
    and the next user opens a fresh one, so a restarted database server is reconnected to.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT", **{READ_ONLY: True})
        self._connection: AsyncConnection | None = None
        self._turn = asyncio.Lock()
        path = engine_file(engine)
        #: Held for the process's life: the reader's threads and connections are opened once.
        self._sqlite = SqliteReader.shared(path) if path is not None else None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Facts]:
        async with self._turn:
            if self._connection is None:
                self._connection = await self._engine.connect()
            try:
                yield Facts(self._connection, self._sqlite)
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                await connection.invalidate()


async def conversation(session: AsyncSession, matricule: str, *, professional_id: int | None = None,
                       remote_professional: str | None = None) -> ConversationFacts | None:
    """The conversation state re-read inside the delivery transaction (R2–R3 may have changed since RCPT)."""
    query = select(Conversation.id, Conversation.state, Conversation.replies_blocked).where(
        Conversation.matricule == matricule)
    if remote_professional is not None:
        query = query.where(Conversation.remote_professional == remote_professional.lower())
    else:
        query = query.where(Conversation.professional_id == professional_id)
    row = (await session.execute(query)).one_or_none()
    return ConversationFacts(row.id, row.state, row.replies_blocked) if row is not None else None
