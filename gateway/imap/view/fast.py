"""The view's hot statements for SQLite, as plain SQL run in one call on a connection's thread.

Every command of a mail client's visit (SELECT, FETCH, STORE, EXPUNGE and the refresh after each) is a few
indexed statements that SQLite answers in microseconds; through the ORM each one costs a session, a pool
checkout and a thread hop, which under load is most of the command's time. Here the statements of one step run
together on a connection's own thread: reads on the view's reader threads
(:class:`~gateway.store.sqlite_reads.SqliteReader`, their own WAL snapshot), writes on the writer's connection
inside the transaction it already holds (:func:`on_writer`, the group commit's). The same statements as the
session code beside them (the same indexes: (folder_id, uid), (folder_id, modseq)), so answers are the same on
both paths; PostgreSQL always takes the session path.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.imap.view.errors import MailboxNotFound
from gateway.imap.view.rows import ANATOMY, FLAGS, INTERNALDATE, MESSAGE_ID, MODSEQ, SIZE, Row, build_rows, parse_flags
from gateway.imap.view.store import CHUNK, chunks, new_uids

T = TypeVar("T")

_COLUMN_SQL = {FLAGS: "d.flags", MODSEQ: "d.modseq", INTERNALDATE: "d.internal_date", SIZE: "m.size",
               MESSAGE_ID: "d.message_id", ANATOMY: "a.anatomy"}
_ORDER = (FLAGS, MODSEQ, INTERNALDATE, SIZE, MESSAGE_ID, ANATOMY)
_SELECT_SQL: dict[tuple[str, ...], str] = {}


async def on_writer(session: AsyncSession, sync: Callable[[sqlite3.Connection], T]) -> tuple[bool, T | None]:
    """``(True, sync(connection))`` on the SQLite connection of ``session``'s transaction (begun if needed), in
    one hop; ``(False, None)`` when that is not a SQLite connection of ours (PostgreSQL): use the session."""
    from gateway.store.sqlite_driver import OneHopConnection

    if session.get_bind().dialect.name != "sqlite":
        return False, None
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if not isinstance(driver, OneHopConnection):
        return False, None
    native = driver.sqlite()
    result: T = await driver._execute(sync, native)
    return True, result


def _uid_sql(spans: Sequence[tuple[int, int]], params: list[Any]) -> str:
    parts = []
    for lo, hi in spans:
        if lo == hi:
            parts.append("d.uid = ?")
            params.append(lo)
        else:
            parts.append("d.uid BETWEEN ? AND ?")
            params.extend((lo, hi))
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def _select_sql(names: tuple[str, ...]) -> str:
    sql = _SELECT_SQL.get(names)
    if sql is None:
        source = "deliveries d"
        if SIZE in names:
            source += " JOIN messages m ON m.id = d.message_id"
        if ANATOMY in names:
            source += " LEFT OUTER JOIN message_anatomy a ON a.message_id = d.message_id"
        sql = _SELECT_SQL[names] = ("SELECT " + ", ".join(["d.uid", *(_COLUMN_SQL[n] for n in names)])
                                    + f" FROM {source} WHERE d.folder_id = ? AND ")
    return sql


def fetch_rows(connection: sqlite3.Connection, folder_id: int, spans: Sequence[tuple[int, int]],
               columns: Collection[str] = (FLAGS,), changedsince: int | None = None) -> list[Row]:
    """:func:`gateway.imap.view.rows.fetch_rows` in plain SQL: one statement per :data:`CHUNK` UID ranges."""
    names = tuple(name for name in _ORDER if name in columns)
    head = _select_sql(names)
    out: list[Row] = []
    for part in chunks(spans, CHUNK):
        params: list[Any] = [folder_id]
        sql = head + _uid_sql(part, params)
        if changedsince is not None:
            sql += " AND d.modseq > ?"
            params.append(changedsince)
        raw = connection.execute(sql + " ORDER BY d.uid", params).fetchall()
        out.extend(build_rows(raw, list(names)))
    return out


def read_range(connection: sqlite3.Connection, message_id: int, start: int, end: int) -> bytes:
    """Bytes ``start``..``end`` of a stored message, cut by SQLite (as :func:`anatomy.store.read_range`)."""
    if end <= start:
        return b""
    row = connection.execute("SELECT substr(raw, ?, ?) FROM messages WHERE id = ?",
                             (start + 1, end - start, message_id)).fetchone()
    return b"" if row is None or row[0] is None else bytes(row[0])


def folder_delta(connection: sqlite3.Connection, folder_id: int, since: int) -> Any:
    """:func:`gateway.imap.view.folder_changes.folder_delta` in plain SQL (one snapshot, one hop)."""
    from gateway.imap.view.errors import MailboxNotFound
    from gateway.imap.view.folder_changes import FolderDelta

    row = connection.execute("SELECT highestmodseq, uidnext, expunged_floor FROM folders WHERE id = ?",
                             (folder_id,)).fetchone()
    if row is None:
        raise MailboxNotFound("The selected mailbox no longer exists.")
    highest, uidnext = int(row[0]), int(row[1])
    if highest == since:
        return FolderDelta(highest, uidnext, [], frozenset(), None)
    rows = [Row(uid, parse_flags(flags), modseq) for uid, flags, modseq in connection.execute(
        "SELECT uid, flags, modseq FROM deliveries WHERE folder_id = ? AND modseq > ? ORDER BY uid",
        (folder_id, since))]
    gone = frozenset(uid for (uid,) in connection.execute(
        "SELECT uid FROM imap_expunged WHERE folder_id = ? AND modseq > ?", (folder_id, since)))
    # The floor is read after the records (in the same snapshot here: a pruning cannot race them).
    floor = row[2]
    return FolderDelta(highest, uidnext, rows, gone, None if floor is None else int(floor))


def all_uids(connection: sqlite3.Connection, folder_id: int) -> array[int]:
    (text,) = connection.execute("SELECT group_concat(uid) FROM deliveries WHERE folder_id = ?",
                                 (folder_id,)).fetchone()
    return new_uids(sorted(map(int, text.split(","))) if text else ())


def uids_since(connection: sqlite3.Connection, folder_id: int, since: int, known: array[int]) -> array[int]:
    """``known`` (the folder's UIDs at MODSEQ ``since``) brought up to date (as ``initial_uids`` does)."""
    from gateway.imap.view.folder_changes import contains, missing

    top = known[-1] if known else 0
    fresh = [uid for (uid,) in connection.execute(
        "SELECT uid FROM deliveries WHERE folder_id = ? AND modseq > ? AND uid > ? ORDER BY uid",
        (folder_id, since, top))]
    gone_records = {uid for (uid,) in connection.execute(
        "SELECT uid FROM imap_expunged WHERE folder_id = ? AND modseq > ?", (folder_id, since))}
    (floor,) = connection.execute("SELECT expunged_floor FROM folders WHERE id = ?", (folder_id,)).fetchone()
    if floor is not None and since < floor:
        gone = set(missing(known, all_uids(connection, folder_id)))
    else:
        gone = {uid for uid in gone_records if contains(known, uid)}
    kept = new_uids(uid for uid in known if uid not in gone) if gone else array("Q", known)
    kept.extend(fresh)
    return kept


def open_folder(connection: sqlite3.Connection, account_id: int, name: str,
                cached: tuple[int, int, array[int]] | None, max_keywords: int
                ) -> tuple[tuple[int, int, int, int, int], array[int], int | None, list[str]] | None:
    """SELECT's reads in one snapshot: the folder row (id, uidvalidity, uidnext, highestmodseq, recent_uid), its
    UIDs (from ``cached`` = (folder id, MODSEQ, UIDs) of the process's UID cache when it is this folder's and not
    newer than it), the first unseen UID and the distinct flags texts (at most ``max_keywords``); None when
    there is no such folder."""
    row = connection.execute("SELECT id, uidvalidity, uidnext, highestmodseq, recent_uid FROM folders "
                             "WHERE mailbox_id = ? AND name = ?", (account_id, name)).fetchone()
    if row is None:
        return None
    folder_id, highest = int(row[0]), int(row[3])
    if cached is not None and cached[0] == folder_id and cached[1] <= highest:
        uids = cached[2] if cached[1] == highest else uids_since(connection, folder_id, cached[1], cached[2])
    else:
        uids = all_uids(connection, folder_id)
    first = connection.execute("SELECT min(uid) FROM deliveries WHERE folder_id = ? AND seen = 0 AND uid <= ?",
                               (folder_id, uids[-1] if uids else 0)).fetchone()[0]
    texts = [text for (text,) in connection.execute(
        "SELECT DISTINCT flags FROM deliveries WHERE folder_id = ? LIMIT ?", (folder_id, max_keywords))]
    folder = (folder_id, int(row[1]), int(row[2]), highest, int(row[4] or 0))
    return folder, uids, first, texts


# --- writes, on the writer's connection inside its transaction ---------------------------------------------------
def bump_modseq(connection: sqlite3.Connection, folder_id: int) -> int | None:
    """A new MODSEQ for the folder (None: the folder is gone)."""
    row = connection.execute("UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = ? "
                             "RETURNING highestmodseq", (folder_id,)).fetchone()
    return None if row is None else int(row[0])


def flag_rows(connection: sqlite3.Connection, folder_id: int, spans: Sequence[tuple[int, int]]
              ) -> list[tuple[int, int, str, int]]:
    """``(id, uid, flags, modseq)`` of the folder's deliveries in the UID ``spans``, in UID order."""
    out: list[tuple[int, int, str, int]] = []
    for part in chunks(spans, CHUNK):
        params: list[Any] = [folder_id]
        sql = "SELECT d.id, d.uid, d.flags, d.modseq FROM deliveries d WHERE d.folder_id = ? AND " + \
            _uid_sql(part, params) + " ORDER BY d.uid"
        out.extend(connection.execute(sql, params).fetchall())
    return out


def set_flags(connection: sqlite3.Connection, by_text: dict[str, list[int]], modseq: int,
              seen: Callable[[str], bool]) -> None:
    """Each flags text written on its deliveries at ``modseq`` (one UPDATE per text and :data:`CHUNK` ids)."""
    for text, ids in by_text.items():
        for part in chunks(ids, CHUNK):
            connection.execute(f"UPDATE deliveries SET flags = ?, seen = ?, modseq = ? WHERE id IN "
                               f"({','.join('?' * len(part))})", [text, 1 if seen(text) else 0, modseq, *part])


def deleted_rows(connection: sqlite3.Connection, folder_id: int, spans: Sequence[tuple[int, int]]
                 ) -> list[tuple[int, int]]:
    """``(id, uid)`` of the deliveries in ``spans`` flagged ``\\Deleted`` (whole word, any case)."""
    out: list[tuple[int, int]] = []
    for part in chunks(spans, CHUNK):
        params: list[Any] = [folder_id]
        sql = ("SELECT d.id, d.uid FROM deliveries d WHERE d.folder_id = ? AND " + _uid_sql(part, params)
               + " AND (' ' || lower(d.flags) || ' ') LIKE '% \\deleted %'")
        out.extend(connection.execute(sql, params).fetchall())
    return out


def remove_deliveries(connection: sqlite3.Connection, folder_id: int, rows: Sequence[tuple[int, int]],
                      modseq: int) -> None:
    """As :func:`gateway.imap.view.folder_changes.remove_deliveries`: delete, record the UIDs at ``modseq``."""
    for part in chunks([delivery_id for delivery_id, _ in rows], CHUNK):
        connection.execute(f"DELETE FROM deliveries WHERE id IN ({','.join('?' * len(part))})", list(part))
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME text (a 4-digit year)
    connection.executemany("INSERT INTO imap_expunged (folder_id, uid, modseq, expunged_at) VALUES (?, ?, ?, ?)",
                           [(folder_id, uid, modseq, at) for _, uid in rows])


def claim_recent(connection: sqlite3.Connection, folder_id: int, top: int) -> int | None:
    """The folder's ``recent_uid`` before it was raised to ``top``; None when it was not below ``top``."""
    row = connection.execute("SELECT recent_uid FROM folders WHERE id = ?", (folder_id,)).fetchone()
    if row is None or row[0] is None or row[0] >= top:
        return None
    connection.execute("UPDATE folders SET recent_uid = ? WHERE id = ?", (top, folder_id))
    return int(row[0])


def expunge_deleted(connection: sqlite3.Connection, folder_id: int, spans: Sequence[tuple[int, int]]) -> list[int]:
    """EXPUNGE's statements on SQLite in one hop: the ``\\Deleted`` ones, a new MODSEQ, deletes and records."""
    found = deleted_rows(connection, folder_id, spans)
    if not found:
        return []
    modseq = bump_modseq(connection, folder_id)
    if modseq is None:
        raise MailboxNotFound("The selected mailbox no longer exists.")
    remove_deliveries(connection, folder_id, found, modseq)
    return sorted(uid for _, uid in found)
