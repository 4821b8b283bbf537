"""``gateway migrate [--create]``: bring the configured store's schema to the newest revision.

The daemon refuses a ``database.url`` whose SQLite file or PostgreSQL database does not exist, so that a typo
in the key is not served as an empty store with no accounts. Creating the store is a deliberate step: this
command with ``--create`` (or ``gateway init`` for a development data folder). Without ``--create`` a missing
store is refused with the same sentence the daemon gives.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    migrate = with_config(sub.add_parser(
        "migrate", help="bring the store's schema to the newest revision (--create: create the store first)"))
    migrate.add_argument("--create", action="store_true",
                         help="create the SQLite file or PostgreSQL database 'database.url' names if missing")
    migrate.set_defaults(func=cmd_migrate)


async def migrate_store(url: str, *, create: bool) -> bool:
    """Create the store when asked, refuse a missing one otherwise, then migrate; True when it was created."""
    from gateway.store import db

    created = await db.create_database(url) if create else False
    if not created:
        await db.check_store(url)
    await db.migrate(url)
    return created


def cmd_migrate(args: argparse.Namespace) -> int:
    from gateway.commands.common import load_config
    from gateway.store import db

    cfg = load_config(args)
    created = asyncio.run(migrate_store(cfg.database_url, create=args.create))
    what = "created and migrated" if created else "migrated"
    print(f"Store {db.shown_url(cfg.database_url)} {what} to the newest schema.")
    return 0
