"""[database]: the store's URL, SQLite (a file, never in memory) or PostgreSQL.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.reader import _Reader


def _database_url(root: _Reader, base_dir: Path) -> str:
    """The SQLAlchemy URL of [database] url; a relative SQLite file is resolved against ``base_dir``."""
    db = root.table("database", required=True)
    assert db is not None
    url = db.get("url", str, required=True)
    db.check("url", url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")),
             "must start with 'sqlite+aiosqlite://' or 'postgresql+asyncpg://'")
    if url.startswith("sqlite+aiosqlite://"):
        file = url.removeprefix("sqlite+aiosqlite://").split("?", 1)[0]
        db.check("url", file.startswith("/") and file.strip("/") not in ("", ":memory:"),
                 "must name a SQLite file, as 'sqlite+aiosqlite:///gateway.sqlite3' (relative to the "
                 "configuration's folder) or 'sqlite+aiosqlite:////var/lib/gateway/gateway.sqlite3'")
    else:
        where, _, query = url.removeprefix("postgresql+asyncpg://").partition("?")
        host, _, database = where.rpartition("@")[2].partition("/")
        db.check("url", bool(host or "host=" in query) and bool(database) and "/" not in database,
                 "must name a server and a database, as 'postgresql+asyncpg://gateway@db.example:5432/gateway'")
    if url.startswith("sqlite+aiosqlite:///") and not url.startswith("sqlite+aiosqlite:////"):
        relative = url.removeprefix("sqlite+aiosqlite:///")
        url = f"sqlite+aiosqlite:///{base_dir / relative}"
    db.finish()
    return url
