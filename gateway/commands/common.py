"""What every command group shares: the configuration it reads, its one-sentence refusal, one transaction on
the store, and tables or JSON on standard output.

Command modules import these from here, not from ``gateway.cli``: the parser sits above the commands it builds.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import config as config_module
from gateway.config import Config

DEFAULT_CONFIG = "data/gateway.toml"


class CommandError(Exception):
    """An administration command refused, as one sentence (exit status 1)."""


def config_path(args: argparse.Namespace) -> Path:
    """``--config``, else ``$GATEWAY_CONFIG``, else ``data/gateway.toml``."""
    return Path(args.config or os.environ.get("GATEWAY_CONFIG") or DEFAULT_CONFIG)


def load_config(args: argparse.Namespace) -> Config:
    return config_module.load(config_path(args))


async def _with_session(cfg: Config, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """Run ``work`` in one committed transaction on a migrated store."""
    from gateway.store import db

    await db.migrate(cfg.database_url)
    engine = db.create_engine(cfg.database_url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


def run_in_store(cfg: Config, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """Run ``work`` in one committed transaction on the configured store (migrated first)."""
    return asyncio.run(_with_session(cfg, work))


def print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    """Aligned columns for a person, or a JSON list for a script (``--json``)."""
    if as_json:
        print(json.dumps(rows, default=str, ensure_ascii=False, indent=1))
        return
    if not rows:
        print("(none)")
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(str(row[k]).ljust(widths[k]) for k in keys))


def print_json(value: Any) -> None:
    """One JSON document on stdout and nothing else (``--json``)."""
    print(json.dumps(value, default=str, ensure_ascii=False, indent=1))


def print_result(message: str | None) -> int:
    """Print a command's one-line result, if any; the exit status of a command that did what it was asked."""
    if message:
        print(message)
    return 0


def version() -> str:
    """The installed distribution's version (the source tree's when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("mss-gateway")
    except PackageNotFoundError:
        return "0+unknown"


def read_password(args: argparse.Namespace) -> str | None:
    """The password of ``--password-stdin``, ``--password`` or ``--ask-password``, in that order; None if none."""
    if getattr(args, "password_stdin", False):
        return sys.stdin.readline().rstrip("\n")
    if getattr(args, "password", None):
        return str(args.password)
    if getattr(args, "ask_password", False):
        return getpass.getpass("Password: ")
    return None
