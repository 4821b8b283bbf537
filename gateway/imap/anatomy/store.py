"""The stored anatomy read by FETCH and SEARCH (written with each message by :mod:`gateway.store.anatomy`).

:func:`load_anatomies` (one query for many messages), :func:`read_range` (only the bytes a section needs, cut
by the database), :func:`search_text` (substring search through the trigram index: FTS5 ``trigram`` on
SQLite, ``pg_trgm`` GIN on PostgreSQL, RFC 9051 6.4.4 semantics: case-insensitive substring). A long body
not indexed yet (``MessageTextPending``) is read from the message itself, so answers never wait for the indexer.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.anatomy import codec
from gateway.anatomy.analyse import Anatomy, analyse
from gateway.anatomy.text import body_text, fold
from gateway.store.anatomy import TEXT_TABLE, MessageAnatomy, MessageTextPending, text_key
from gateway.store.models import Delivery, Message

#: Pending messages whose text one step of a SEARCH reads at once.
_PENDING_BATCH = 50
#: Ids per IN list (below SQLite's and asyncpg's bound-parameter limits).
_CHUNK = 5_000
#: Search fields over ``message_anatomy`` columns; TEXT, BODY and HEADER use the text table.
_COLUMNS = {"SUBJECT": MessageAnatomy.subject, "FROM": MessageAnatomy.from_addr, "TO": MessageAnatomy.to_addr,
            "CC": MessageAnatomy.cc_addr, "BCC": MessageAnatomy.bcc_addr}
#: Search fields this module answers.
FIELDS = frozenset({"TEXT", "BODY", "HEADER", *_COLUMNS})
#: Shortest needle the trigram index can answer; shorter ones scan the folder's text.
_TRIGRAM = 3


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i:i + _CHUNK]


async def load_anatomies(session: AsyncSession, message_ids: Iterable[int]) -> dict[int, Anatomy]:
    """The anatomies of these messages (one query per 5,000 ids).

    A message without a stored anatomy (written by something that did not index it) is analysed from its
    bytes here, in memory, so FETCH still answers; a stored anatomy that cannot be decoded is treated alike.
    """
    ids = sorted(set(message_ids))
    result: dict[int, Anatomy] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(
            select(MessageAnatomy.message_id, MessageAnatomy.anatomy).where(MessageAnatomy.message_id.in_(chunk)))
        for message_id, data in rows:
            try:
                result[message_id] = codec.decode(data)
            except ValueError:
                continue
    missing = [i for i in ids if i not in result]
    for chunk in _chunks(missing):
        rows = await session.execute(select(Message.id, Message.raw).where(Message.id.in_(chunk)))
        for message_id, raw in rows:
            result[message_id] = analyse(bytes(raw))
    return result


async def read_range(session: AsyncSession, message_id: int, start: int, end: int) -> bytes:
    """Bytes ``start``..``end`` of a stored message, cut by the database (``substr`` on the BLOB / bytea)."""
    if end <= start:
        return b""
    query = select(func.substr(Message.raw, start + 1, end - start)).where(Message.id == message_id)
    value = (await session.execute(query)).scalar_one_or_none()
    return b"" if value is None else bytes(value)


def _like(needle: str) -> str:
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def _text_candidates(session: AsyncSession, folder_id: int, needle: str, columns: tuple[str, ...]
                           ) -> set[int]:
    """Message ids of the folder whose text ``columns`` contain ``needle`` (already case-folded)."""
    params: dict[str, Any] = {"folder": folder_id}
    if _dialect(session) == "sqlite" and len(needle) >= _TRIGRAM:
        # Driven by the index, each match checked against the folder: a join lets SQLite walk the folder
        # and run the full-text query per delivery, hundreds of times slower.
        scope = "" if columns == ("header", "body") else "{" + " ".join(columns) + "} : "
        params["query"] = scope + '"' + needle.replace('"', '""') + '"'
        sql = (f"SELECT t.rowid FROM {TEXT_TABLE} t WHERE {TEXT_TABLE} MATCH :query AND EXISTS "
               "(SELECT 1 FROM deliveries d WHERE d.message_id = t.rowid AND d.folder_id = :folder)")
    elif _dialect(session) == "sqlite":
        params["needle"] = needle
        condition = " OR ".join(f"instr(t.{c}, :needle) > 0" for c in columns)
        sql = (f"SELECT DISTINCT d.message_id FROM deliveries d JOIN {TEXT_TABLE} t ON t.rowid = d.message_id "
               f"WHERE d.folder_id = :folder AND ({condition})")
    else:
        params["pattern"] = _like(needle)
        condition = " OR ".join(f"t.{c} LIKE :pattern" for c in columns)
        sql = (f"SELECT DISTINCT d.message_id FROM deliveries d JOIN {TEXT_TABLE} t ON t.message_id = d.message_id "
               f"WHERE d.folder_id = :folder AND ({condition})")
    rows = await session.execute(text(sql), params)
    return {row[0] for row in rows}


async def _header_matches(session: AsyncSession, ids: set[int], name: str, needle: str) -> set[int]:
    """Those of ``ids`` with a ``name`` field whose decoded value contains ``needle`` (RFC 9051 6.4.4 HEADER)."""
    prefix = fold(name).strip() + ":"
    id_column = text_key(_dialect(session))
    found: set[int] = set()
    ordered = sorted(ids)
    for chunk in _chunks(ordered):
        marks = ", ".join(f":i{n}" for n in range(len(chunk)))
        rows = await session.execute(
            text(f"SELECT {id_column}, header FROM {TEXT_TABLE} WHERE {id_column} IN ({marks})"),
            {f"i{n}": value for n, value in enumerate(chunk)})
        for message_id, header in rows:
            for line in (header or "").split("\n"):
                if line.startswith(prefix) and needle in line[len(prefix):]:
                    found.add(message_id)
                    break
    return found


async def search_text(session: AsyncSession, folder_id: int, needle: str, field: str,
                      header_name: str | None = None) -> set[int]:
    """Ids of the folder's messages where ``field`` contains ``needle``, case-insensitively (RFC 9051 6.4.4).

    ``field`` is TEXT (header or body), BODY, SUBJECT, FROM, TO, CC, BCC, or HEADER with ``header_name``
    (an empty needle then matches every message that has the field). Returns ``messages.id`` values.
    """
    field = field.upper()
    if field not in FIELDS:
        raise ValueError(f"unknown search field {field!r}")
    folded = fold(needle)
    if field in _COLUMNS:
        column = _COLUMNS[field]
        query = (select(Delivery.message_id).distinct()
                 .join(MessageAnatomy, MessageAnatomy.message_id == Delivery.message_id)
                 .where(Delivery.folder_id == folder_id))
        if folded:
            query = query.where(column.contains(folded, autoescape=True))
        return set((await session.execute(query)).scalars().all())
    if field == "HEADER":
        if not header_name:
            raise ValueError("SEARCH HEADER needs a field name")
        candidates = await _text_candidates(session, folder_id, folded, ("header",))
        return await _header_matches(session, candidates, header_name, folded)
    columns = ("body",) if field == "BODY" else ("header", "body")
    if not folded:
        query = select(Delivery.message_id).distinct().where(Delivery.folder_id == folder_id)
        return set((await session.execute(query)).scalars().all())
    found = await _text_candidates(session, folder_id, folded, columns)
    return found | (await pending_body_matches(session, folder_id, [folded]))[folded]


async def pending_in_folder(session: AsyncSession, folder_id: int) -> list[int]:
    """The folder's messages whose body text is not indexed yet."""
    query = (select(MessageTextPending.message_id).distinct()
             .join(Delivery, Delivery.message_id == MessageTextPending.message_id)
             .where(Delivery.folder_id == folder_id).order_by(MessageTextPending.message_id))
    return list((await session.execute(query)).scalars().all())


async def pending_body_matches(session: AsyncSession, folder_id: int, needles: Iterable[str]
                               ) -> dict[str, set[int]]:
    """For each case-folded needle, the folder's not yet indexed messages whose body text contains it.

    Their bodies are read from their bytes, a batch at a time, each once whatever the number of needles, so
    SEARCH is exact before the indexer has caught up.
    """
    wanted = [n for n in dict.fromkeys(needles) if n]
    found: dict[str, set[int]] = {n: set() for n in wanted}
    ids = await pending_in_folder(session, folder_id) if wanted else []
    for start in range(0, len(ids), _PENDING_BATCH):
        chunk = ids[start:start + _PENDING_BATCH]
        for message_id, raw in await session.execute(select(Message.id, Message.raw).where(Message.id.in_(chunk))):
            data = bytes(raw)
            body = body_text(analyse(data), data)
            for needle in wanted:
                if needle in body:
                    found[needle].add(message_id)
    return found
