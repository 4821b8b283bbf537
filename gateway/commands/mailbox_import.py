"""``gateway mailbox import FILE.csv``: thousands of accounts at once (gateway/transfer/accounts.py).

Every line is checked before anything is written; by default one bad line stops the import with every error
listed by line number, so the corrected file can be given again as it is. ``--skip-bad`` creates the good lines
and reports the others. Passwords are hashed with the configured Argon2id cost ([auth]) in one process per
core; accounts are written a batch per transaction, with a progress line on stderr.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

#: Errors printed before the rest are only counted.
MAX_ERRORS_SHOWN = 200


def run(args: argparse.Namespace) -> int:
    """``mailbox import``: ``args.address`` holds the CSV file's path."""
    from gateway.auth import hashing
    from gateway.auth.hashing import Argon2Params
    from gateway.commands.common import CommandError, load_config
    from gateway.transfer import accounts

    cfg = load_config(args)
    if not args.address:
        raise CommandError("'mailbox import' needs the CSV file: gateway mailbox import accounts.csv")
    path = Path(args.address)
    try:
        lines, errors = accounts.read(path, cfg.domains, cfg.patient_domain)
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text; save the CSV file as UTF-8.") from None
    taken = asyncio.run(_existing(cfg, [line.address for line in lines]))
    errors.extend(accounts.LineError(line.line, f"a mailbox with the address {line.address} already exists")
                  for line in lines if line.address in taken)
    bad = {error.line for error in errors}
    lines = [line for line in lines if line.line not in bad]
    if errors and not args.skip_bad:
        _report(path, errors)
        print(f"gateway: nothing imported: fix the {len(errors)} line(s) above and give the file again "
              "(or --skip-bad to import the other lines).", file=sys.stderr)
        return 1
    settings = cfg.auth
    params = Argon2Params(settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)
    workers = args.workers or hashing.workers()
    created, late = asyncio.run(_import(cfg, lines, params, workers, args.actor))
    errors.extend(late)
    if errors:
        _report(path, sorted(errors, key=lambda e: e.line))
    print(f"{created} account(s) created from {path}" + (f"; {len(errors)} line(s) not imported." if errors else "."))
    return 1 if errors else 0


def _report(path: Path, errors: Sequence[Any]) -> None:
    for error in errors[:MAX_ERRORS_SHOWN]:
        print(f"gateway: {path}:{error.line}: {error.reason}", file=sys.stderr)
    if len(errors) > MAX_ERRORS_SHOWN:
        print(f"gateway: ... and {len(errors) - MAX_ERRORS_SHOWN} more line(s) with errors.", file=sys.stderr)


async def _existing(cfg: Any, addresses: list[str]) -> set[str]:
    from gateway.store import db
    from gateway.transfer import accounts

    await db.migrate(cfg.database_url)
    engine = db.create_engine(cfg.database_url)
    try:
        async with db.read_sessionmaker(engine)() as session, session.begin():
            return await accounts.existing(session, addresses)
    finally:
        await engine.dispose()


async def _import(cfg: Any, lines: list[Any], params: Any, workers: int, actor: str) -> tuple[int, list[Any]]:
    from gateway.auth.passwords import hash_password
    from gateway.store import db
    from gateway.transfer import accounts
    from gateway.transfer.progress import Progress

    loop = asyncio.get_running_loop()
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    # The pool starts before the store's connection threads: forked workers only ever run the KDF.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
    try:
        futures = {line.line: loop.run_in_executor(pool, hash_password, line.password, params)
                   for line in lines if line.password}

        async def hashes(part: Sequence[Any]) -> list[str | None]:
            return [await futures[line.line] if line.line in futures else line.password_hash for line in part]

        progress = Progress("Creating accounts", "accounts", total=len(lines))
        engine = db.create_engine(cfg.database_url)
        try:
            created, errors = await accounts.write_batches(db.sessionmaker(engine), lines, hashes, actor,
                                                           progress=progress.update)
        finally:
            await engine.dispose()
        progress.finish()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return created, errors
