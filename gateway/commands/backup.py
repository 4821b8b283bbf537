"""``gateway backup FILE`` and ``gateway restore FILE --data DIR``: a consistent copy of the store while the
gateway runs, and that copy as the store of a new data folder (gateway/transfer/backup.py).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    backup = with_config(sub.add_parser(
        "backup", help="copy the store to a file while the gateway runs",
        description="Copy the SQLite store to FILE through SQLite's online backup API: a consistent copy of one "
                    "moment, taken while the gateway goes on serving. For PostgreSQL, prints the pg_dump command."))
    backup.add_argument("file", type=Path, help="the backup file to write")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.set_defaults(func=cmd_backup)

    restore = with_config(sub.add_parser(
        "restore", help="make a backup the store of a new data folder",
        description="Copy a backup made by 'gateway backup' into a new data folder as its store "
                    "(DIR/gateway.sqlite3); point [database] url to it and start the gateway there. "
                    "For a PostgreSQL store, prints the pg_restore command."))
    restore.add_argument("file", type=Path, help="the backup file")
    restore.add_argument("--data", type=Path, required=True, metavar="DIR",
                         help="the new data folder (must not exist or be empty)")
    restore.set_defaults(func=cmd_restore)


def _url(args: argparse.Namespace) -> str | None:
    """The configured store's URL, or None when there is no configuration file (restore needs none)."""
    from gateway.commands.common import config_path, load_config
    from gateway.config import ConfigError

    if not config_path(args).is_file():
        return None
    try:
        return str(load_config(args).database_url)
    except ConfigError:
        return None


def cmd_backup(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config
    from gateway.store.db import is_sqlite
    from gateway.transfer import backup

    url = load_config(args).database_url
    if not is_sqlite(url):
        raise CommandError(backup.postgres_advice(url, args.file, restoring=False))
    target: Path = args.file
    if target.exists() and not args.force:
        raise CommandError(f"{target} exists; give another file or --force to replace it.")
    if not target.parent.is_dir():
        raise CommandError(f"The folder {target.parent} does not exist.")
    try:
        report = backup.backup_sqlite(backup.sqlite_file(url), target)
    except backup.BackupError as exc:
        raise CommandError(str(exc)) from None
    print(f"Store copied to {report.path} ({report.size} bytes: {report.mailboxes} mailbox(es), "
          f"{report.messages} message(s)).")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError
    from gateway.store.db import is_sqlite
    from gateway.transfer import backup

    url = _url(args)
    try:
        with open(args.file, "rb") as handle:
            magic = handle.read(5)
    except OSError as exc:
        raise CommandError(f"Cannot read {args.file}: {exc.strerror}.") from None
    if magic == backup.PG_DUMP_MAGIC:
        advice_url = url if url is not None and not is_sqlite(url) else "postgresql://USER@HOST:5432/postgres"
        raise CommandError(backup.postgres_advice(advice_url, args.file, restoring=True))
    try:
        report = backup.restore_sqlite(args.file, args.data)
    except backup.BackupError as exc:
        raise CommandError(str(exc)) from None
    print(f"Store restored to {report.path} ({report.mailboxes} mailbox(es), {report.messages} message(s)); "
          f"set [database] url = \"sqlite+aiosqlite:///{report.path.resolve()}\" and start the gateway with it.")
    return 0
