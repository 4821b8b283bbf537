"""The SQLite acceptance path's plain statements store what SQLAlchemy would: for every table, the same row dicts
inserted through Core and through gateway.store.plain read back as the same stored values (types, text of the
dates, JSON, defaults of the columns left out).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import JSON, Boolean, DateTime, Integer, LargeBinary, Table, insert

import gateway.app  # noqa: F401  (every model of the gateway registered on the metadata)
from gateway.store import plain
from gateway.store.models import Base

TABLES = [t for t in Base.metadata.sorted_tables]


def _value(column: Any, variant: int) -> Any:
    kind = column.type
    if column.nullable and variant == 1:
        return None
    if isinstance(kind, JSON):
        return [{"a": [1, "é", None], "b": True}, ["x@y.test"], {}][variant]
    if isinstance(kind, DateTime):
        return [datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC),
                datetime(2026, 12, 31, 23, 59, 59, 0, tzinfo=timezone(timedelta(hours=2))),
                datetime(2001, 1, 1)][variant]
    if isinstance(kind, Boolean):
        return [True, False, True][variant]
    if isinstance(kind, LargeBinary):
        return [b"\x00\xff\r\n", b"", b"x" * 70][variant]
    if isinstance(kind, Integer):
        return [7, 0, 2**40][variant]
    return ["text", "", "é\u00e9 'quoted'"][variant]


def _generated(column: Any) -> bool:
    """The table's own integer key (a rowid SQLite assigns), not a value the rows give."""
    keys = column.table.primary_key.columns
    return bool(column.primary_key and len(keys) == 1 and isinstance(column.type, Integer)
                and not column.foreign_keys)


def _stored(connection: sqlite3.Connection, table: Table) -> list[tuple[Any, ...]]:
    """The table's rows as SQLite holds them (typeof and value), without its generated key."""
    names = [c.key for c in table.columns if not _generated(c)]
    listed = ", ".join(f"typeof({n}), {n}" for n in names)
    return connection.execute(f"SELECT {listed} FROM {table.name} ORDER BY rowid").fetchall()


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_plain_inserts_store_the_same_values_as_sqlalchemy_core_for_every_table(tmp_path: Path,
                                                                                 table: Table) -> None:
    path = tmp_path / "rows.sqlite3"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    every = [c for c in table.columns if not _generated(c)]
    full = [{c.key: _value(c, v) for c in every} for v in range(3)]
    # Rows leaving out the columns with a Python default: those get it on both paths.
    bare = [{c.key: _value(c, v) for c in every if c.default is None} for v in range(3)]
    results = []
    for rows in (full, bare):
        for how in ("core", "plain"):
            table.metadata.drop_all(engine, tables=[table])
            table.metadata.create_all(engine, tables=[table])
            with engine.begin() as connection:
                if how == "core":
                    connection.execute(insert(table), rows)
                else:
                    sql, params = plain.params(table, rows)
                    driver: Any = connection.connection.driver_connection
                    driver.executemany(sql, params)
            check = sqlite3.connect(str(path))
            try:
                results.append(_stored(check, table))
            finally:
                check.close()
    engine.dispose()
    assert results[0] == results[1] and len(results[0]) == 3
    assert results[2] == results[3] and len(results[2]) == 3


def test_rows_of_different_columns_or_an_unknown_column_are_refused_not_guessed() -> None:
    events = Base.metadata.tables["events"]
    with pytest.raises(ValueError, match="different columns"):
        plain.for_rows(events, [{"kind": "a", "outcome": "b"}, {"kind": "a"}])
    with pytest.raises(KeyError, match="nope"):
        plain.plain_insert(events, ("kind", "nope"))
