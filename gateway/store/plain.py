"""A table's rows as a plain ``sqlite3`` insert: the same dicts the SQLAlchemy path inserts, with the same values.

The rows a write makes are described once, as dicts keyed by column name (:mod:`gateway.store.bulk`,
:mod:`gateway.store.effects`). PostgreSQL gets them through SQLAlchemy Core; on SQLite the acceptance
transaction runs them as positional ``sqlite3`` statements in one call on the connection's thread, so each is
converted here exactly as SQLAlchemy's SQLite types would bind it: ``DateTime`` as its fields' text
(:func:`gateway.store.sqlite_writes.sql_time`), ``JSON`` with :func:`json.dumps`, ``Boolean`` as 0/1, and a
column absent from the rows gets its Python-side default (a server default is left to the database, as Core
leaves it). tests/store/test_plain_rows.py checks both paths store the same rows for every table used.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, LargeBinary, Table, TypeDecorator
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.sqltypes import JSON

from gateway.store.sqlite_writes import sql_time

Convert = Callable[[Any], Any]


def _time(value: datetime | None) -> str | None:
    return None if value is None else sql_time(value)


def _json(value: Any) -> str:
    return json.dumps(value)  # SQLAlchemy's default serializer, as the engine is created without another


def _boolean(value: bool | None) -> int | None:
    return None if value is None else int(value)


_SQLITE = sqlite.dialect()


def _converter(column: Any) -> Convert | None:
    """How SQLAlchemy's SQLite dialect binds a value of this column's type (None: as it is); a type converted
    otherwise (a ``TypeDecorator``, a type with its own bind processing) raises ValueError: its rows go through
    SQLAlchemy."""
    column_type = column.type
    if isinstance(column_type, TypeDecorator):
        raise ValueError(f"{column.table.name}.{column.key}: a decorated type is bound by SQLAlchemy")
    if isinstance(column_type, JSON):
        return _json
    if isinstance(column_type, DateTime):
        return _time
    if isinstance(column_type, Boolean):
        return _boolean
    if isinstance(column_type, LargeBinary):  # bound as sqlite3.Binary (a memoryview): the same bytes stored
        return None
    if column_type.dialect_impl(_SQLITE).bind_processor(_SQLITE) is not None:
        raise ValueError(f"{column.table.name}.{column.key}: {column_type!r} is converted by SQLAlchemy")
    return None


@dataclass(frozen=True)
class PlainInsert:
    """``INSERT INTO table (columns) VALUES (?, ...)`` and how to turn a row dict into its parameters."""

    sql: str
    columns: tuple[str, ...]
    _steps: tuple[tuple[str, Convert | None, Any], ...]

    def position(self, column: str) -> int:
        return self.columns.index(column)

    def params(self, row: Mapping[str, Any]) -> list[Any]:
        """The row's parameters in column order; a column missing from ``row`` gets its Python default."""
        if self._given is not None and len(row) == len(self.columns):  # every column given: the common case
            out = list(self._given(row))
            for index, convert in self._converted:
                value = out[index]
                if value is not None or convert is _json:
                    out[index] = convert(value)
            return out
        out = []
        for name, step, default in self._steps:
            value = row[name] if name in row else (default() if callable(default) else default)
            out.append(_bound(step, value))
        return out

    @functools.cached_property
    def _given(self) -> Callable[[Mapping[str, Any]], tuple[Any, ...]] | None:
        """The values of a row holding every column, in order (one C call); None for a single column."""
        return operator.itemgetter(*self.columns) if len(self.columns) > 1 else None

    @functools.cached_property
    def _converted(self) -> tuple[tuple[int, Convert], ...]:
        return tuple((i, convert) for i, (_, convert, _) in enumerate(self._steps) if convert is not None)


def _default(column: Any) -> Any:
    default = column.default
    if default is None:
        return None
    if default.is_callable:
        function = default.arg
        return lambda: function(None)  # SQLAlchemy passes an execution context; the models' ignore it
    return default.arg


@functools.cache
def plain_insert(table: Table, keys: tuple[str, ...]) -> PlainInsert:
    """The plain insert of rows holding ``keys`` (and the columns absent from them that have a Python default),
    built once per table and set of keys."""
    present = set(keys)
    unknown = present - set(table.c.keys())
    if unknown:
        raise KeyError(f"no column {sorted(unknown)[0]!r} in {table.name}")
    steps: list[tuple[str, Convert | None, Any]] = []
    for column in table.columns:
        if column.key in present:
            steps.append((column.key, _converter(column), None))
        elif column.default is not None and not column.primary_key:
            if getattr(column.default, "is_sequence", False) or getattr(column.default, "is_clause_element", False):
                raise ValueError(f"{table.name}.{column.key}: a SQL default cannot be bound as a plain value")
            steps.append((column.key, _converter(column), _default(column)))
    names = tuple(name for name, _, _ in steps)
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    return PlainInsert(sql, names, tuple(steps))


@functools.cache
def _column_converter(table: Table, key: str) -> Convert | None:
    return _converter(table.c[key])


def bind(table: Table, key: str, value: Any) -> Any:
    """``value`` for the column ``key`` of ``table`` as SQLAlchemy's SQLite types bind it (a SET or WHERE
    value of a plain statement)."""
    return _bound(_column_converter(table, key), value)


def _bound(convert: Convert | None, value: Any) -> Any:
    """``value`` converted (None stays NULL, but for JSON, which SQLAlchemy binds as ``null``)."""
    return value if convert is None or (value is None and convert is not _json) else convert(value)


def for_rows(table: Table, rows: Sequence[Mapping[str, Any]]) -> PlainInsert:
    """The plain insert for these rows, which must all hold the same keys (as one executemany needs)."""
    keys = tuple(rows[0])
    first = set(keys)
    if any(set(row) != first for row in rows[1:]):
        raise ValueError(f"rows of {table.name} with different columns")
    return plain_insert(table, keys)


def params(table: Table, rows: Iterable[Mapping[str, Any]]) -> tuple[str, list[list[Any]]]:
    """``(sql, parameter lists)`` for inserting ``rows`` into ``table`` with one executemany."""
    listed = list(rows)
    if not listed:
        return "", []
    statement = for_rows(table, listed)
    return statement.sql, [statement.params(row) for row in listed]
