"""Backups of the store: an SQLite file copied page by page through SQLite's online backup API, and restored
into a new data folder.

The copy is taken in one backup step, which is one read transaction: in WAL mode the daemon's writers go on
meanwhile and the copy is the store exactly as it was at one commit (a step-by-step copy would start again at
every write of another process). The copy is checked (``PRAGMA quick_check``), made a single file (rollback
journal, no ``-wal`` beside it), synced and renamed into place, so a half-written backup never has the final
name. PostgreSQL stores are backed up with ``pg_dump``, which the sentence from :func:`postgres_advice` spells.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

#: The store's file name in a data folder (as ``gateway init`` writes it).
STORE_FILE = "gateway.sqlite3"
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
#: Milliseconds a backup waits for a writer holding SQLite's lock (checkpoints, schema changes).
BUSY_TIMEOUT_MS = 30_000


class BackupError(Exception):
    """The backup or restore cannot be done: one sentence."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size: int
    mailboxes: int
    messages: int


def sqlite_file(url: str) -> Path:
    """The database file of an ``sqlite+aiosqlite:///`` URL."""
    return Path(url.split("///", 1)[1])


def _counts(connection: sqlite3.Connection) -> tuple[int, int]:
    try:
        mailboxes = connection.execute("SELECT count(*) FROM mailboxes").fetchone()[0]
        messages = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"The file is not a gateway store ({exc}).") from None
    return int(mailboxes), int(messages)


def _copy(source: sqlite3.Connection, target: Path, journal_mode: str) -> tuple[int, int]:
    """Copy ``source`` into a new file ``target`` in one backup step, check it, sync it; the store's counts."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    destination = sqlite3.connect(partial)
    try:
        source.backup(destination, pages=-1)
        destination.execute(f"PRAGMA journal_mode={journal_mode}")
        check = destination.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"The copy failed SQLite's check: {check}.")
        counts = _counts(destination)
    finally:
        destination.close()
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return counts


def backup_sqlite(store: Path, target: Path) -> BackupReport:
    """A consistent single-file copy of the SQLite store at ``store``, written to ``target``."""
    if not store.is_file():
        raise BackupError(f"The store {store} does not exist.")
    source = sqlite3.connect(store, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        source.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        mailboxes, messages = _copy(source, target, "DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite could not copy {store}: {exc}.") from None
    finally:
        source.close()
    return BackupReport(target, target.stat().st_size, mailboxes, messages)


def restore_sqlite(backup: Path, data: Path) -> BackupReport:
    """The backup copied into a new data folder ``data`` as its store (in WAL mode, as the daemon runs it)."""
    try:
        with backup.open("rb") as handle:
            magic = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"Cannot read {backup}: {exc.strerror}.") from None
    if magic.startswith(PG_DUMP_MAGIC):
        raise BackupError(f"{backup} is a pg_dump archive: restore it with pg_restore (see 'gateway restore --help').")
    if magic != SQLITE_MAGIC:
        raise BackupError(f"{backup} is not a backup made by 'gateway backup' (not an SQLite file).")
    if data.exists() and (not data.is_dir() or any(data.iterdir())):
        raise BackupError(f"{data} exists and is not empty; restore into a new data folder.")
    data.mkdir(parents=True, exist_ok=True)
    target = data / STORE_FILE
    source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        mailboxes, messages = _copy(source, target, "WAL")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite could not read {backup}: {exc}.") from None
    finally:
        source.close()
    return BackupReport(target, target.stat().st_size, mailboxes, messages)


def libpq_url(url: str, database: str | None = None) -> str:
    """The store's URL as pg_dump and pg_restore take it: no driver, no password (give it in ~/.pgpass)."""
    parsed = make_url(url).set(drivername="postgresql", password=None)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def postgres_advice(url: str, file: Path, restoring: bool) -> str:
    """The one sentence saying how to back up or restore a PostgreSQL store."""
    if restoring:
        return (f"The store is PostgreSQL: restore a pg_dump archive into a new database with "
                f"'createdb NEWDB && pg_restore --no-owner --dbname={libpq_url(url, 'NEWDB')} {file}', then set "
                f"[database] url to that database.")
    return (f"The store is PostgreSQL: back it up with 'pg_dump --format=custom --file={file} {libpq_url(url)}' "
            f"(a consistent snapshot while the gateway runs; the password from ~/.pgpass or PGPASSWORD).")
