"""FETCH's rows: many messages' metadata in one Core query, as plain tuples (no ORM objects).

``FETCH 1:* (FLAGS)`` over a large folder is one range scan of the (folder_id, uid) index; scattered UIDs are
read as OR-ed UID ranges, :data:`~gateway.imap.view.store.CHUNK` ranges a query. Only the columns a command needs
are read: the message size joins ``messages`` by primary key, the anatomy joins ``message_anatomy``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.view.store import CHUNK, chunks
from gateway.store.models import Delivery, Message

#: Column names :func:`fetch_rows` understands (the UID is always read).
FLAGS = "flags"
MODSEQ = "modseq"
INTERNALDATE = "internal_date"
SIZE = "size"
MESSAGE_ID = "message_id"
ANATOMY = "anatomy"
COLUMNS = frozenset({FLAGS, MODSEQ, INTERNALDATE, SIZE, MESSAGE_ID, ANATOMY})


class Row(NamedTuple):
    """One message of a folder as FETCH needs it; columns not asked for are None."""

    uid: int
    flags: tuple[str, ...] | None = None
    modseq: int | None = None
    internal_date: datetime | None = None
    size: int | None = None
    message_id: int | None = None
    anatomy: bytes | None = None


@lru_cache(maxsize=8192)
def parse_flags(text: str) -> tuple[str, ...]:
    """The stored flags column ("\\\\Seen $Label1") as a sorted tuple; cached, a folder has few distinct values."""
    return tuple(sorted(set(text.split())))


def utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back: the store writes UTC only."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def uid_condition(spans: Sequence[tuple[int, int]]) -> ColumnElement[bool]:
    """``uid`` within any of the inclusive ``spans`` (ranges of the (folder_id, uid) index)."""
    parts = [Delivery.uid == lo if lo == hi else Delivery.uid.between(lo, hi) for lo, hi in spans]
    return parts[0] if len(parts) == 1 else or_(*parts)


def spans_of(uids: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted UIDs as inclusive runs of consecutive numbers (what the client's sequence set usually is)."""
    spans: list[tuple[int, int]] = []
    for uid in uids:
        if spans and uid == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], uid)
        else:
            spans.append((uid, uid))
    return spans


def _anatomy_column() -> Any:
    from gateway.imap.view import anatomy_link

    return anatomy_link.anatomy_column()


def rows_query(folder_id: int, columns: Collection[str]) -> tuple[Select[Any], list[str]]:
    """The SELECT for ``columns`` of a folder's deliveries (the caller adds the UID condition)."""
    unknown = set(columns) - COLUMNS
    if unknown:
        raise ValueError(f"unknown row columns: {sorted(unknown)}")
    names = [name for name in (FLAGS, MODSEQ, INTERNALDATE, SIZE, MESSAGE_ID, ANATOMY) if name in columns]
    selected: list[Any] = [Delivery.uid]
    source: Any = Delivery.__table__
    for name in names:
        if name == SIZE:
            selected.append(Message.size)
        elif name == ANATOMY:
            selected.append(_anatomy_column())
        else:
            selected.append(getattr(Delivery, name))
    if SIZE in names:
        source = source.join(Message.__table__, Message.id == Delivery.message_id)
    query = select(*selected).select_from(source)
    if ANATOMY in names:
        from gateway.imap.view import anatomy_link

        query = anatomy_link.join_anatomy(query)
    return query.where(Delivery.folder_id == folder_id), names


_NONE6 = (None, None, None, None, None, None)


def build_rows(raw: Iterable[Sequence[Any]], names: list[str]) -> list[Row]:
    """Rows from result tuples ``(uid, *names)``; flags parsed once per distinct value, dates made UTC-aware."""
    new = tuple.__new__
    cache: dict[str, tuple[str, ...]] = {}
    if names == [FLAGS]:  # FETCH FLAGS: the common case, kept lean (tens of thousands of rows per command)
        out = []
        for uid, text in raw:
            flags = cache.get(text)
            if flags is None:
                flags = cache[text] = parse_flags(text)
            out.append(new(Row, (uid, flags, *_NONE6)))
        return out
    positions = [Row._fields.index(name) for name in names]
    rows: list[Row] = []
    for values in raw:
        item: list[Any] = [values[0], None, None, None, None, None, None]
        for position, value in zip(positions, values[1:], strict=True):
            item[position] = value
        if item[1] is not None:
            text = item[1]
            flags = cache.get(text)
            if flags is None:
                flags = cache[text] = parse_flags(text)
            item[1] = flags
        if item[3] is not None:
            item[3] = utc(_as_datetime(item[3]))
        if item[6] is not None:
            item[6] = bytes(item[6])
        rows.append(new(Row, item))
    return rows


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


async def _execute(session: AsyncSession, query: Select[Any]) -> Sequence[Sequence[Any]]:
    """Run ``query`` on the driver's own connection, inside the session's transaction, for plain tuples.

    The values read here need no SQLAlchemy type processing (integers, text, bytes; SQLite's date text is parsed
    by :func:`build_rows`); skipping result rows halves the cost of a 50,000-row FETCH.
    """
    connection = await session.connection()
    compiled = query.compile(dialect=connection.dialect)
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if connection.dialect.name == "sqlite":
        return list(await driver.execute_fetchall(str(compiled), params))
    return list(await driver.fetch(str(compiled), *params))


async def fetch_rows(session: AsyncSession, folder_id: int, spans: Sequence[tuple[int, int]],
                     columns: Collection[str] = (FLAGS,), *, changedsince: int | None = None) -> list[Row]:
    """The rows of the folder's messages within the inclusive UID ``spans`` (sorted), in UID order.

    The selected view gives spans of the UIDs the client named (a UID between two the view knows is either known
    or expunged: UIDs are allocated in commit order). ``changedsince`` keeps the rows whose MODSEQ is above it
    (RFC 7162 3.1.4 ``CHANGEDSINCE``). Messages another session expunged meanwhile are simply absent.
    """
    if not spans:
        return []
    query, names = rows_query(folder_id, columns)
    if changedsince is not None:
        query = query.where(Delivery.modseq > changedsince)
    out: list[Row] = []
    for part in chunks(spans, CHUNK):
        raw = await _execute(session, query.where(uid_condition(part)).order_by(Delivery.uid))
        out.extend(build_rows(raw, names))
    return out
