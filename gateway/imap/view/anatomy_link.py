"""Where the view meets the anatomy package: the ``message_anatomy`` columns SEARCH, SORT, THREAD and FETCH read,
and the trigram-indexed ``message_anatomy_text`` table behind SEARCH TEXT / BODY / HEADER.

Kept in one module so the view names the anatomy's tables in one place only.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, column, false, func, literal, or_, select, table, text
from sqlalchemy.dialects.postgresql import ARRAY

from gateway.store.anatomy import MessageAnatomy
from gateway.store.models import Delivery

anatomy_table = MessageAnatomy.__table__
#: ``message_anatomy_text`` (FTS5 on SQLite, keyed by rowid; a plain table with pg_trgm indexes on PostgreSQL).
_text_sqlite = table("message_anatomy_text", column("rowid"), column("header"), column("body"))
_text_postgres = table("message_anatomy_text", column("message_id"), column("header"), column("body"))
#: Escape character of the LIKE patterns built here (a backslash is then literal on both databases).
ESCAPE = "!"


def anatomy_column() -> Any:
    return MessageAnatomy.anatomy


def join_anatomy(query: Select[Any]) -> Select[Any]:
    """``query`` with each delivery's anatomy row (NULLs for a message not analysed yet)."""
    return query.outerjoin(anatomy_table, MessageAnatomy.message_id == Delivery.message_id)


def like_pattern(needle: str) -> str:
    """``%needle%`` with LIKE's own characters escaped."""
    escaped = needle.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


def text_match(dialect: str, fields: Collection[str], needle: str) -> ColumnElement[bool]:
    """Deliveries whose message's decoded ``header`` and/or ``body`` text holds ``needle`` (already case-folded):
    a subquery of the trigram index, so the whole SEARCH stays one statement (RFC 9051 6.4.4 substring)."""
    pattern = like_pattern(needle)
    source = _text_sqlite if dialect == "sqlite" else _text_postgres
    key = source.c.rowid if dialect == "sqlite" else source.c.message_id
    parts = [source.c[name].like(pattern, escape=ESCAPE) for name in fields]
    return Delivery.message_id.in_(select(key).where(or_(*parts)))


def header_text_query(dialect: str, folder_id: int, pattern: str) -> Select[Any]:
    """``(message_id, header text)`` of the folder's messages whose header text is LIKE ``pattern``."""
    source = _text_sqlite if dialect == "sqlite" else _text_postgres
    key = source.c.rowid if dialect == "sqlite" else source.c.message_id
    return (select(Delivery.message_id, source.c.header).join(source, key == Delivery.message_id)
            .where(Delivery.folder_id == folder_id, source.c.header.like(pattern, escape=ESCAPE)))


def in_ids(dialect: str, ids: Collection[int]) -> ColumnElement[bool]:
    """``message_id`` among ``ids`` with ONE bound value whatever their number (JSON on SQLite, an array on
    PostgreSQL), so a large set never meets the drivers' parameter limits."""
    if not ids:
        return false()
    if dialect == "sqlite":
        values = select(text("value")).select_from(func.json_each(literal(json.dumps(sorted(ids)))))
        return Delivery.message_id.in_(values)
    return Delivery.message_id == func.any(literal(sorted(ids), ARRAY(BigInteger)))
